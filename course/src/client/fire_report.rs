//! What a volley of requests shows: the table, the timeline, the numbers and the verdict.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt::{self, Write as _};

use super::fire::{ErrorKind, Outcome};
use super::timeline;

/// Two intervals that touch within this many seconds do not overlap: one request ending at
/// 1.0004 s and the next starting at 1.0000 s on a sequential server is a hand-over, not
/// concurrency (the server's clock readings are taken a few microseconds apart).
pub const OVERLAP_EPSILON: f64 = 0.001;

/// Default width of the timeline's time axis, in columns (fits 80 columns with labels).
pub const TIMELINE_WIDTH: usize = 60;

/// Everything [`fire`](super::fire()) saw.
#[derive(Debug, Clone, PartialEq)]
pub struct FireReport {
    /// The URL fired at, for the report's first line.
    pub url: String,
    /// One outcome per request, ordered by index.
    pub outcomes: Vec<Outcome>,
    /// Seconds from the release to the end of the last request.
    pub wall: f64,
}

/// Whose clocks the in-flight count was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    /// `X-Start` / `X-Elapsed` from every reply: the server's own account.
    Server,
    /// Some reply lacked them: the client's `[sent, done]`, which includes waiting in queues.
    Client,
}

/// The most intervals open at one instant: a sweep over the intervals in order of start,
/// keeping the ends of those still open in a min-heap. Ends within [`OVERLAP_EPSILON`] of a
/// start count as already closed.
pub fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    // Whole microseconds: f64 is not Ord, and nothing here is finer than a microsecond.
    let micros = |s: f64| (s * 1e6).round() as i64;
    let epsilon = micros(OVERLAP_EPSILON);
    let mut sorted: Vec<(i64, i64)> =
        intervals.iter().map(|&(start, end)| (micros(start), micros(end.max(start)))).collect();
    sorted.sort_unstable();
    let mut open: BinaryHeap<Reverse<i64>> = BinaryHeap::new();
    let mut most = 0;
    for (start, end) in sorted {
        while open.peek().is_some_and(|Reverse(e)| *e <= start + epsilon) {
            open.pop();
        }
        open.push(Reverse(end));
        most = most.max(open.len());
    }
    most
}

