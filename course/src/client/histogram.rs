//! A latency histogram with about 0.4 % relative error, in the spirit of HdrHistogram but
//! written out in full here (it is short, and how it works is part of the lesson).
//!
//! # The bucket layout ("log-linear")
//!
//! Values are `u64` (the load mode records nanoseconds). Every value below 256 has a bucket of
//! its own, so small values are exact. Above that, each power of two `[2^k, 2^(k+1))` is cut
//! into 128 equal sub-buckets: a value is kept as its top 8 significant bits (a *mantissa*
//! `m` in `128..256`) and a *shift* `s` (`value >> s == m`). The bucket is `[m << s, (m+1) << s)`,
//! whose width is `1/m <= 1/128` of its lower end. Reporting the middle of the bucket is then
//! off by at most half a width: `1/256`, about 0.4 %, of the true value, at any magnitude from
//! nanoseconds to centuries. All of `u64` fits in 7,424 buckets (58 KiB), so recording is one
//! `leading_zeros`, a shift and an increment: no search, no allocation, no lock.
//!
//! Merging two histograms is adding their counts bucket by bucket, which is what lets each load
//! thread keep its own and the report combine them at the end.
//!
//! # Example
//!
//! ```
//! use course::client::Histogram;
//!
//! let mut h = Histogram::new();
//! for v in 1..=100 {
//!     h.record(v);
//! }
//! assert_eq!(h.count(), 100);
//! assert_eq!(h.percentile(50.0), 50);
//! assert_eq!(h.percentile(99.0), 99);
//! assert_eq!((h.min(), h.max()), (1, 100));
//! ```

use std::fmt::Write as _;

/// Significant bits kept above the exact range: 2^7 = 128 sub-buckets per power of two.
const SUB_BITS: u32 = 7;
/// Sub-buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// Values below this (256) have a bucket each.
const EXACT: u64 = SUB << 1;
/// Buckets needed for all of `u64`: the largest shift is 63 - 7 = 56, and the index of a value
/// is `shift * 128 + mantissa` with the mantissa below 256.
const BUCKETS: usize = (56 * SUB + EXACT) as usize;

/// Counts of values in log-linear buckets, plus the exact count, sum, min and max.
///
/// See the [module docs](self) for the layout and its error bound.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    /// The summary numbers, not the 7,424 buckets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("min", &self.min())
            .field("max", &self.max)
            .field("p50", &self.percentile(50.0))
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// The bucket `value` falls in.
fn index_of(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    let shift = (63 - value.leading_zeros()) - SUB_BITS;
    (u64::from(shift) * SUB + (value >> shift)) as usize
}

/// The values bucket `index` holds: `[low, high]`, both inclusive.
fn bounds_of(index: usize) -> (u64, u64) {
    let i = index as u64;
    if i < EXACT {
        return (i, i);
    }
    let shift = i / SUB - 1;
    let mantissa = i - shift * SUB;
    let low = mantissa << shift;
    (low, low + ((1u64 << shift) - 1))
}

