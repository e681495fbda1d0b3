//! `google.protobuf.Timestamp` with protobuf's JSON form: RFC 3339 in UTC
//! with a `Z` and 0, 3, 6 or 9 fractional digits, as Go's protojson prints
//! it (and so `hubble observe -o json`). The build maps the well-known type
//! here; the wire format is the same two fields.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            },
            Err(e) => {
                let d = e.duration();
                let (mut s, mut n) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i32));
                if n < 0 {
                    s -= 1;
                    n += 1_000_000_000;
                }
                Timestamp {
                    seconds: s,
                    nanos: n,
                }
            }
        }
    }

    pub fn to_system_time(self) -> SystemTime {
        let nanos = Duration::from_nanos(self.nanos.clamp(0, 999_999_999) as u64);
        if self.seconds >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.seconds as u64) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(self.seconds.unsigned_abs()) + nanos
        }
    }

    /// `2024-05-01T12:00:00.123Z`.
    pub fn to_rfc3339(self) -> String {
        let (date, secs_of_day) = civil(self.seconds);
        let (y, m, d) = date;
        let mut out = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            secs_of_day / 3600,
            secs_of_day % 3600 / 60,
            secs_of_day % 60
        );
        let n = self.nanos;
        if n != 0 {
            if n % 1_000_000 == 0 {
                out += &format!(".{:03}", n / 1_000_000);
            } else if n % 1_000 == 0 {
                out += &format!(".{:06}", n / 1_000);
            } else {
                out += &format!(".{n:09}");
            }
        }
        out.push('Z');
        out
    }

    /// RFC 3339 with any fraction and a `Z` or `±hh:mm` offset.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || min > 59
            || sec > 60
        {
            return None;
        }
        let mut i = 19;
        let mut nanos = 0i64;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end == start || end - start > 9 {
                return None;
            }
            nanos = num(start..end)? * 10i64.pow(9 - (end - start) as u32);
            i = end;
        }
        let offset = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
                if *sign == b'+' {
                    o
                } else {
                    -o
                }
            }
            _ => return None,
        };
        let seconds =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset;
        Some(Timestamp {
            seconds,
            nanos: nanos as i32,
        })
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ((year, month, day), seconds into the day) of seconds since the epoch.
pub fn civil(seconds: i64) -> ((i64, i64, i64), i64) {
    let (days, rem) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    ((yoe + era * 400 + i64::from(month <= 2), month, day), rem)
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn prints_like_protojson() {
        assert_eq!(ts(0, 0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            ts(1_709_251_199, 5_000_000).to_rfc3339(),
            "2024-02-29T23:59:59.005Z"
        );
        assert_eq!(ts(1, 1_000).to_rfc3339(), "1970-01-01T00:00:01.000001Z");
        assert_eq!(ts(1, 7).to_rfc3339(), "1970-01-01T00:00:01.000000007Z");
    }

    #[test]
    fn parses_rfc3339_with_fractions_and_offsets() {
        assert_eq!(
            Timestamp::parse_rfc3339("2024-02-29T23:59:59.005Z"),
            Some(ts(1_709_251_199, 5_000_000))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2024-03-01T01:59:59+02:00"),
            Some(ts(1_709_251_199, 0))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("1969-12-31T23:59:59Z"),
            Some(ts(-1, 0))
        );
        for bad in [
            "2024-02-29",
            "2024-02-29T23:59:59",
            "2024-13-01T00:00:00Z",
            "x",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn system_time_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        assert_eq!(Timestamp::from_system_time(t).to_system_time(), t);
    }
}