impl FireReport {
    /// How many requests got a response (any status).
    pub fn answered(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_ok()).count()
    }

    /// True if every request got a response (any status, 500 included).
    pub fn all_answered(&self) -> bool {
        self.answered() == self.outcomes.len()
    }

    /// Failed requests by kind, in [`ErrorKind::ALL`] order, kinds with none left out.
    pub fn error_counts(&self) -> Vec<(ErrorKind, usize)> {
        ErrorKind::ALL
            .iter()
            .map(|&kind| {
                let count =
                    self.outcomes.iter().filter(|o| matches!(&o.result, Err(e) if e.kind == kind)).count();
                (kind, count)
            })
            .filter(|&(_, count)| count > 0)
            .collect()
    }

    fn in_flight(&self) -> (usize, Basis) {
        let replies: Vec<_> =
            self.outcomes.iter().filter_map(|o| o.result.as_ref().ok().map(|r| (o, r))).collect();
        let server: Option<Vec<(f64, f64)>> = replies.iter().map(|(_, r)| r.server_interval()).collect();
        match server {
            Some(intervals) => (max_overlap(&intervals), Basis::Server),
            // Without the server's word for every request, mixing the two clocks would be
            // meaningless: use the client's view for all.
            None => {
                let intervals: Vec<(f64, f64)> = replies.iter().map(|(o, _)| (o.sent, o.done)).collect();
                (max_overlap(&intervals), Basis::Client)
            }
        }
    }

    /// The most requests being handled at once on the server side.
    ///
    /// Computed from each reply's `[X-Start, X-Start + X-Elapsed]`; if any reply lacks those
    /// headers, from the client's `[sent, done]` instead (an upper bound: it includes time spent
    /// queued). Failed requests are not counted. Intervals that merely touch (within
    /// [`OVERLAP_EPSILON`]) do not overlap.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight().0
    }

    /// Number of distinct server processes (`X-Pid`) that answered.
    pub fn distinct_pids(&self) -> usize {
        let pids: BTreeSet<u32> = self.outcomes.iter().filter_map(|o| o.result.as_ref().ok()?.pid).collect();
        pids.len()
    }

    /// Number of distinct server threads that answered: distinct `(X-Pid, X-Tid)` pairs. The
    /// pair, not the tid alone, names a worker: it keeps apart two servers' threads whose ids
    /// the kernel reused, and it reads the same as the log lines.
    pub fn distinct_tids(&self) -> usize {
        let workers: BTreeSet<(Option<u32>, u32)> = self
            .outcomes
            .iter()
            .filter_map(|o| {
                let r = o.result.as_ref().ok()?;
                Some((r.pid, r.tid?))
            })
            .collect();
        workers.len()
    }

    /// One line a learner can read: "one at a time", "concurrently, by 5 threads of 1 process",
    /// "concurrently, by 3 processes", or that every request failed.
    pub fn verdict(&self) -> String {
        let n = self.outcomes.len();
        if n == 0 {
            return "nothing was fired".to_string();
        }
        if self.answered() == 0 {
            return if n == 1 {
                "no answer: the request failed".to_string()
            } else {
                format!("no answers: all {n} requests failed")
            };
        }
        if self.max_in_flight() <= 1 {
            return "one at a time".to_string();
        }
        let pids = self.distinct_pids();
        if pids > 1 {
            return format!("concurrently, by {pids} processes");
        }
        match self.distinct_tids() {
            0 => "concurrently (the server did not say by whom)".to_string(),
            1 => "concurrently, by 1 thread of 1 process".to_string(),
            tids => format!("concurrently, by {tids} threads of 1 process"),
        }
    }

    /// The whole report with a timeline `width` columns wide: heading, table, timeline, summary.
    pub fn render(&self, width: usize) -> String {
        let mut out = String::new();
        let n = self.outcomes.len();
        let plural = if n == 1 { "request" } else { "requests" };
        let _ = writeln!(out, "fired {n} {plural} at {} at the same instant", self.url);
        if n == 0 {
            return out;
        }
        out.push('\n');
        out.push_str(&self.table());
        out.push('\n');
        out.push_str(&timeline::render(&self.outcomes, self.wall, width));
        out.push('\n');
        out.push_str(&self.summary());
        out
    }

    /// The table: one row per request.
    fn table(&self) -> String {
        let iw = self.outcomes.len().to_string().len().max(1) + 2;
        let mut out = String::new();
        let _ = writeln!(out, "{:>iw$}  sent at  done at   status  server pid  server tid", "#");
        for o in &self.outcomes {
            let head = format!("{:>iw$}  {:>6.3}s  {:>6.3}s", o.index, o.sent, o.done);
            let show = |x: Option<u32>| x.map_or_else(|| "-".to_string(), |x| x.to_string());
            match &o.result {
                Ok(r) => {
                    let _ =
                        writeln!(out, "{head}  {:>7}  {:>10}  {:>10}", r.status, show(r.pid), show(r.tid));
                }
                Err(e) => {
                    let line = format!("{head}  {:>7}  {}", e.kind.name(), e.message);
                    let _ = writeln!(out, "{}", clip(&line, 79));
                }
            }
        }
        out
    }

    /// The numbers and the verdict.
    fn summary(&self) -> String {
        let mut out = String::new();
        let (most, basis) = self.in_flight();
        let basis = match basis {
            _ if self.answered() == 0 => "(nothing was answered)",
            Basis::Server => "(on the server)",
            Basis::Client => "(seen from the client: no X-Start/X-Elapsed headers)",
        };
        let _ = writeln!(out, "wall time          {:.3} s", self.wall);
        let _ = writeln!(out, "answered           {} of {}", self.answered(), self.outcomes.len());
        let _ = writeln!(out, "most in flight     {most} {basis}");
        let _ = writeln!(out, "distinct pids      {}", self.distinct_pids());
        let _ = writeln!(out, "distinct tids      {}", self.distinct_tids());
        let _ = writeln!(out, "verdict            {}", self.verdict());
        let errors = self.error_counts();
        if !errors.is_empty() {
            let list: Vec<String> = errors.iter().map(|(kind, count)| format!("{count} {kind}")).collect();
            let _ = writeln!(out, "errors             {}", list.join(", "));
        }
        out
    }
}