impl Histogram {
    /// An empty histogram (allocates its 58 KiB of buckets once, here).
    pub fn new() -> Histogram {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, sum: 0, min: u64::MAX, max: 0 }
    }

    /// Counts one value.
    #[inline]
    pub fn record(&mut self, value: u64) {
        self.counts[index_of(value)] += 1;
        self.total += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds every count of `other` to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The smallest value recorded, exactly; 0 when empty.
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    /// The largest value recorded, exactly; 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The arithmetic mean, exactly (from the sum, not the buckets); 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum as f64 / self.total as f64 }
    }

    /// The value below or at which `p` percent of the recorded values lie, by the nearest-rank
    /// rule: the value of rank `ceil(p / 100 * count)` (at least 1) in sorted order. `p` is
    /// clamped to `0..=100`; 0 gives the minimum and 100 the maximum. 0 when empty.
    ///
    /// Exact below 256; above, the middle of the value's bucket (within 0.4 %), clamped to the
    /// exact minimum and maximum.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
        let rank = ((p / 100.0 * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bounds_of(index);
                let middle = low + (high - low).div_ceil(2);
                return middle.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Non-empty buckets in increasing order, as `(low, high, count)` with both bounds
    /// inclusive.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().enumerate().filter(|&(_, &c)| c > 0).map(|(i, &c)| {
            let (low, high) = bounds_of(i);
            (low, high, c)
        })
    }

    /// An ASCII bar chart of the distribution on a logarithmic axis, one row per slice of an
    /// octave (a factor of two), with `#` bars scaled to the fullest row. `unit` formats a
    /// bucket's lower bound (for nanoseconds, [`format_nanos`]). Lines are at most
    /// `bar_width + 34` columns wide.
    ///
    /// Rows are octaves cut into 4, 2 or 1 slices, whichever keeps the chart at 24 rows or
    /// fewer; slices start at 1, 1.25, 1.5 and 1.75 times a power of two, bounds the fine
    /// buckets share, so no count is split between rows. Empty rows at either end are left out;
    /// empty rows in the middle stay, because a gap is part of the shape.
    pub fn render_ascii(&self, bar_width: usize, unit: &dyn Fn(u64) -> String) -> String {
        let mut out = String::new();
        if self.total == 0 {
            return out;
        }
        // Row boundaries in the value domain: k-th octave starts at 2^k.
        let octave = |v: u64| 63 - v.max(1).leading_zeros();
        let (lo_oct, hi_oct) = (octave(self.min()), octave(self.max));
        let octaves = hi_oct - lo_oct + 1;
        let slices: u32 = if octaves * 4 <= 24 {
            4
        } else if octaves * 2 <= 24 {
            2
        } else {
            1
        };
        let row_of = |v: u64| -> usize {
            let k = octave(v);
            // Which quarter/half of its octave v lies in: its two bits below the top bit.
            let frac = if k >= 2 { (v >> (k - 2)) & 3 } else { (v << (2 - k)) & 3 } as u32;
            ((k - lo_oct) * slices + frac * slices / 4) as usize
        };
        let row_low = |row: usize| -> u64 {
            let row = row as u32;
            let k = lo_oct + row / slices;
            let quarter = u64::from((row % slices) * (4 / slices));
            // 2^k * (1 + quarter/4), in u128 so neither the small octaves lose their quarters
            // nor the top one overflows.
            u64::try_from((u128::from(4 + quarter) << k) / 4).unwrap_or(u64::MAX)
        };
        let rows = (octaves * slices) as usize;
        let mut counts = vec![0u64; rows];
        for (low, _, count) in self.buckets() {
            counts[row_of(low).min(rows - 1)] += count;
        }
        let first = counts.iter().position(|&c| c > 0).unwrap_or(0);
        let last = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
        let fullest = counts.iter().copied().max().unwrap_or(1).max(1);
        for (row, &count) in counts.iter().enumerate().take(last + 1).skip(first) {
            // Round up so that a row with any count shows at least one mark.
            let bar = ((count as u128 * bar_width as u128).div_ceil(u128::from(fullest))) as usize;
            let share = 100.0 * count as f64 / self.total as f64;
            let _ = writeln!(
                out,
                "  >= {:>9} |{:<bar_width$}| {:>9} {:>5.1}%",
                unit(row_low(row)),
                "#".repeat(bar),
                count,
                share
            );
        }
        out
    }
}

