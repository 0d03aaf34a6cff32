//! The `Date` header: IMF-fixdate (RFC 9110 §5.6.7), e.g. `Tue, 24 Nov 2026 05:46:16 GMT`.
//!
//! Written by hand rather than pulled from a date crate: it is one algorithm (Howard Hinnant's
//! `civil_from_days`) and a few digits. The text changes once a second, so the process keeps
//! the current one and formats it at most once per second; each thread keeps a copy too, so
//! the shared one is locked at most once per second per thread. (A per-thread cache alone
//! formatted the date once per *connection* under `Threading`, whose threads live for one
//! connection.)

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Tue, 24 Nov 2026 05:46:16 GMT`.
const LEN: usize = 29;

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Year, month (1..=12) and day (1..=31) of the day `days` after 1970-01-01 in the proleptic
/// Gregorian calendar. Hinnant's algorithm: shift the epoch to 0000-03-01 so that the leap day
/// is the last day of the "year", then split into 400-year eras of exactly 146097 days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats `secs` seconds after the Unix epoch as an IMF-fixdate, into a fixed array: no
/// allocation. Years past 9999 keep their last four digits (the format has four).
fn format_http_date(secs: u64) -> [u8; LEN] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4).
    let weekday = WEEKDAYS.get(((days + 4).rem_euclid(7)) as usize).copied().unwrap_or("Thu");
    let month = MONTHS.get(month as usize - 1).copied().unwrap_or("Jan");
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    let mut put = |at: usize, text: &[u8]| {
        if let Some(slot) = out.get_mut(at..at + text.len()) {
            slot.copy_from_slice(text);
        }
    };
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let year = year.rem_euclid(10_000) as u64;
    put(0, weekday.as_bytes());
    put(5, &two(u64::from(day)));
    put(8, month.as_bytes());
    put(12, &two(year / 100));
    put(14, &two(year % 100));
    put(17, &two(rem / 3600));
    put(20, &two(rem / 60 % 60));
    put(23, &two(rem % 60));
    out
}

/// The process's current date text, and the second it is for.
static SHARED: Mutex<(u64, [u8; LEN])> = Mutex::new((u64::MAX, [0; LEN]));

thread_local! {
    static CACHE: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
}

/// Calls `f` with the current date as an IMF-fixdate (ASCII), formatting it at most once per
/// second per process.
pub(crate) fn with_now<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    // A clock before 1970 is a broken clock; 0 gives a valid (if wrong) header, not a panic.
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (cached, text) = CACHE.get();
    if cached == secs {
        return f(&text);
    }
    let text = {
        // A poisoned lock only means another thread panicked while holding it, between two
        // plain assignments: the value is whole either way.
        let mut shared = SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if shared.0 != secs {
            *shared = (secs, format_http_date(secs));
        }
        shared.1
    };
    CACHE.set((secs, text));
    f(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! dates {
        ($($name:ident: $secs:expr => $text:expr,)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(std::str::from_utf8(&format_http_date($secs)).unwrap(), $text);
            }
        )*};
    }

    dates! {
        epoch: 0 => "Thu, 01 Jan 1970 00:00:00 GMT",
        rfc_example: 784_111_777 => "Sun, 06 Nov 1994 08:49:37 GMT",
        leap_day_2000: 951_782_400 => "Tue, 29 Feb 2000 00:00:00 GMT",
        end_of_2023: 1_704_067_199 => "Sun, 31 Dec 2023 23:59:59 GMT",
        brief_example: 1_795_499_176 => "Tue, 24 Nov 2026 05:46:16 GMT",
        leap_day_2100_is_not: 4_107_542_400 => "Mon, 01 Mar 2100 00:00:00 GMT",
    }

    #[test]
    fn cached_value_is_well_formed() {
        let s = with_now(|b| String::from_utf8(b.to_vec()).unwrap());
        assert_eq!(s.len(), 29);
        assert!(s.ends_with(" GMT"));
        // A second thread, with an empty cache of its own, gets the same text (unless the
        // second changed in between, which the loop allows once).
        for _ in 0..2 {
            let there = std::thread::spawn(|| with_now(<[u8]>::to_vec)).join().unwrap();
            if there == with_now(<[u8]>::to_vec) {
                return;
            }
        }
        panic!("two threads disagree on the date");
    }
}