/// Cuts `line` to `max` characters, marking the cut with `...`.
fn clip(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut s: String = line.chars().take(max.saturating_sub(3)).collect();
    s.push_str("...");
    s
}

impl fmt::Display for FireReport {
    /// [`render`](FireReport::render) with a [`TIMELINE_WIDTH`]-column axis.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(TIMELINE_WIDTH))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fire::{Reply, RequestError};

    fn reply(pid: u32, tid: u32, start: f64, elapsed: f64) -> Result<Reply, RequestError> {
        Ok(Reply {
            status: 200,
            pid: Some(pid),
            tid: Some(tid),
            server_start: Some(start),
            server_elapsed: Some(elapsed),
            body_len: 0,
        })
    }

    fn report(outcomes: Vec<Outcome>) -> FireReport {
        let wall = outcomes.iter().map(|o| o.done).fold(0.0, f64::max);
        FireReport { url: "http://127.0.0.1:8000/delay?s=1".into(), outcomes, wall }
    }

    /// A sequential server: one thread, each request starting when the previous ended.
    fn staircase() -> FireReport {
        report(
            (0..5)
                .map(|i| Outcome {
                    index: i + 1,
                    sent: 0.0,
                    done: (i + 1) as f64 + 0.003,
                    result: reply(4242, 4242, 10.0 + i as f64, 1.0),
                })
                .collect(),
        )
    }

    /// A threaded server: five threads of one process, all at once.
    fn parallel_threads() -> FireReport {
        report(
            (0..5)
                .map(|i| Outcome {
                    index: i + 1,
                    sent: 0.0,
                    done: 1.004,
                    result: reply(4242, 4250 + i as u32, 10.0, 1.0),
                })
                .collect(),
        )
    }

    /// A forking server: five single-threaded children, all at once.
    fn parallel_processes() -> FireReport {
        report(
            (0..5)
                .map(|i| Outcome {
                    index: i + 1,
                    sent: 0.0,
                    done: 1.004,
                    result: reply(4300 + i as u32, 4300 + i as u32, 10.0, 1.0),
                })
                .collect(),
        )
    }

