//! UTC times as homestick writes and reads them: RFC 3339 with a `Z`, or a plain date.

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date (the inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UTC calendar fields of a Unix time: (year, month, day, hour, minute, second).
pub fn utc_fields(epoch: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

/// RFC 3339 UTC form of a Unix time, e.g. `2026-11-23T19:25:00Z`.
pub fn rfc3339(epoch: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(epoch);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The date of a Unix time, e.g. `2026-11-23`.
pub fn date(epoch: i64) -> String {
    let (y, mo, d, ..) = utc_fields(epoch);
    format!("{y:04}-{mo:02}-{d:02}")
}

/// Why a text is not a UTC time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Not of the form `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("{0:?} is not a UTC time: give YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")]
    Form(String),
    /// Month 0 or over 12.
    #[error("{0:?}: month {1} does not exist")]
    Month(String, u32),
    /// A day, hour, minute or second out of range, or a year before 1970.
    #[error("{0:?}: no such UTC time (from 1970 on)")]
    NoSuchTime(String),
}

/// Parse `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ` into a Unix time. Years
/// 1970..=9999; every field checked (no 30 February, no hour 24).
pub fn parse(s: &str) -> Result<i64, TimeError> {
    let bad = || TimeError::Form(s.to_string());
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = b.get(r)?;
        if !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(t).ok()?.parse().ok()
    };
    if !(b.len() == 10 || b.len() == 20) || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (
        num(0..4).ok_or_else(bad)?,
        num(5..7).ok_or_else(bad)?,
        num(8..10).ok_or_else(bad)?,
    );
    let (mut h, mut mi, mut sec) = (0, 0, 0);
    if b.len() == 20 {
        if b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
            return Err(bad());
        }
        h = num(11..13).ok_or_else(bad)?;
        mi = num(14..16).ok_or_else(bad)?;
        sec = num(17..19).ok_or_else(bad)?;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(TimeError::Month(s.to_string(), m)),
    };
    if y < 1970 || d == 0 || d > days_in || h > 23 || mi > 59 || sec > 59 {
        return Err(TimeError::NoSuchTime(s.to_string()));
    }
    let days = days_from_civil(i64::from(y), m, d);
    Ok(days * 86_400 + i64::from(h * 3600 + mi * 60 + sec))
}

/// The system clock as a Unix time (0 if it is before 1970).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `SOURCE_DATE_EPOCH` is set but not a whole, non-negative number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SOURCE_DATE_EPOCH: {0:?} is not a whole, non-negative number of seconds")]
pub struct EpochError(pub String);

/// The build time: `SOURCE_DATE_EPOCH` (reproducible builds) if it is set, else now.
pub fn build_epoch() -> Result<i64, EpochError> {
    epoch_from(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())
}

/// [`build_epoch`] for a given value of `SOURCE_DATE_EPOCH`.
pub fn epoch_from(var: Option<&str>) -> Result<i64, EpochError> {
    match var {
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|&e| e >= 0)
            .ok_or_else(|| EpochError(v.to_string())),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        for t in [
            0,
            86_399,
            951_782_400,
            1_796_000_000,
            4_102_444_799,
            253_402_300_799,
        ] {
            assert_eq!(parse(&rfc3339(t)), Ok(t), "{}", rfc3339(t));
            assert_eq!(parse(&date(t)), Ok(t - t.rem_euclid(86_400)));
        }
        assert_eq!(parse("2000-02-29"), Ok(951_782_400));
        for bad in [
            "2001-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "1969-12-31",
            "2026-01-01T24:00:00Z",
            "2026-01-01T10:00:00",
            "2026-01-01T10:00:00+01:00",
            "2026-1-1",
            "+026-01-01",
            "2026-01-01 10:00:00Z",
            "",
            "tomorrow",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_date_epoch_values() {
        assert_eq!(epoch_from(Some("1796000000")), Ok(1_796_000_000));
        assert_eq!(epoch_from(Some(" 0\n")), Ok(0));
        for bad in ["yesterday", "-1", "1.5", ""] {
            assert_eq!(
                epoch_from(Some(bad)),
                Err(EpochError(bad.into())),
                "{bad:?}"
            );
        }
        assert!(epoch_from(None).unwrap() > 1_700_000_000);
        assert_eq!(
            EpochError("x".into()).to_string(),
            "SOURCE_DATE_EPOCH: \"x\" is not a whole, non-negative number of seconds"
        );
    }
}
