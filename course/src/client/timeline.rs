//! The ASCII timeline: one bar per request, on one time axis, grouped by who served it.
//!
//! A request's row shows three things in plain ASCII (so it survives any terminal, log file or
//! copy-paste):
//!
//! ```text
//!   #2 |~~~~~~------############..............................|
//!       ^ connecting  ^ sent, waiting  ^ being handled   ^ not in flight
//! ```
//!
//! `~` is a connect the server's backlog had no room for: the kernel drops the SYN and the
//! client's kernel sends it again after 1, 3, 7 s ... so a row can start late.
//!
//! The server reports *when* it handled a request (`X-Start`, `X-Elapsed`) on its own clock,
//! seconds since the server started. To draw it on the client's axis (seconds since the
//! release) the two clocks are lined up by the tightest fact we have: a response is complete
//! shortly after its handler ends, so the offset is the smallest `done - handler end` over all
//! requests.
//!
//! Without server timing, `#` is an estimate: the last stretch before each answer, as long as
//! the quickest answer took (every request asks for the same URL). Against a server that
//! handles one at a time, that draws the staircase; the report's verdict says what it is based
//! on (`fire_report`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::fire::{ECHOED, Outcome, Reply};
use super::fire_report::quickest_answer;

/// Character for time a request spent being handled by the server (or, without server timing,
/// its whole time in flight).
pub const HANDLED: char = '#';
/// Character for time a request was sent but not (yet, or any longer) being handled: queued in
/// the server's accept backlog, waiting for a worker, or the response on its way back.
pub const WAITING: char = '-';
/// Character for time the request was not in flight at all.
pub const IDLE: char = '.';
/// Character for time spent connecting: the SYN sent, no connection yet (a full backlog).
pub const CONNECTING: char = '~';

/// Shortest time axis drawn, in seconds.
pub(crate) const MIN_SPAN: f64 = 0.01;

/// Who served a reply, as far as the headers say: `(X-Pid, X-Tid)`.
type Worker = (Option<u32>, Option<u32>);

/// Client-clock offset of the server clock (`client = server + offset`), when every reply has
/// server timing; `None` otherwise.
pub(crate) fn server_clock_offset(outcomes: &[Outcome]) -> Option<f64> {
    let mut offset: Option<f64> = None;
    for o in outcomes {
        if let Ok(reply) = &o.result {
            let (_, end) = reply.server_interval()?;
            let d = o.done - end;
            offset = Some(offset.map_or(d, |best: f64| best.min(d)));
        }
    }
    offset
}

/// Maps `[a, b]` seconds to columns `[from, to)` of a `width`-column axis spanning `span`
/// seconds. Every interval gets at least one column, so even a failed connect is visible.
fn columns(a: f64, b: f64, span: f64, width: usize) -> (usize, usize) {
    let col = |t: f64| {
        let c = (t / span * width as f64).round();
        if c.is_finite() && c > 0.0 { (c as usize).min(width) } else { 0 }
    };
    let from = col(a).min(width.saturating_sub(1));
    let to = col(b).max(from + 1).min(width);
    (from, to)
}

/// Paints `ch` over `[a, b]` seconds of `row`.
fn paint(row: &mut [char], a: f64, b: f64, span: f64, ch: char) {
    if row.is_empty() {
        return;
    }
    let (from, to) = columns(a, b, span, row.len());
    for c in &mut row[from..to] {
        *c = ch;
    }
}

/// True if a row shows its connect: it took at least one column's time, or never finished.
fn shows_connect(o: &Outcome, span: f64, width: usize) -> bool {
    o.connected.is_none_or(|c| c >= span / width as f64)
}

/// One request's bar. `estimate` is the quickest answer's time, used for `#` when there is no
/// server timing.
fn bar(o: &Outcome, offset: Option<f64>, estimate: Option<f64>, span: f64, width: usize) -> String {
    let mut row = vec![IDLE; width];
    paint(&mut row, o.sent, o.done, span, WAITING);
    if shows_connect(o, span, width) {
        paint(&mut row, 0.0, o.connected.unwrap_or(o.done), span, CONNECTING);
    }
    match (&o.result, offset) {
        (Ok(reply), Some(offset)) => {
            if let Some((start, end)) = reply.server_interval() {
                paint(&mut row, start + offset, end + offset, span, HANDLED);
            }
        }
        (Ok(_), None) => {
            let from = estimate.map_or(o.sent, |d| (o.done - d).max(o.sent));
            paint(&mut row, from, o.done, span, HANDLED);
        }
        (Err(_), _) => {}
    }
    row.into_iter().collect()
}

