//! UTC days and months: the periods budgets and totals reset on.

use std::time::{SystemTime, UNIX_EPOCH};

/// The UTC day and month of a moment, and when each ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Periods {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Unix seconds at which the day ends.
    pub day_end: u64,
    /// Unix seconds at which the month ends.
    pub month_end: u64,
}

impl Periods {
    /// The periods of `now`.
    pub(crate) fn at(now: SystemTime) -> Self {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let days = (secs / 86_400) as i64;
        let (year, month, day) = civil_from_days(days);
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        Periods {
            day: format!("{year:04}-{month:02}-{day:02}"),
            month: format!("{year:04}-{month:02}"),
            day_end: (days as u64 + 1) * 86_400,
            month_end: days_from_civil(next_year, next_month, 1).max(0) as u64 * 86_400,
        }
    }

    /// The periods of now.
    pub(crate) fn now() -> Self {
        Self::at(SystemTime::now())
    }
}

/// Howard Hinnant's days-to-civil: (year, month, day) of days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Howard Hinnant's civil-to-days: days since 1970-01-01 of (year, month, day).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn days_and_months_end_at_utc_midnight() {
        // 2026-12-31T23:59:59Z.
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        let p = Periods::at(t);
        assert_eq!(
            (p.day.as_str(), p.month.as_str()),
            ("2026-12-31", "2026-12")
        );
        assert_eq!(p.day_end, 1_798_761_600);
        assert_eq!(p.month_end, 1_798_761_600);
        let p = Periods::at(UNIX_EPOCH + Duration::from_secs(1_798_761_600));
        assert_eq!(
            (p.day.as_str(), p.month.as_str()),
            ("2027-01-01", "2027-01")
        );
        // 2028-02-29 (leap day) ends February on March 1st.
        let p = Periods::at(UNIX_EPOCH + Duration::from_secs(1_835_395_200));
        assert_eq!(p.day, "2028-02-29");
        assert_eq!(p.month_end, 1_835_481_600);
    }
}
