//! Instants as milliseconds since the Unix epoch, and the xs:dateTime text SAML writes them in.
//! The core never reads a clock: every check takes `now` as a parameter.

use std::fmt;

/// An instant, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(i64);

impl UnixTime {
    pub const fn from_millis(ms: i64) -> Self {
        UnixTime(ms)
    }
    pub const fn from_secs(s: i64) -> Self {
        UnixTime(s.saturating_mul(1000))
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
    pub const fn plus_secs(self, s: i64) -> Self {
        UnixTime(self.0.saturating_add(s.saturating_mul(1000)))
    }

    /// Parses an xs:dateTime (`2024-05-01T12:00:00Z`, with optional fraction and `Z` / `±hh:mm`;
    /// without a zone it is read as UTC, which is what SAML requires anyway).
    pub fn parse(s: &str) -> Option<UnixTime> {
        let b = s.as_bytes();
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 24
            || min > 59
            || sec > 59
        {
            return None;
        }
        if hour == 24 && (min != 0 || sec != 0) {
            return None;
        }
        let mut rest = &s[19..];
        let mut millis = 0i64;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            for (i, c) in frac
                .bytes()
                .take(3)
                .enumerate()
                .filter(|(i, _)| *i < digits)
            {
                millis += i64::from(c - b'0') * [100, 10, 1][i];
            }
            rest = &frac[digits..];
        }
        let offset_min = match rest {
            "" | "Z" | "z" => 0,
            tz => {
                let tb = tz.as_bytes();
                if tb.len() != 6 || !(tb[0] == b'+' || tb[0] == b'-') || tb[3] != b':' {
                    return None;
                }
                let h: i64 = tz.get(1..3)?.parse().ok()?;
                let m: i64 = tz.get(4..6)?.parse().ok()?;
                if h > 14 || m > 59 {
                    return None;
                }
                let v = h * 60 + m;
                if tb[0] == b'+' { v } else { -v }
            }
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
        Some(UnixTime(secs * 1000 + millis))
    }

    /// `YYYY-MM-DDThh:mm:ssZ` (with `.mmm` when the instant has milliseconds).
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let tod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (tod / 3600, (tod % 3600) / 60, tod % 60);
        if ms == 0 {
            format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
        } else {
            format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
        }
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let t = UnixTime::parse("2014-03-21T13:41:09Z").expect("valid");
        assert_eq!(t.secs(), 1_395_409_269);
        assert_eq!(t.to_rfc3339(), "2014-03-21T13:41:09Z");
        let f = UnixTime::parse("2014-03-21T13:41:09.5Z").expect("valid");
        assert_eq!(f.millis() - t.millis(), 500);
        let off = UnixTime::parse("2015-08-31T08:54:06+00:00").expect("valid");
        assert_eq!(off.to_rfc3339(), "2015-08-31T08:54:06Z");
        let east = UnixTime::parse("2015-08-31T10:54:06+02:00").expect("valid");
        assert_eq!(east, off);
        assert_eq!(
            UnixTime::parse("1970-01-01T00:00:00Z"),
            Some(UnixTime::from_secs(0))
        );
        assert_eq!(
            UnixTime::parse("2000-02-29T00:00:00Z")
                .map(|t| t.to_rfc3339())
                .as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "2014-03-21",
            "2014-13-01T00:00:00Z",
            "2014-02-30T00:00:00Z",
            "2014-03-21T25:00:00Z",
            "2014-03-21T13:41:09+0100",
            "2014-03-21T13:41:09.Z",
            "2014-03-21T13:41:09 Z",
            "１０14-03-21T13:41:09Z",
            "2100-02-29T00:00:00Z",
        ] {
            assert_eq!(UnixTime::parse(bad), None, "{bad}");
        }
    }
}
