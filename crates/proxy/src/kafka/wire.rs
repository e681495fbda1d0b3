//! Kafka's primitive types, classic and flexible (compact) encodings. The
//! reader never trusts a length: every one is checked against what is left.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaError {
    #[error("request truncated at byte {0}")]
    Truncated(usize),
    #[error("invalid {what} at byte {at}")]
    Invalid { what: &'static str, at: usize },
    #[error("frame size {0} out of range")]
    FrameSize(i64),
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    fn invalid(&self, what: &'static str) -> KafkaError {
        KafkaError::Invalid { what, at: self.pos }
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], KafkaError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.buf.len());
        let end = end.ok_or(KafkaError::Truncated(self.pos))?;
        let piece = &self.buf[self.pos..end];
        self.pos = end;
        Ok(piece)
    }

    pub fn i8(&mut self) -> Result<i8, KafkaError> {
        Ok(self.take(1)?[0] as i8)
    }
    pub fn i16(&mut self) -> Result<i16, KafkaError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub fn i32(&mut self) -> Result<i32, KafkaError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn i64(&mut self) -> Result<i64, KafkaError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn uvarint(&mut self) -> Result<u32, KafkaError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.invalid("varint"))
    }

    /// A length checked against the remaining bytes (each item ≥ `min_item` bytes).
    fn length(&mut self, len: i64, min_item: usize) -> Result<usize, KafkaError> {
        let left = (self.buf.len() - self.pos) as i64;
        if len < 0 || len.saturating_mul(min_item as i64) > left {
            return Err(self.invalid("length"));
        }
        Ok(len as usize)
    }

    /// Nullable string, classic (i16 length) or compact (varint length + 1).
    pub fn string(&mut self, flexible: bool) -> Result<Option<String>, KafkaError> {
        let len = if flexible {
            i64::from(self.uvarint()?) - 1
        } else {
            i64::from(self.i16()?)
        };
        if len == -1 {
            return Ok(None);
        }
        let len = self.length(len, 1)?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| self.invalid("utf-8 string"))
    }

    /// Nullable array length; `None` = null.
    pub fn array_len(
        &mut self,
        flexible: bool,
        min_item: usize,
    ) -> Result<Option<usize>, KafkaError> {
        let len = if flexible {
            i64::from(self.uvarint()?) - 1
        } else {
            i64::from(self.i32()?)
        };
        if len == -1 {
            return Ok(None);
        }
        self.length(len, min_item).map(Some)
    }

    /// Skips nullable bytes (records).
    pub fn skip_bytes(&mut self, flexible: bool) -> Result<(), KafkaError> {
        let len = if flexible {
            i64::from(self.uvarint()?) - 1
        } else {
            i64::from(self.i32()?)
        };
        if len == -1 {
            return Ok(());
        }
        let len = self.length(len, 1)?;
        self.take(len).map(|_| ())
    }

    pub fn skip_tagged_fields(&mut self) -> Result<(), KafkaError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

/// Builds a response body.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
    flexible: bool,
}

impl Writer {
    pub fn new(flexible: bool) -> Self {
        Writer {
            buf: Vec::with_capacity(64),
            flexible,
        }
    }
    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.buf.push(v as u8);
        self
    }
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn uvarint(&mut self, mut v: u32) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }
    pub fn string(&mut self, v: Option<&str>) -> &mut Self {
        match (v, self.flexible) {
            (None, true) => self.uvarint(0),
            (None, false) => self.i16(-1),
            (Some(s), true) => {
                self.uvarint(s.len() as u32 + 1);
                self.buf.extend_from_slice(s.as_bytes());
                self
            }
            (Some(s), false) => {
                self.i16(s.len() as i16);
                self.buf.extend_from_slice(s.as_bytes());
                self
            }
        }
    }
    /// Array length (`None` = null).
    pub fn array_len(&mut self, len: Option<usize>) -> &mut Self {
        match (len, self.flexible) {
            (None, true) => self.uvarint(0),
            (None, false) => self.i32(-1),
            (Some(n), true) => self.uvarint(n as u32 + 1),
            (Some(n), false) => self.i32(n as i32),
        }
    }
    /// Empty tagged-field section (flexible versions only).
    pub fn tags(&mut self) -> &mut Self {
        if self.flexible {
            self.buf.push(0);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_compact_strings_round_trip() {
        let mut writer = Writer::new(true);
        writer
            .uvarint(300)
            .string(Some("topic"))
            .string(None)
            .array_len(Some(2))
            .tags();
        let mut reader = Reader::new(&writer.buf);
        assert_eq!(reader.uvarint(), Ok(300));
        assert_eq!(reader.string(true), Ok(Some("topic".into())));
        assert_eq!(reader.string(true), Ok(None));
        assert_eq!(reader.array_len(true, 0), Ok(Some(2)));
        assert_eq!(reader.skip_tagged_fields(), Ok(()));
    }

    #[test]
    fn lengths_are_checked_against_the_buffer() {
        assert!(Reader::new(&[0x7f, 0xff]).string(false).is_err());
        assert!(Reader::new(&[0x00, 0x10, 0, 0, 0])
            .array_len(false, 4)
            .is_err());
        assert!(Reader::new(&[0xff; 6]).uvarint().is_err());
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01])
            .uvarint()
            .is_err());
    }
}
