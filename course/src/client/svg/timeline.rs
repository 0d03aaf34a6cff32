//! The fire timeline as a picture: one row per request, grouped and coloured by the worker that
//! served it, the time in flight drawn thin and grey ("sent, waiting") and the time the server
//! spent on it drawn thick in the worker's colour ("handled"), on an axis in seconds.
//!
//! The groups, their order and the clock alignment are the ASCII timeline's
//! ([`timeline::layout`](crate::client::timeline)), so the picture and the text always tell
//! the same story.

use super::{Bars, Doc, FONT, PALETTE, secs_label, text_width, ticks};
use crate::client::fire::{ECHOED, Outcome};
use crate::client::fire_report::FireReport;
use crate::client::timeline::{self, MIN_SPAN};

/// Width of a single timeline picture, in px: fits a documentation column at 100 %.
const WIDTH: f64 = 900.0;
/// Width of one panel of [`timelines_side_by_side`].
const PANEL_WIDTH: f64 = 420.0;
/// Height of one text line (a heading row, a roomy request row).
const LINE: f64 = 17.0;
/// Most height the rows of one timeline take; past it rows get thinner.
const MAX_ROWS_HEIGHT: f64 = 520.0;
/// Space below the plot: the axis, its labels and the legend.
const AXIS_HEIGHT: f64 = 58.0;
/// Narrowest a drawn interval gets, in px, so a refused connect (0.1 ms) still shows.
const MIN_BAR: f64 = 1.0;

/// How the rows of one timeline are laid out.
struct Rows {
    /// One line per heading and per row, as in the ASCII timeline; else thin rows, labels beside.
    roomy: bool,
    /// Height of a request row.
    row: f64,
    /// Total height.
    height: f64,
    /// Width of the label column left of the plot.
    label_w: f64,
}

fn plan(report: &FireReport) -> Rows {
    let layout = timeline::layout(&report.outcomes);
    let rows = report.outcomes.len() as f64;
    let headings = (layout.groups.len() + usize::from(!layout.failed.is_empty())) as f64;
    let roomy_height = (rows + headings) * LINE;
    if roomy_height <= MAX_ROWS_HEIGHT {
        let widest = report.outcomes.iter().map(|o| text_width(&row_label(o))).fold(0.0, f64::max);
        return Rows { roomy: true, row: LINE, height: roomy_height, label_w: widest + 10.0 };
    }
    // Thin rows: every request keeps a row of its own (the staircase stays visible), the
    // headings move into a label column beside their group, where a group is tall enough.
    let row = (MAX_ROWS_HEIGHT / rows.max(1.0)).min(LINE);
    let widest = layout
        .groups
        .iter()
        .map(|g| g.heading.as_str())
        .chain(std::iter::once("no response"))
        .map(text_width)
        .fold(0.0, f64::max);
    Rows { roomy: false, row, height: row * rows, label_w: widest.min(190.0) + 10.0 }
}

/// `#3`, or `#3 404`, `#3 refused`: a row's label, with the ASCII timeline's note.
fn row_label(o: &Outcome) -> String {
    match &o.result {
        Ok(r) if (200..300).contains(&r.status) || r.status == ECHOED => format!("#{}", o.index),
        Ok(r) => format!("#{} {}", o.index, r.status),
        Err(e) => format!("#{} {}", o.index, e.kind),
    }
}

