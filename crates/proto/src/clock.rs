//! UTC timestamps in the XEP-0082 DateTime profile, `CCYY-MM-DDThh:mm:ssZ`: the XEP-0203 delay
//! stamp on offline messages and the XEP-0202 `<utc/>` of entity time.
//!
//! The calendar arithmetic is the one function below (days since 1970-01-01 → proleptic
//! Gregorian date, after Howard Hinnant's `civil_from_days`), checked day by day against a naive
//! calendar over ±2700 years in the tests. That is less code to trust than a date crate brought
//! in for one formatting call. Fractions of a second are left out (XEP-0082 §3.2 makes them
//! optional).

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time, formatted by [`format_utc`].
pub fn now_utc() -> String {
    format_utc(SystemTime::now())
}

/// `t` as `CCYY-MM-DDThh:mm:ssZ` (UTC, whole seconds, rounded down). Years after 9999 get more
/// digits, which XEP-0082 does not allow, but no clock shows them.
pub fn format_utc(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            // Rounded down, like the positive side: 0.5 s before the epoch is 23:59:59.
            let d = before.duration();
            let s = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
            i64::try_from(s).map_or(i64::MIN, |s| -s)
        }
    };
    format_unix(secs)
}

/// Seconds since the Unix epoch as `CCYY-MM-DDThh:mm:ssZ`.
pub fn format_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// (year, month 1–12, day 1–31) of the day `days` after 1970-01-01 (negative: before).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Shift the epoch to 0000-03-01, so that the leap day is the last day of a "year".
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn is_leap(y: i64) -> bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }

    fn month_len(y: i64, m: i64) -> i64 {
        match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    #[test]
    fn known_instants() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (86_399, "1970-01-01T23:59:59Z"),
            (86_400, "1970-01-02T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (1_709_251_200, "2024-03-01T00:00:00Z"),
            (2_147_483_648, "2038-01-19T03:14:08Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (-62_135_596_800, "0001-01-01T00:00:00Z"),
        ];
        for &(secs, want) in cases {
            assert_eq!(format_unix(secs), want, "for {secs}");
        }
    }

    #[test]
    fn system_time_rounds_down() {
        let at = |s: u64, nanos: u32| UNIX_EPOCH + Duration::new(s, nanos);
        assert_eq!(format_utc(at(0, 999_999_999)), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_utc(at(1_709_251_199, 500_000_000)),
            "2024-02-29T23:59:59Z"
        );
        let before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(format_utc(before), "1969-12-31T23:59:59Z");
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(format_utc(before), "1969-12-31T00:00:00Z");
    }

    /// Every day from about 770 BC to AD 4700 against a calendar counted day by day.
    #[test]
    fn matches_a_naive_calendar() {
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..1_000_000 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            d += 1;
            if d > month_len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in (-1_000_000..0).rev() {
            d -= 1;
            if d == 0 {
                m -= 1;
                if m == 0 {
                    m = 12;
                    y -= 1;
                }
                d = month_len(y, m);
            }
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
        }
    }

    #[test]
    fn now_has_the_profile_shape() {
        let s = now_utc();
        let b = s.as_bytes();
        assert_eq!(b.len(), 20, "{s}");
        for (i, c) in b.iter().enumerate() {
            let want_sep = match i {
                4 | 7 => Some(b'-'),
                10 => Some(b'T'),
                13 | 16 => Some(b':'),
                19 => Some(b'Z'),
                _ => None,
            };
            match want_sep {
                Some(sep) => assert_eq!(*c, sep, "{s}"),
                None => assert!(c.is_ascii_digit(), "{s}"),
            }
        }
    }
}