/// The group heading for one worker.
fn heading(worker: Worker, pid_only: bool) -> String {
    let show = |x: Option<u32>| x.map_or_else(|| "?".to_string(), |x| x.to_string());
    match worker {
        (None, None) => "server did not say who (no X-Pid / X-Tid headers)".to_string(),
        (pid, _) if pid_only => format!("pid {}", show(pid)),
        (pid, tid) => format!("pid {} tid {}", show(pid), show(tid)),
    }
}

/// When a reply's handling began, for ordering rows and groups (client time). Without server
/// timing, when it was answered: a staircase then reads top to bottom.
fn start_key(o: &Outcome, offset: Option<f64>) -> f64 {
    match (&o.result, offset) {
        (Ok(r), Some(offset)) => r.server_start.map_or(o.sent, |s| s + offset),
        (Ok(_), None) => o.done,
        _ => o.sent,
    }
}

/// One group of rows: the requests one worker served, in the order it began handling them.
pub(crate) struct Group<'a> {
    /// `pid 4242 tid 4243`, `pid 4300`, or that the server did not say.
    pub(crate) heading: String,
    /// Its requests, in order of when handling began.
    pub(crate) rows: Vec<&'a Outcome>,
}

/// How a volley is laid out on one axis: shared by this ASCII drawing and the SVG one
/// ([`svg`](super::svg)), so the two always agree on groups, order and clocks.
pub(crate) struct Layout<'a> {
    /// The server-clock offset ([`server_clock_offset`]).
    pub(crate) offset: Option<f64>,
    /// The groups, in the order of the first request each served.
    pub(crate) groups: Vec<Group<'a>>,
    /// Requests that got no response, in request order.
    pub(crate) failed: Vec<&'a Outcome>,
}

impl Layout<'_> {
    /// The parts of one request's bar on the client's clock: the whole time it was in flight
    /// (`[sent, done]`, drawn as waiting), and the part the server was handling it, if known
    /// (or, without server timing, the whole flight: there is nothing to tell apart).
    pub(crate) fn intervals(&self, o: &Outcome) -> ((f64, f64), Option<(f64, f64)>) {
        let handled = match (&o.result, self.offset) {
            (Ok(reply), Some(offset)) => reply.server_interval().map(|(s, e)| (s + offset, e + offset)),
            (Ok(_), None) => Some((o.sent, o.done)),
            (Err(_), _) => None,
        };
        ((o.sent, o.done), handled)
    }
}

/// Groups `outcomes` by who served them, orders groups and rows, and lines up the clocks.
pub(crate) fn layout(outcomes: &[Outcome]) -> Layout<'_> {
    let offset = server_clock_offset(outcomes);
    // Group replies by worker, in the order the workers first started handling something.
    let mut groups: BTreeMap<Worker, Vec<&Outcome>> = BTreeMap::new();
    let mut failed = Vec::new();
    for o in outcomes {
        match &o.result {
            Ok(Reply { pid, tid, .. }) => groups.entry((*pid, *tid)).or_default().push(o),
            Err(_) => failed.push(o),
        }
    }
    let by_start = |a: &&Outcome, b: &&Outcome| {
        start_key(a, offset).total_cmp(&start_key(b, offset)).then(a.index.cmp(&b.index))
    };
    let mut ordered: Vec<(Worker, Vec<&Outcome>)> = groups.into_iter().collect();
    for (_, rows) in &mut ordered {
        rows.sort_by(by_start);
    }
    // Groups in the order of the first request each served: with requests released together,
    // start times differ by microseconds of noise, and request numbers read more calmly.
    ordered.sort_by_key(|(_, rows)| rows.iter().map(|o| o.index).min());

    // A forking server's children are single-threaded: there "pid 4300" says it all. With one
    // process, or processes with several threads, the tid is the interesting part.
    let pids: BTreeSet<Option<u32>> = ordered.iter().map(|((pid, _), _)| *pid).collect();
    let pid_only =
        pids.len() > 1 && pids.iter().all(|p| ordered.iter().filter(|((pid, _), _)| pid == p).count() == 1);
    let groups = ordered
        .into_iter()
        .map(|(worker, rows)| Group { heading: heading(worker, pid_only), rows })
        .collect();
    Layout { offset, groups, failed }
}

