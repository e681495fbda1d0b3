//! Chunked transfer coding, decoded only to find where the body ends (the
//! bytes themselves are forwarded unchanged). Strict: hex sizes of at most 16
//! digits, CRLF after each chunk, bounded extensions and trailers.

use super::parse::HttpError;

const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the size line: digits seen, value, inside an extension.
    Size {
        digits: u8,
        value: u64,
        in_ext: bool,
        line: usize,
    },
    SizeLf {
        value: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// Reading trailer lines; `line` bytes on the current one.
    Trailer {
        line: usize,
        total: usize,
    },
    TrailerLf {
        line_was_empty: bool,
        total: usize,
    },
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size {
                digits: 0,
                value: 0,
                in_ext: false,
                line: 0,
            },
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes body bytes from `input`; returns how many belong to the body
    /// (fewer than `input.len()` only once the body has ended).
    pub fn advance(&mut self, input: &[u8]) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Data { left } => {
                    let take = (left.min((input.len() - i) as u64)) as usize;
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    continue;
                }
                State::Size {
                    digits,
                    value,
                    in_ext,
                    line,
                } => {
                    if line >= MAX_LINE {
                        return Err(HttpError::Chunk("size line too long"));
                    }
                    match byte {
                        b'\r' if digits > 0 => State::SizeLf { value },
                        _ if in_ext => {
                            if byte == b'\n' || (byte < 0x20 && byte != b'\t') {
                                return Err(HttpError::Chunk("control byte in extension"));
                            }
                            State::Size {
                                digits,
                                value,
                                in_ext,
                                line: line + 1,
                            }
                        }
                        b';' if digits > 0 => State::Size {
                            digits,
                            value,
                            in_ext: true,
                            line: line + 1,
                        },
                        _ => {
                            let digit = (byte as char)
                                .to_digit(16)
                                .ok_or(HttpError::Chunk("size is not hexadecimal"))?;
                            if digits == 16 {
                                return Err(HttpError::Chunk("size too large"));
                            }
                            State::Size {
                                digits: digits + 1,
                                value: (value << 4) | u64::from(digit),
                                in_ext,
                                line: line + 1,
                            }
                        }
                    }
                }
                State::SizeLf { value } => match (byte, value) {
                    (b'\n', 0) => State::Trailer { line: 0, total: 0 },
                    (b'\n', left) => State::Data { left },
                    _ => return Err(HttpError::Chunk("CR without LF after size")),
                },
                State::DataCr if byte == b'\r' => State::DataLf,
                State::DataLf if byte == b'\n' => State::Size {
                    digits: 0,
                    value: 0,
                    in_ext: false,
                    line: 0,
                },
                State::DataCr | State::DataLf => {
                    return Err(HttpError::Chunk("missing CRLF after data"))
                }
                State::Trailer { line, total } => match byte {
                    b'\r' => State::TrailerLf {
                        line_was_empty: line == 0,
                        total,
                    },
                    b'\n' => return Err(HttpError::Chunk("bare LF in trailer")),
                    _ if total >= MAX_TRAILERS => {
                        return Err(HttpError::Chunk("trailers too large"))
                    }
                    _ => State::Trailer {
                        line: line + 1,
                        total: total + 1,
                    },
                },
                State::TrailerLf {
                    line_was_empty,
                    total,
                } => match byte {
                    b'\n' if line_was_empty => State::Done,
                    b'\n' => State::Trailer { line: 0, total },
                    _ => return Err(HttpError::Chunk("CR without LF in trailer")),
                },
            };
            i += 1;
        }
        Ok(i)
    }
}