    #[test]
    fn overlap_sweep() {
        assert_eq!(max_overlap(&[]), 0);
        assert_eq!(max_overlap(&[(0.0, 0.0)]), 1);
        assert_eq!(max_overlap(&[(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]), 1);
        // Touching within the epsilon is a hand-over, not an overlap.
        assert_eq!(max_overlap(&[(0.0, 1.0005), (1.0, 2.0)]), 1);
        assert_eq!(max_overlap(&[(0.0, 1.01), (1.0, 2.0)]), 2);
        assert_eq!(max_overlap(&[(0.0, 3.0), (1.0, 2.0), (1.5, 4.0), (3.5, 5.0)]), 3);
        // Nonsense in, no panic out: NaN counts as 0, an end before its start as the start.
        assert_eq!(max_overlap(&[(f64::NAN, 1.0), (0.5, 0.2)]), 2);
    }

    #[test]
    fn staircase_is_one_at_a_time() {
        let r = staircase();
        assert_eq!(r.max_in_flight(), 1);
        assert_eq!(r.distinct_pids(), 1);
        assert_eq!(r.distinct_tids(), 1);
        assert_eq!(r.verdict(), "one at a time");
    }

    #[test]
    fn parallel_threads_are_concurrent_threads() {
        let r = parallel_threads();
        assert_eq!(r.max_in_flight(), 5);
        assert_eq!(r.distinct_tids(), 5);
        assert_eq!(r.verdict(), "concurrently, by 5 threads of 1 process");
    }

    #[test]
    fn parallel_processes_are_concurrent_processes() {
        let r = parallel_processes();
        assert_eq!(r.max_in_flight(), 5);
        assert_eq!(r.distinct_pids(), 5);
        assert_eq!(r.verdict(), "concurrently, by 5 processes");
    }

    #[test]
    fn without_headers_the_client_view_is_used() {
        let mut r = parallel_threads();
        for o in &mut r.outcomes {
            if let Ok(reply) = &mut o.result {
                reply.server_start = None;
                reply.tid = None;
                reply.pid = None;
            }
        }
        assert_eq!(r.max_in_flight(), 5);
        assert_eq!(r.verdict(), "concurrently (the server did not say by whom)");
        assert!(r.to_string().contains("seen from the client"));
    }

    #[test]
    fn all_failed_says_so() {
        let mut r = staircase();
        for o in &mut r.outcomes {
            o.result = Err(RequestError::new(ErrorKind::Refused, "connect: refused"));
        }
        assert_eq!(r.verdict(), "no answers: all 5 requests failed");
        assert_eq!(r.error_counts(), vec![(ErrorKind::Refused, 5)]);
        assert!(!r.all_answered());
        let text = r.to_string();
        assert!(text.contains("errors             5 refused"), "{text}");
        assert!(text.contains("no response\n"), "{text}");
        r.outcomes.truncate(1);
        assert_eq!(r.verdict(), "no answer: the request failed");
        assert_eq!(report(vec![]).verdict(), "nothing was fired");
    }

    #[test]
    fn singular_thread() {
        let mut r = parallel_threads();
        for o in &mut r.outcomes {
            if let Ok(reply) = &mut o.result {
                reply.tid = Some(7);
            }
        }
        assert_eq!(r.verdict(), "concurrently, by 1 thread of 1 process");
    }

    #[test]
    fn rendering_shows_table_timeline_and_summary() {
        let text = staircase().to_string();
        assert!(
            text.starts_with("fired 5 requests at http://127.0.0.1:8000/delay?s=1 at the same instant\n")
        );
        assert!(text.contains("  1   0.000s   1.003s      200        4242        4242\n"), "{text}");
        assert!(text.contains("\npid 4242 tid 4242\n"), "{text}");
        assert!(text.contains("verdict            one at a time\n"), "{text}");
        assert!(text.contains("most in flight     1 (on the server)\n"), "{text}");
        // The staircase: each row's bar starts further right.
        let starts: Vec<usize> = text
            .lines()
            .filter(|l| l.trim_start().starts_with('#') && l.contains('|'))
            .map(|l| l.find('#').unwrap_or(0))
            .collect();
        assert_eq!(starts.len(), 5, "{text}");
        let bars: Vec<&str> = text.lines().filter(|l| l.contains("|#") || l.contains("-#")).collect();
        assert_eq!(bars.len(), 5, "{text}");
        assert!(text.is_ascii());
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
    }

    #[test]
    fn rendering_groups_threads_and_processes() {
        let text = parallel_threads().to_string();
        for tid in 4250..4255 {
            assert!(text.contains(&format!("\npid 4242 tid {tid}\n")), "{text}");
        }
        let text = parallel_processes().to_string();
        for pid in 4300..4305 {
            assert!(text.contains(&format!("\npid {pid}\n")), "{text}");
        }
        assert!(text.contains("verdict            concurrently, by 5 processes\n"));
    }

    #[test]
    fn a_pool_of_two_serves_four_in_two_rounds() {
        let r = report(
            (0..4)
                .map(|i| Outcome {
                    index: i + 1,
                    sent: 0.0,
                    done: (i / 2 + 1) as f64,
                    result: reply(4242, 4250 + (i % 2) as u32, 10.0 + (i / 2) as f64, 1.0),
                })
                .collect(),
        );
        assert_eq!(r.max_in_flight(), 2);
        assert_eq!(r.verdict(), "concurrently, by 2 threads of 1 process");
        let text = r.to_string();
        let group = text
            .split("pid 4242 tid 4250\n")
            .nth(1)
            .and_then(|rest| rest.split("pid 4242 tid 4251\n").next())
            .unwrap_or_default();
        // Thread 4250 served #1 then #3; #3 waited for the first round.
        assert!(group.starts_with("  #1 |###"), "{text}");
        assert!(group.contains("\n  #3 |-----"), "{text}");
    }

    #[test]
    fn errors_are_clipped_to_the_terminal() {
        let mut r = staircase();
        r.outcomes[2].result = Err(RequestError::new(ErrorKind::Other, "x".repeat(300)));
        let text = r.to_string();
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
        assert!(text.contains("  3   0.000s   3.003s    error  xxx"), "{text}");
    }
}
