//! Requests per second over the run: [`Throughput`], counted by sampling, never per request.
//!
//! The load threads already count their responses (each in its own [`Histogram`]); the thread
//! that waits for them reads those counts every [`SAMPLE_INTERVAL`] and keeps the differences.
//! So the hot loop does nothing more than before, and the cost is one uncontended lock per load
//! thread per sample (with the default two event-loop threads, twenty a second).
//!
//! Bounded: when the series reaches [`MAX_SAMPLES`], neighbouring intervals are added in pairs
//! and the interval doubles, so an hour-long run keeps at most that many counts (8 KiB), at a
//! resolution of a few seconds.
//!
//! [`Histogram`]: crate::client::Histogram

use std::time::Duration;

/// How often the responses are counted at first: ten times a second.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// Most intervals a series keeps (an even number, so they halve cleanly).
pub const MAX_SAMPLES: usize = 1024;

/// Responses completed in each interval of a run, from its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throughput {
    /// Length of each interval: [`SAMPLE_INTERVAL`], doubled each time the series filled up.
    pub interval: Duration,
    /// Responses completed in each interval. The last one may be shorter than `interval`: it
    /// runs to the end of the run (see [`Throughput::rates`]).
    pub counts: Vec<u64>,
}

impl Default for Throughput {
    fn default() -> Self {
        Throughput { interval: SAMPLE_INTERVAL, counts: Vec::new() }
    }
}

impl Throughput {
    /// Each interval as `(from, to, requests per second)`, seconds since the start, for a run
    /// that lasted `elapsed`. A last interval shorter than half the others is left out: a few
    /// responses in a few milliseconds make a rate that means nothing.
    pub fn rates(&self, elapsed: Duration) -> Vec<(f64, f64, f64)> {
        let step = self.interval.as_secs_f64();
        let end = elapsed.as_secs_f64();
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, &count) in self.counts.iter().enumerate() {
            let from = i as f64 * step;
            let to = if i + 1 == self.counts.len() { end.max(from) } else { from + step };
            let len = to - from;
            if len > 0.0 && (len >= step / 2.0 || self.counts.len() == 1) {
                out.push((from, to, count as f64 / len));
            }
        }
        out
    }
}

/// Builds a [`Throughput`] from running totals, one sample at a time.
#[derive(Debug)]
pub(super) struct Sampler {
    series: Throughput,
    /// The running total at the last sample.
    seen: u64,
}

impl Sampler {
    pub(super) fn new() -> Sampler {
        Sampler { series: Throughput::default(), seen: 0 }
    }

    /// When the next sample is due, as time since the start of the run.
    pub(super) fn due(&self) -> Duration {
        self.series.interval * (self.series.counts.len() as u32 + 1)
    }

    /// Records the running total of responses at the end of the current interval. A sample
    /// taken late (a stalled machine) counts what came in meanwhile; the intervals it missed
    /// are sampled at once after it and count nothing, so a stall shows as one high and some
    /// empty intervals, not as a gap.
    pub(super) fn sample(&mut self, total: u64) {
        self.series.counts.push(total.saturating_sub(self.seen));
        self.seen = total;
        if self.series.counts.len() >= MAX_SAMPLES {
            let merged = self.series.counts.chunks(2).map(|pair| pair.iter().sum()).collect();
            self.series.counts = merged;
            self.series.interval *= 2;
        }
    }

    /// The series for a run that ended after `elapsed` with `total` responses: what came after
    /// the last sample is a last, shorter interval.
    pub(super) fn finish(mut self, total: u64, elapsed: Duration) -> Throughput {
        let covered = self.series.interval * self.series.counts.len() as u32;
        if elapsed > covered || total > self.seen {
            self.series.counts.push(total.saturating_sub(self.seen));
        }
        self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_become_rates() {
        let mut s = Sampler::new();
        assert_eq!(s.due(), Duration::from_millis(100));
        for total in [10, 30, 30, 70] {
            s.sample(total);
        }
        assert_eq!(s.due(), Duration::from_millis(500));
        let t = s.finish(75, Duration::from_millis(460));
        assert_eq!(t.counts, vec![10, 20, 0, 40, 5]);
        let rates = t.rates(Duration::from_millis(460));
        // The last 60 ms is more than half an interval: kept, as 5 / 0.06 s.
        assert_eq!(rates.len(), 5);
        assert!((rates[1].2 - 200.0).abs() < 1e-6 && (rates[4].2 - 5.0 / 0.06).abs() < 1e-6, "{rates:?}");
        assert_eq!(t.rates(Duration::from_millis(410)).len(), 4, "a 10 ms tail is left out");
    }

    #[test]
    fn the_series_stays_bounded() {
        // Ten minutes at a steady 30 responses a second, sampled on time.
        let mut s = Sampler::new();
        let mut total = 0;
        let mut last = Duration::ZERO;
        while s.due() <= Duration::from_secs(600) {
            last = s.due();
            total = u64::try_from(last.as_millis()).unwrap() * 3 / 100;
            s.sample(total);
        }
        let t = s.finish(total, last);
        assert!(t.counts.len() <= MAX_SAMPLES);
        assert_eq!(t.interval, SAMPLE_INTERVAL * 8);
        assert_eq!(t.counts.iter().sum::<u64>(), total, "no response lost in the merging");
        assert!(t.counts.iter().all(|&c| c == 24), "{:?}", &t.counts[..4]);
        assert!(t.rates(last).iter().all(|&(_, _, r)| (r - 30.0).abs() < 1e-6));
    }

    #[test]
    fn a_run_shorter_than_one_interval_has_one() {
        let t = Sampler::new().finish(40, Duration::from_millis(20));
        assert_eq!(t.counts, vec![40]);
        assert_eq!(t.rates(Duration::from_millis(20)), vec![(0.0, 0.02, 2000.0)]);
        assert!(Sampler::new().finish(0, Duration::ZERO).rates(Duration::ZERO).is_empty());
    }
}
