//! `--since` / `--until` values as `hubble observe` reads them: a Go
//! duration back from now (`5m`, `1h30m`, `90s`, `1.5h`), else a time in
//! one of its layouts: `2006-01-02`, `2006-01-02T15Z07:00`,
//! `2006-01-02T15:04Z07:00` or RFC 3339 with any fraction.

use hubble::timestamp::Timestamp;

/// The instant `text` names, `now` being the present.
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Some(nanos) = go_duration_nanos(text) {
        let total = i128::from(now.seconds) * 1_000_000_000 + i128::from(now.nanos) - nanos;
        return Ok(Timestamp {
            seconds: total.div_euclid(1_000_000_000) as i64,
            nanos: total.rem_euclid(1_000_000_000) as i32,
        });
    }
    layouts(text).ok_or_else(|| format!("failed to convert {text} to time"))
}

fn layouts(text: &str) -> Option<Timestamp> {
    if let Some(t) = Timestamp::parse_rfc3339(text) {
        return Some(t);
    }
    let b = text.as_bytes();
    // YearMonthDay: midnight UTC.
    if b.len() == 10 {
        return Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z"));
    }
    // YearMonthDayHour[Minute] with a zone.
    if b.len() > 13 && b[10] == b'T' {
        let (hour, rest) = text.split_at(13);
        let (minute, zone) = match rest.strip_prefix(':') {
            Some(r) if r.len() >= 2 => (&r[..2], &r[2..]),
            _ => ("00", rest),
        };
        if zone == "Z" || zone.starts_with(['+', '-']) {
            return Timestamp::parse_rfc3339(&format!("{hour}:{minute}:00{zone}"));
        }
    }
    None
}

/// Go's `time.ParseDuration`, in nanoseconds: a signed sequence of
/// decimal numbers each with a unit (ns, us, µs, ms, s, m, h), or "0".
pub fn go_duration_nanos(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    let nanos = total.round() as i128;
    Some(if negative { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    };

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_nanos("5m"), Some(300_000_000_000));
        assert_eq!(go_duration_nanos("1h30m"), Some(5_400_000_000_000));
        assert_eq!(go_duration_nanos("1.5h"), Some(5_400_000_000_000));
        assert_eq!(go_duration_nanos("300ms"), Some(300_000_000));
        assert_eq!(go_duration_nanos("2us"), Some(2_000));
        assert_eq!(go_duration_nanos("0"), Some(0));
        assert_eq!(go_duration_nanos("-1s"), Some(-1_000_000_000));
        for bad in ["", "5", "m", "5x", "1..5s", "5 m"] {
            assert_eq!(go_duration_nanos(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_duration_is_back_from_now() {
        assert_eq!(
            parse_time("5m", NOW).unwrap(),
            Timestamp {
                seconds: NOW.seconds - 300,
                nanos: 0
            }
        );
        assert_eq!(
            parse_time("1ms", NOW).unwrap(),
            Timestamp {
                seconds: NOW.seconds - 1,
                nanos: 999_000_000
            }
        );
    }

    #[test]
    fn times_in_hubbles_layouts() {
        let t = |s| parse_time(s, NOW).unwrap().to_rfc3339();
        assert_eq!(t("2024-02-29T23:59:59Z"), "2024-02-29T23:59:59Z");
        assert_eq!(t("2024-02-29T23:59:59.5+01:00"), "2024-02-29T22:59:59.500Z");
        assert_eq!(t("2024-02-29"), "2024-02-29T00:00:00Z");
        assert_eq!(t("2024-02-29T23Z"), "2024-02-29T23:00:00Z");
        assert_eq!(t("2024-02-29T23:15-01:00"), "2024-03-01T00:15:00Z");
        assert_eq!(
            parse_time("yesterday", NOW).unwrap_err(),
            "failed to convert yesterday to time"
        );
    }
}