/// Draws the timeline section: heading, groups of bars, the axis and a legend.
pub(crate) fn render(outcomes: &[Outcome], wall: f64, width: usize) -> String {
    let width = width.max(10);
    let Layout { offset, groups, failed } = layout(outcomes);
    let estimate = if offset.is_none() { quickest_answer(outcomes) } else { None };
    // Below 10 ms the bars would magnify scheduling noise (a refused connect takes 0.1 ms) into
    // full-width shapes that mean nothing; such a volley is drawn on a 10 ms axis.
    let span = wall.max(MIN_SPAN);
    let label_w = outcomes.len().to_string().len() + 1;
    let pad = " ".repeat(2 + label_w + 1);

    let mut out = String::new();
    let _ = writeln!(out, "timeline (0 to {span:.3} s), one row per request, grouped by who served it");
    let row = |out: &mut String, o: &Outcome| {
        let label = format!("#{}", o.index);
        let note = match &o.result {
            Ok(r) if (200..300).contains(&r.status) || r.status == ECHOED => String::new(),
            Ok(r) => format!(" {}", r.status),
            Err(e) => format!(" {}", e.kind),
        };
        let _ = writeln!(out, "  {label:<label_w$} |{}|{note}", bar(o, offset, estimate, span, width));
    };
    for group in &groups {
        let _ = writeln!(out, "{}", group.heading);
        for o in &group.rows {
            row(&mut out, o);
        }
    }
    if !failed.is_empty() {
        let _ = writeln!(out, "no response");
        for o in &failed {
            row(&mut out, o);
        }
    }
    let _ = writeln!(out, "{pad}|{}|", "-".repeat(width));
    let end_label = format!("{span:.3} s");
    let gap = (width + 2).saturating_sub(1 + end_label.len()).max(1);
    let _ = writeln!(out, "{pad}0{}{end_label}", " ".repeat(gap));
    let mut legend = Vec::new();
    match (offset, estimate) {
        (Some(_), _) => legend.push(format!("{HANDLED} handled by the server")),
        (None, Some(d)) => {
            let d = if d < 0.01 { format!("{:.1} ms", d * 1e3) } else { format!("{d:.3} s") };
            legend.push(format!("{HANDLED} answering (no server timing: the last {d}, the quickest answer)"));
        }
        (None, None) => {}
    }
    legend.push(format!("{WAITING} sent, waiting"));
    if outcomes.iter().any(|o| shows_connect(o, span, width)) {
        legend.push(format!("{CONNECTING} connecting"));
    }
    legend.push(format!("{IDLE} not in flight"));
    // Two lines when one would pass 80 columns.
    let one = legend.join("   ");
    if pad.len() + one.len() <= 80 {
        let _ = writeln!(out, "{pad}{one}");
    } else {
        let (first, rest) = legend.split_at(1);
        let _ = writeln!(out, "{pad}{}", first.join("   "));
        let _ = writeln!(out, "{pad}{}", rest.join("   "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_cover_at_least_one_and_stay_in_range() {
        assert_eq!(columns(0.0, 1.0, 5.0, 60), (0, 12));
        assert_eq!(columns(1.0, 2.0, 5.0, 60), (12, 24));
        assert_eq!(columns(5.0, 5.0, 5.0, 60), (59, 60));
        assert_eq!(columns(0.0, 0.0, 5.0, 60), (0, 1));
        assert_eq!(columns(-1.0, 99.0, 5.0, 60), (0, 60));
        assert_eq!(columns(f64::NAN, f64::NAN, 5.0, 60), (0, 1));
    }
}