/// Draws one timeline with its top-left corner at `(x, y)`, `width` px wide, on an axis of
/// `span` seconds, with its legend below if `legend`; returns the height it took (legend
/// included or not, the same: the legend's line is part of [`AXIS_HEIGHT`]).
fn draw(doc: &mut Doc, report: &FireReport, x: f64, y: f64, width: f64, span: f64, legend: bool) -> f64 {
    let layout = timeline::layout(&report.outcomes);
    let plan = plan(report);
    let plot_x = x + plan.label_w;
    // Room on the right for half the last tick's label.
    let plot_w = (width - plan.label_w - 24.0).max(50.0);
    let at = |t: f64| plot_x + (t.max(0.0) / span).min(1.0) * plot_w;

    // Grid lines first, under the bars.
    let (marks, step) = ticks(span, (plot_w / 70.0) as usize);
    for &t in &marks {
        doc.line((at(t), y), (at(t), y + plan.height + 4.0), "grid", "");
    }

    let mut wait = Bars::default();
    let mut failed = Bars::default();
    let mut handled: Vec<Bars> = PALETTE.iter().map(|_| Bars::default()).collect();
    let mut top = y;
    let group_label = |doc: &mut Doc, top: f64, rows: usize, heading: &str| {
        if plan.roomy {
            doc.text(x, top + LINE / 2.0, "fg b", "start", heading);
        } else if plan.row * rows as f64 >= FONT {
            // Beside its group, centred on it; too tall a group is labelled at its top.
            let mid = top + (plan.row * rows as f64 / 2.0).min(FONT);
            doc.text(plot_x - 8.0, mid, "fg", "end", heading);
        }
    };
    let mut rows_drawn = |doc: &mut Doc, top: &mut f64, outcomes: &[&Outcome], colour: Option<usize>| {
        for o in outcomes {
            let mid = *top + plan.row / 2.0;
            let ((sent, done), part) = layout.intervals(o);
            let bars = if colour.is_some() { &mut wait } else { &mut failed };
            bars.add(at(sent), mid, at(done) - at(sent), MIN_BAR);
            if let (Some(c), Some((a, b))) = (colour, part) {
                handled[c].add(at(a), mid, at(b) - at(a), MIN_BAR);
            }
            if plan.roomy {
                doc.text(plot_x - 8.0, mid, "mute", "end", &row_label(o));
            }
            *top += plan.row;
        }
    };
    for (i, group) in layout.groups.iter().enumerate() {
        group_label(doc, top, group.rows.len(), &group.heading);
        if plan.roomy {
            top += LINE;
        }
        rows_drawn(doc, &mut top, &group.rows, Some(i % PALETTE.len()));
    }
    if !layout.failed.is_empty() {
        group_label(doc, top, layout.failed.len(), "no response");
        if plan.roomy {
            top += LINE;
        }
        rows_drawn(doc, &mut top, &layout.failed, None);
    }
    // Waiting is a thin grey line through the row; handled, a thick bar over it. With thin
    // rows waiting fills its row and handled spills over its neighbours (at least 3 px): one
    // worker's requests follow one another, so their bars join into a coloured staircase
    // that stays visible however thin the rows.
    let (thin, thick) = if plan.roomy { (3.0, 11.0) } else { (plan.row, plan.row.max(3.0)) };
    wait.draw(doc, "wait", thin);
    failed.draw(doc, "fail", thin);
    for (i, bars) in handled.iter().enumerate() {
        bars.draw(doc, &format!("c{i}"), thick);
    }

    // The axis.
    let base = y + plan.height + 4.0;
    doc.line((plot_x, base), (plot_x + plot_w, base), "axis", "");
    for &t in &marks {
        doc.line((at(t), base), (at(t), base + 4.0), "axis", "");
        doc.text(at(t), base + 14.0, "mute", "middle", &secs_label(t, step));
    }
    if legend {
        draw_legend(doc, plot_x, base + 36.0, &legend_keys(&[report]));
    }
    plan.height + 4.0 + AXIS_HEIGHT
}

/// The legend's keys for these reports, in the ASCII timeline's words: `(class, thickness,
/// words)`.
fn legend_keys(reports: &[&FireReport]) -> Vec<(&'static str, f64, &'static str)> {
    let layouts: Vec<_> = reports.iter().map(|r| timeline::layout(&r.outcomes)).collect();
    let mut keys = Vec::new();
    if layouts.iter().any(|l| l.offset.is_some()) {
        keys.push(("c0", 11.0, "handled by the server"));
        keys.push(("wait", 3.0, "sent, waiting"));
    } else if reports.iter().any(|r| r.answered() > 0) {
        keys.push(("c0", 11.0, "in flight (no server timing)"));
    }
    if layouts.iter().any(|l| !l.failed.is_empty()) {
        keys.push(("fail", 3.0, "sent, no answer"));
    }
    if layouts.iter().any(|l| l.groups.len() > 1) {
        keys.push(("c1", 11.0, "one colour per worker (pid/tid)"));
    }
    keys
}

/// Draws the legend keys in a line from `(x, y)`.
fn draw_legend(doc: &mut Doc, x: f64, y: f64, keys: &[(&str, f64, &str)]) {
    let mut lx = x;
    for &(class, thickness, words) in keys {
        let mut b = Bars::default();
        b.add(lx, y, 18.0, 0.0);
        b.draw(doc, class, thickness);
        doc.text(lx + 24.0, y, "mute", "start", words);
        lx += 24.0 + text_width(words) + 18.0;
    }
}

