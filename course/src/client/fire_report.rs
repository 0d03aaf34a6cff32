//! What a volley of requests shows: the table, the timeline, the numbers and the verdict.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt::{self, Write as _};

use super::fire::{ECHOED, ErrorKind, Outcome};
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

/// Without server timing, answers that came back within this fraction of the quickest
/// answer's time of each other were being handled at the same time (see [`Basis::Spacing`]).
pub const SPACING_WINDOW: f64 = 0.5;

/// Without server timing, the quickest answer must take at least this long (seconds) for the
/// spacing of the answers to mean anything: below it, the client's own scheduling (threads
/// waking a few milliseconds late on busy cores) moves the answers as much as the server does.
pub const MIN_READABLE: f64 = 0.05;

/// What the in-flight count is based on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Basis {
    /// `X-Start` / `X-Elapsed` from every reply: the server's own account of when it handled
    /// each request.
    Server,
    /// The spacing of the answers on the client's clock. Every request asks for the same URL, so
    /// each is taken to cost the server at least as long as the quickest answer took from
    /// sending to done (`quickest`). Two answers less than [`SPACING_WINDOW`] × `quickest` apart
    /// were then being handled at the same time; a server that handles one at a time sends
    /// its answers a whole `quickest` apart: a staircase.
    Spacing {
        /// Seconds from sending to the end of the response of the quickest answer.
        quickest: f64,
    },
    /// No server timing, and the quickest answer came back in under [`MIN_READABLE`]: too
    /// quick to read the spacing, so the report says it cannot tell.
    TooQuick {
        /// Seconds from sending to the end of the response of the quickest answer.
        quickest: f64,
    },
    /// No request was answered.
    NoAnswers,
}

/// The most requests seen handled at once, and what that is based on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InFlight {
    /// The count: exact on the server's clock, a lower bound from the spacing of the answers,
    /// `None` when it cannot be told.
    pub most: Option<usize>,
    /// What it is based on.
    pub basis: Basis,
}

/// The most of the sorted instants `times` that fall within `window` seconds of each other
/// (a window sliding over the sorted list).
fn densest(times: &[f64], window: f64) -> usize {
    let mut most = 0;
    let mut from = 0;
    for to in 0..times.len() {
        while times[to] - times[from] >= window {
            from += 1;
        }
        most = most.max(to - from + 1);
    }
    most
}