/// Nanoseconds in a short human form with three or four significant digits: `850 ns`,
/// `41.3 us`, `1.29 ms`, `2.50 s` (plain ASCII `us`, so it survives any terminal).
pub fn format_nanos(ns: u64) -> String {
    let v = ns as f64;
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..10_000 => format!("{:.2} us", v / 1e3),
        10_000..1_000_000 => format!("{:.1} us", v / 1e3),
        1_000_000..10_000_000 => format!("{:.2} ms", v / 1e6),
        10_000_000..1_000_000_000 => format!("{:.1} ms", v / 1e6),
        _ => format!("{:.2} s", v / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_round_trips() {
        // Each bucket's bounds map back to it, and buckets tile the line without gaps.
        let mut next = 0u64;
        for index in 0..BUCKETS {
            let (low, high) = bounds_of(index);
            assert_eq!(low, next, "bucket {index}");
            assert_eq!((index_of(low), index_of(high)), (index, index), "bucket {index}");
            next = high.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
        assert_eq!(index_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn exact_percentiles_on_small_data() {
        let mut h = Histogram::new();
        for v in [5, 1, 4, 2, 3] {
            h.record(v);
        }
        // Nearest rank: ceil(p/100 * 5).
        let table = [(0.0, 1), (20.0, 1), (20.1, 2), (50.0, 3), (80.0, 4), (90.0, 5), (100.0, 5)];
        for (p, expected) in table {
            assert_eq!(h.percentile(p), expected, "p{p}");
        }
        assert_eq!((h.count(), h.min(), h.max(), h.mean()), (5, 1, 5, 3.0));

        let mut h = Histogram::new();
        for v in 1..=200 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 100);
        assert_eq!(h.percentile(90.0), 180);
        assert_eq!(h.percentile(99.0), 198);
        assert_eq!(h.percentile(99.9), 200);
        assert_eq!(h.percentile(-3.0), 1);
        assert_eq!(h.percentile(f64::NAN), 1);
    }

    #[test]
    fn empty_is_all_zero() {
        let h = Histogram::new();
        assert_eq!((h.count(), h.min(), h.max(), h.mean(), h.percentile(50.0)), (0, 0, 0, 0.0, 0));
        assert!(h.is_empty());
        assert_eq!(h.render_ascii(40, &format_nanos), "");
    }

    #[test]
    fn relative_error_is_bounded_on_wide_data() {
        // Values spread over eleven orders of magnitude (a geometric series), every percentile
        // checked against the exact sorted answer.
        let mut values: Vec<u64> =
            (0..20_000).map(|i| (10f64.powf(i as f64 / 2_000.0) * 37.0) as u64).collect();
        let mut h = Histogram::new();
        for &v in &values {
            h.record(v);
        }
        values.sort_unstable();
        for p in [0.1, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0] {
            let rank = ((p / 100.0 * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1] as f64;
            let got = h.percentile(p) as f64;
            let error = (got - exact).abs() / exact;
            assert!(error <= 1.0 / 256.0 + 1e-12, "p{p}: got {got}, exact {exact}, error {error}");
        }
        assert_eq!(h.max(), *values.last().unwrap());
        assert_eq!(h.min(), values[0]);
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let mut h = Histogram::new();
        h.record(u64::MAX);
        h.record(u64::MAX);
        assert_eq!(h.percentile(50.0), u64::MAX);
        assert_eq!(h.mean(), u64::MAX as f64);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in 0..5_000u64 {
            let v = v * v * 13 + 7;
            if v % 3 == 0 {
                a.record(v)
            } else {
                b.record(v)
            }
            all.record(v);
        }
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged, all);
        // Merging an empty histogram changes nothing, in either direction.
        let mut empty = Histogram::new();
        empty.merge(&all);
        assert_eq!(empty, all);
        merged.merge(&Histogram::new());
        assert_eq!(merged, all);
    }

    #[test]
    fn ascii_chart_is_plain_narrow_and_complete() {
        let mut h = Histogram::new();
        for i in 0..10_000u64 {
            // Mostly around 100 us, a tail out to about 10 ms.
            let v = 100_000 + (i % 100) * 1_000 + if i % 100 == 0 { i * 1_000 } else { 0 };
            h.record(v);
        }
        let chart = h.render_ascii(40, &format_nanos);
        assert!(chart.is_ascii());
        assert!(chart.lines().all(|l| l.len() <= 80), "{chart}");
        let total: u64 = chart
            .lines()
            .map(|l| l.split('|').nth(2).unwrap().split_whitespace().next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 10_000, "{chart}");
        assert!(chart.starts_with("  >=   98.3 us |"), "{chart}");
        let longest = chart.lines().map(|l| l.matches('#').count()).max();
        assert_eq!(longest, Some(40));
    }

    #[test]
    fn nanos_read_well() {
        let table = [
            (0, "0 ns"),
            (999, "999 ns"),
            (1_000, "1.00 us"),
            (41_300, "41.3 us"),
            (1_290_000, "1.29 ms"),
            (12_340_000, "12.3 ms"),
            (2_500_000_000, "2.50 s"),
        ];
        for (ns, text) in table {
            assert_eq!(format_nanos(ns), text);
        }
    }
}