/// The axis span for a report: its wall time, but never under the ASCII timeline's minimum.
fn span_of(report: &FireReport) -> f64 {
    report.wall.max(MIN_SPAN)
}

/// The fire report as a timeline picture: the title says what was fired at where, the wall
/// time and the verdict; below, the rows and the axis. Same groups and order as the ASCII
/// timeline in the text report.
pub fn fire_timeline(report: &FireReport) -> String {
    let n = report.outcomes.len();
    let plural = if n == 1 { "request" } else { "requests" };
    let title = format!("fired {n} {plural} at {} at the same instant", report.url);
    let sub = format!(
        "wall time {:.3} s, {} of {n} answered: {}",
        report.wall,
        report.answered(),
        report.verdict()
    );
    let body_h = if n == 0 { 0.0 } else { plan(report).height + 4.0 + AXIS_HEIGHT };
    let mut doc = Doc::new(WIDTH, 64.0 + body_h + 8.0, &format!("{title}; {sub}"));
    doc.text(16.0, 20.0, "fg b", "start", &title);
    doc.text(16.0, 40.0, "fg", "start", &sub);
    if n > 0 {
        draw(&mut doc, report, 16.0, 64.0, WIDTH - 16.0, span_of(report), true);
    }
    doc.finish()
}

/// Several fire reports side by side, on one time scale (the longest wall time), each panel
/// titled with its name, wall time and verdict: the demo's comparison table as a figure.
pub fn timelines_side_by_side(title: &str, panels: &[(&str, &FireReport)]) -> String {
    let span = panels.iter().map(|(_, r)| span_of(r)).fold(MIN_SPAN, f64::max);
    let body_h = panels
        .iter()
        .map(|(_, r)| if r.outcomes.is_empty() { 0.0 } else { plan(r).height + 4.0 + AXIS_HEIGHT })
        .fold(0.0, f64::max);
    let width = 16.0 + PANEL_WIDTH * panels.len().max(1) as f64;
    let mut doc = Doc::new(width, 92.0 + body_h + 8.0, title);
    doc.text(16.0, 20.0, "fg b", "start", title);
    for (i, (name, report)) in panels.iter().enumerate() {
        let x = 16.0 + PANEL_WIDTH * i as f64;
        doc.text(x, 48.0, "fg b", "start", name);
        doc.text(x, 66.0, "fg", "start", &format!("{:.2} s: {}", report.wall, report.verdict()));
        if !report.outcomes.is_empty() {
            draw(&mut doc, report, x, 88.0, PANEL_WIDTH - 8.0, span, false);
        }
    }
    // One legend for all panels, under the tallest: a panel is too narrow for a line of keys.
    let reports: Vec<&FireReport> = panels.iter().map(|(_, r)| *r).collect();
    draw_legend(&mut doc, 16.0, 88.0 + body_h - AXIS_HEIGHT + 40.0, &legend_keys(&reports));
    doc.finish()
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;
    use crate::client::fire::{ErrorKind, RequestError};

    use crate::client::fire_report::fixtures::{outcome, reply};

    fn report(outcomes: Vec<Outcome>) -> FireReport {
        crate::client::fire_report::fixtures::report("http://127.0.0.1:8000/delay?s=1&x=<1>", outcomes)
    }

    /// A sequential server's five, then one refused connection.
    fn staircase_and_a_failure() -> FireReport {
        let mut outcomes: Vec<Outcome> = (0..5)
            .map(|i| outcome(i + 1, (i + 1) as f64 + 0.003, reply(4242, 4242, 10.0 + i as f64, 1.0)))
            .collect();
        outcomes.push(Outcome {
            index: 6,
            sent: 0.0,
            done: 0.0001,
            connected: None,
            result: Err(RequestError::new(ErrorKind::Refused, "connect: refused")),
        });
        report(outcomes)
    }

    fn threads(n: usize) -> FireReport {
        report((0..n).map(|i| outcome(i + 1, 1.004, reply(4242, 5000 + i as u32, 10.0, 1.0))).collect())
    }

    #[test]
    fn a_staircase_has_its_bars_labels_and_title() {
        let svg = fire_timeline(&staircase_and_a_failure());
        let e = check::parse(&svg).unwrap_or_else(|why| panic!("{why}\n{svg}"));
        // Six rows in flight (five grey, one red), five handled bars, all one worker's colour.
        assert_eq!(check::bars(&e, "wait"), 5 + 1, "five rows and the legend key");
        assert_eq!(check::bars(&e, "fail"), 1 + 1, "the failed row and its legend key");
        assert_eq!(check::bars(&e, "c0"), 5 + 1, "five bars and the legend key");
        assert_eq!(check::bars(&e, "c1"), 0, "one worker, one colour, no per-worker key");
        let texts = check::texts(&e);
        for label in ["#1", "#2", "#3", "#4", "#5", "#6 refused", "pid 4242 tid 4242", "no response"] {
            assert_eq!(texts.iter().filter(|t| *t == label).count(), 1, "{label}: {texts:?}");
        }
        assert!(
            texts[0].starts_with("fired 6 requests at http://127.0.0.1:8000/delay?s=1&x=<1>"),
            "{texts:?}"
        );
        assert_eq!(texts[1], "wall time 5.003 s, 5 of 6 answered: one at a time");
        // The axis: 0 to 5 s by 1 s.
        for t in ["0", "1 s", "2 s", "3 s", "4 s", "5 s"] {
            assert!(texts.iter().any(|x| x == t), "{t}: {texts:?}");
        }
        assert!(svg.contains("prefers-color-scheme:dark"));
    }

    #[test]
    fn each_worker_gets_a_group_and_a_colour() {
        let svg = fire_timeline(&threads(10));
        let e = check::parse(&svg).expect("well-formed");
        let texts = check::texts(&e);
        for i in 0..10 {
            assert!(texts.contains(&format!("pid 4242 tid {}", 5000 + i)), "{texts:?}");
        }
        // Ten workers over eight colours: 0 and 1 get two bars each, plus the legend keys.
        assert_eq!(check::bars(&e, "c0"), 2 + 1);
        assert_eq!(check::bars(&e, "c1"), 2 + 1);
        assert_eq!(check::bars(&e, "c7"), 1);
        assert_eq!(check::bars(&e, "wait"), 10 + 1);
    }

    #[test]
    fn a_thousand_requests_stay_small_in_thin_rows() {
        let svg = fire_timeline(&threads(1000));
        assert!(svg.len() < 50_000, "{} bytes", svg.len());
        let e = check::parse(&svg).expect("well-formed");
        assert_eq!(check::bars(&e, "wait"), 1000 + 1);
        // Rows too thin for labels: none per request or per worker.
        let texts = check::texts(&e);
        assert!(!texts.iter().any(|t| t.starts_with("pid ") || t.starts_with('#')), "{texts:?}");
        // A pool: 32 workers of 32 requests each keep their labels beside their groups.
        let pool = report(
            (0..1024)
                .map(|i| {
                    outcome(i + 1, (i / 32 + 1) as f64, reply(7, 100 + (i % 32) as u32, (i / 32) as f64, 1.0))
                })
                .collect(),
        );
        let svg = fire_timeline(&pool);
        assert!(svg.len() < 50_000, "{} bytes", svg.len());
        let e = check::parse(&svg).expect("well-formed");
        let labels = check::texts(&e).iter().filter(|t| t.starts_with("pid 7 tid ")).count();
        assert_eq!(labels, 32);
        assert_eq!(check::bars(&e, "c"), 1024 + 2);
    }

    #[test]
    fn side_by_side_shares_one_scale() {
        let seq = staircase_and_a_failure();
        let thr = threads(5);
        let svg =
            timelines_side_by_side("5 concurrent", &[("sequential_server", &seq), ("threaded_server", &thr)]);
        let e = check::parse(&svg).expect("well-formed");
        let texts = check::texts(&e);
        assert!(texts.contains(&"threaded_server".to_string()));
        assert!(texts.contains(&"1.00 s: concurrently, by 5 threads of 1 process".to_string()), "{texts:?}");
        // Both panels' axes run to the longer wall time, 5 s, with ticks every 2 s.
        assert_eq!(texts.iter().filter(|t| *t == "4 s").count(), 2, "{texts:?}");
        assert_eq!(check::bars(&e, "wait"), 5 + 5 + 1, "one legend for both");
    }

    #[test]
    fn nothing_fired_is_still_a_picture() {
        let svg = fire_timeline(&report(vec![]));
        let e = check::parse(&svg).expect("well-formed");
        assert_eq!(check::bars(&e, ""), 0);
        assert!(check::texts(&e)[1].ends_with("nothing was fired"));
    }
}