/// The shortest time any answered request took from sending to done, in seconds.
pub(crate) fn quickest_answer(outcomes: &[Outcome]) -> Option<f64> {
    outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| (o.done - o.sent).max(0.0))
        .filter(|d| d.is_finite())
        .min_by(f64::total_cmp)
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

    /// How many requests were handled at once, judged from what the client can see.
    ///
    /// With `X-Start`/`X-Elapsed` on every reply, from the server's own intervals (exact;
    /// intervals that merely touch, within [`OVERLAP_EPSILON`], do not overlap). Without them,
    /// from the spacing of the answers ([`Basis::Spacing`]): a lower bound, or "cannot tell"
    /// when the answers came too quickly to read ([`Basis::TooQuick`]). Never from the
    /// client's `[sent, done]` intervals: requests waiting in a sequential server's backlog are
    /// all in flight from the client's side, and would look concurrent. Failed requests are not
    /// counted.
    pub fn in_flight(&self) -> InFlight {
        let replies: Vec<_> =
            self.outcomes.iter().filter_map(|o| o.result.as_ref().ok().map(|r| (o, r))).collect();
        if replies.is_empty() {
            return InFlight { most: None, basis: Basis::NoAnswers };
        }
        let server: Option<Vec<(f64, f64)>> = replies.iter().map(|(_, r)| r.server_interval()).collect();
        if let Some(intervals) = server {
            return InFlight { most: Some(max_overlap(&intervals)), basis: Basis::Server };
        }
        // Without the server's word for every request, mixing the two clocks would be
        // meaningless: the client's view for all.
        let quickest = quickest_answer(&self.outcomes).unwrap_or(0.0);
        if quickest < MIN_READABLE {
            return InFlight { most: None, basis: Basis::TooQuick { quickest } };
        }
        let mut done: Vec<f64> = replies.iter().map(|(o, _)| o.done).collect();
        done.sort_by(f64::total_cmp);
        InFlight { most: Some(densest(&done, SPACING_WINDOW * quickest)), basis: Basis::Spacing { quickest } }
    }

    /// The most requests being handled at once on the server side, as far as the client can
    /// tell (see [`in_flight`](FireReport::in_flight)); 0 when it cannot tell or nothing was
    /// answered.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight().most.unwrap_or(0)
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

    /// One line a learner can read: "one at a time", "concurrently, by 5 threads of 1
    /// process", "concurrently, by 3 processes", "concurrently, at least 6 at once", "cannot
    /// tell ...", or that every request failed. [`basis`](FireReport::basis) says what it is
    /// based on.
    pub fn verdict(&self) -> String {
        let n = self.outcomes.len();
        if n == 0 {
            return "nothing was fired".to_string();
        }
        let in_flight = self.in_flight();
        let most = match (in_flight.most, in_flight.basis) {
            (_, Basis::NoAnswers) => {
                return if n == 1 {
                    "no answer: the request failed".to_string()
                } else {
                    format!("no answers: all {n} requests failed")
                };
            }
            // The hint names the example servers' endpoint; an echo server has none.
            (None, _) | (_, Basis::TooQuick { .. }) if self.url.starts_with("http://") => {
                return "cannot tell: the answers came too quickly to read (try /delay?s=0.2)".to_string();
            }
            (None, _) | (_, Basis::TooQuick { .. }) => {
                return "cannot tell: the answers came too quickly to read".to_string();
            }
            (Some(most), _) => most,
        };
        if most <= 1 {
            return "one at a time".to_string();
        }
        let pids = self.distinct_pids();
        if pids > 1 {
            return format!("concurrently, by {pids} processes");
        }
        match self.distinct_tids() {
            0 if in_flight.basis == Basis::Server => {
                "concurrently (the server did not say by whom)".to_string()
            }
            0 => format!("concurrently, at least {most} at once"),
            1 => "concurrently, by 1 thread of 1 process".to_string(),
            tids => format!("concurrently, by {tids} threads of 1 process"),
        }
    }

    /// What the verdict is based on, in a sentence: the server's own timing headers, or the
    /// spacing of the answers on the client's clock (and how far apart they came).
    pub fn basis(&self) -> String {
        let in_flight = self.in_flight();
        match in_flight.basis {
            Basis::NoAnswers => "nothing was answered".to_string(),
            Basis::Server => {
                "the server's X-Start/X-Elapsed headers: when it handled each request".to_string()
            }
            Basis::TooQuick { quickest } => format!(
                "no X-Start/X-Elapsed headers, and the quickest answer took {}: under {:.0} ms, \
                 too quick to tell a staircase from the client's own scheduling",
                human(quickest),
                MIN_READABLE * 1e3
            ),
            Basis::Spacing { quickest } => {
                let window = human(SPACING_WINDOW * quickest);
                let seen = match in_flight.most {
                    Some(most) if most > 1 => {
                        format!("{most} answers came within {window} of each other, so they overlapped")
                    }
                    _ => format!("no two answers came within {window} of each other: a staircase"),
                };
                format!(
                    "no X-Start/X-Elapsed headers, so the spacing of the answers: the quickest took {}, \
                     and {seen}",
                    human(quickest)
                )
            }
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
            // A request that never connected was never sent.
            let sent = match o.connected {
                Some(_) => format!("{:>7.3}s", o.sent),
                None => format!("{:>8}", "-"),
            };
            let head = format!("{:>iw$} {sent} {:>7.3}s", o.index, o.done);
            let show = |x: Option<u32>| x.map_or_else(|| "-".to_string(), |x| x.to_string());
            match &o.result {
                Ok(r) => {
                    let status = if r.status == ECHOED { "echoed".to_string() } else { r.status.to_string() };
                    let _ = writeln!(out, "{head}  {status:>7}  {:>10}  {:>10}", show(r.pid), show(r.tid));
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
        let in_flight = self.in_flight();
        let most = match (in_flight.most, in_flight.basis) {
            (_, Basis::NoAnswers) => "0 (nothing was answered)".to_string(),
            (Some(most), Basis::Server) => format!("{most} (on the server)"),
            (Some(1), _) => "1 (seen from the client: the answers came one by one)".to_string(),
            (Some(most), _) => format!("at least {most} (seen from the client)"),
            (None, _) => "cannot tell (seen from the client)".to_string(),
        };
        let _ = writeln!(out, "wall time          {:.3} s", self.wall);
        let _ = writeln!(out, "answered           {} of {}", self.answered(), self.outcomes.len());
        let _ = writeln!(out, "most in flight     {most}");
        let _ = writeln!(out, "distinct pids      {}", self.distinct_pids());
        let _ = writeln!(out, "distinct tids      {}", self.distinct_tids());
        let _ = writeln!(out, "verdict            {}", self.verdict());
        if !matches!(in_flight.basis, Basis::Server | Basis::NoAnswers) {
            for (i, line) in wrap(&self.basis(), 79 - 19).iter().enumerate() {
                let label = if i == 0 { "based on" } else { "" };
                let _ = writeln!(out, "{label:<18} {line}");
            }
        }
        let errors = self.error_counts();
        if !errors.is_empty() {
            let list: Vec<String> = errors
                .iter()
                .map(|&(kind, count)| {
                    let when: Vec<f64> = self
                        .outcomes
                        .iter()
                        .filter(|o| matches!(&o.result, Err(e) if e.kind == kind))
                        .map(|o| o.done)
                        .collect();
                    let first = when.iter().copied().fold(f64::INFINITY, f64::min);
                    let last = when.iter().copied().fold(0.0, f64::max);
                    if last - first < 0.0005 {
                        format!("{count} {kind} (at {first:.3} s)")
                    } else {
                        format!("{count} {kind} (at {first:.3} to {last:.3} s)")
                    }
                })
                .collect();
            let _ = writeln!(out, "errors             {}", list.join(", "));
        }
        out
    }
}

/// A duration for a sentence: `0.201 s`, or `0.3 ms` below a hundredth of a second.
fn human(secs: f64) -> String {
    if secs < 0.01 { format!("{:.1} ms", secs * 1e3) } else { format!("{secs:.3} s") }
}

/// Splits `text` into lines of at most `width` characters, at spaces (never between a number
/// and its unit).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match words.last_mut() {
            Some(last)
                if matches!(word.trim_end_matches([',', '.', ';', ':', ')']), "s" | "ms")
                    && last.parse::<f64>().is_ok() =>
            {
                last.push(' ');
                last.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
    }
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in &words {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
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

/// Volleys for unit tests of what draws or judges a [`FireReport`] (this file, the SVG timeline).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::FireReport;
    use crate::client::fire::{Outcome, Reply, RequestError};

    /// A 200 from `pid`/`tid`, handled from `start` for `elapsed` seconds (server clock).
    pub(crate) fn reply(pid: u32, tid: u32, start: f64, elapsed: f64) -> Result<Reply, RequestError> {
        Ok(Reply {
            status: 200,
            pid: Some(pid),
            tid: Some(tid),
            server_start: Some(start),
            server_elapsed: Some(elapsed),
            body_len: 0,
        })
    }

    /// Request `index`, sent and connected at 0, done at `done`.
    pub(crate) fn outcome(index: usize, done: f64, result: Result<Reply, RequestError>) -> Outcome {
        Outcome { index, connected: Some(0.0), sent: 0.0, done, result }
    }

    /// The report of `outcomes` fired at `url`; the wall time is the last one's end.
    pub(crate) fn report(url: &str, outcomes: Vec<Outcome>) -> FireReport {
        let wall = outcomes.iter().map(|o| o.done).fold(0.0, f64::max);
        FireReport { url: url.into(), outcomes, wall }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fire::RequestError;

    use super::fixtures::{outcome, reply};

    fn report(outcomes: Vec<Outcome>) -> FireReport {
        super::fixtures::report("http://127.0.0.1:8000/delay?s=1", outcomes)
    }

    /// A sequential server: one thread, each request starting when the previous ended.
    fn staircase() -> FireReport {
        report(
            (0..5)
                .map(|i| outcome(i + 1, (i + 1) as f64 + 0.003, reply(4242, 4242, 10.0 + i as f64, 1.0)))
                .collect(),
        )
    }

    /// A threaded server: five threads of one process, all at once.
    fn parallel_threads() -> FireReport {
        report((0..5).map(|i| outcome(i + 1, 1.004, reply(4242, 4250 + i as u32, 10.0, 1.0))).collect())
    }

    /// A forking server: five single-threaded children, all at once.
    fn parallel_processes() -> FireReport {
        report(
            (0..5)
                .map(|i| outcome(i + 1, 1.004, reply(4300 + i as u32, 4300 + i as u32, 10.0, 1.0)))
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

    /// Takes the server's timing (and, with `who`, its pid and tid) out of every reply.
    fn without_headers(mut r: FireReport, who: bool) -> FireReport {
        for o in &mut r.outcomes {
            if let Ok(reply) = &mut o.result {
                reply.server_start = None;
                reply.server_elapsed = None;
                if who {
                    reply.tid = None;
                    reply.pid = None;
                }
            }
        }
        r
    }

    #[test]
    fn without_headers_parallel_answers_are_concurrent() {
        let r = without_headers(parallel_threads(), true);
        assert_eq!(r.in_flight(), InFlight { most: Some(5), basis: Basis::Spacing { quickest: 1.004 } });
        assert_eq!(r.max_in_flight(), 5);
        assert_eq!(r.verdict(), "concurrently, at least 5 at once");
        let text = r.to_string();
        assert!(text.contains("most in flight     at least 5 (seen from the client)\n"), "{text}");
        assert!(text.contains("based on           no X-Start/X-Elapsed headers"), "{text}");
        assert!(r.basis().contains("5 answers came within 0.502 s of each other"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
        // Who served them, when the server says so, is still reported.
        let r = without_headers(parallel_processes(), false);
        assert_eq!(r.verdict(), "concurrently, by 5 processes");
    }

    #[test]
    fn without_headers_a_staircase_is_one_at_a_time() {
        // A sequential server seen from the client: every request in flight from 0 (waiting in
        // the backlog), the answers one second apart. Overlapping [sent, done] intervals must
        // not be read as concurrency.
        let r = without_headers(staircase(), true);
        assert_eq!(r.max_in_flight(), 1);
        assert_eq!(r.verdict(), "one at a time");
        let text = r.to_string();
        assert!(
            r.basis().contains("no two answers came within 0.501 s of each other: a staircase"),
            "{text}"
        );
        // The estimated handling draws the staircase: each bar's `#` starts further right.
        let firsts: Vec<usize> =
            text.lines().filter_map(|l| l.split_once(" |")).filter_map(|(_, bar)| bar.find('#')).collect();
        assert_eq!(firsts.len(), 5, "{text}");
        assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn without_headers_quick_answers_cannot_be_told() {
        let mut r = without_headers(parallel_threads(), true);
        for o in &mut r.outcomes {
            o.done = 0.002 + o.index as f64 * 0.001;
        }
        assert_eq!(r.in_flight().most, None);
        assert_eq!(r.max_in_flight(), 0);
        assert!(r.verdict().starts_with("cannot tell"), "{}", r.verdict());
        assert!(r.to_string().contains("too quick to tell"), "{r}");
    }

    #[test]
    fn densest_window() {
        assert_eq!(densest(&[], 1.0), 0);
        assert_eq!(densest(&[1.0], 1.0), 1);
        assert_eq!(densest(&[1.0, 2.0, 3.0], 0.5), 1);
        assert_eq!(densest(&[1.0, 1.1, 1.2, 3.0, 3.05], 0.5), 3);
        // The window is half-open: exactly `window` apart is not together.
        assert_eq!(densest(&[1.0, 1.5], 0.5), 1);
    }

    #[test]
    fn late_connects_and_failures_are_timed() {
        let mut r = staircase();
        // #4 connected late (a retried SYN), #5 never did: refused at 0, and #3 timed out.
        r.outcomes[3].connected = Some(1.0);
        r.outcomes[3].sent = 1.0;
        r.outcomes[4] = Outcome {
            index: 5,
            connected: None,
            sent: 0.0,
            done: 0.0,
            result: Err(RequestError::new(ErrorKind::Refused, "connect: refused")),
        };
        r.outcomes[2].result =
            Err(RequestError::new(ErrorKind::Timeout, "no complete response within 3.0 s"));
        r.outcomes[2].done = 3.0;
        r.wall = 4.003;
        let text = r.to_string();
        assert!(text.contains("  4   1.000s   4.003s      200"), "{text}");
        assert!(text.contains("  5        -   0.000s  refused  connect: refused"), "{text}");
        assert!(text.contains("errors             1 refused (at 0.000 s), 1 timeout (at 3.000 s)"), "{text}");
        assert!(text.contains("~ connecting"), "{text}");
        let mut times = staircase();
        for (i, o) in times.outcomes.iter_mut().enumerate().skip(3) {
            o.result = Err(RequestError::new(ErrorKind::Timeout, "no connection"));
            o.connected = None;
            o.done = 5.0 + i as f64;
        }
        assert!(times.to_string().contains("2 timeout (at 8.000 to 9.000 s)"), "{times}");
    }

    #[test]
    fn wrapping_keeps_numbers_with_units() {
        let lines = wrap("the quickest took 0.201 s, and so on and on", 20);
        assert_eq!(lines, ["the quickest took", "0.201 s, and so on", "and on"]);
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
        assert!(text.contains("errors             5 refused (at "), "{text}");
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
                .map(|i| {
                    outcome(
                        i + 1,
                        (i / 2 + 1) as f64,
                        reply(4242, 4250 + (i % 2) as u32, 10.0 + (i / 2) as f64, 1.0),
                    )
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
