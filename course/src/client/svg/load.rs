//! Load mode as pictures: the latency distribution on a logarithmic axis with p50, p99 and
//! p99.9 marked, and requests per second over the run.

use super::{Doc, FONT, num, secs_label, text_width, ticks};
use crate::client::histogram::format_nanos;
use crate::client::load::{LoadReport, Threads};

/// Width of the picture, in px.
const WIDTH: f64 = 900.0;
/// Left edge of the plots (room for the count labels) and their width.
const PLOT_X: f64 = 80.0;
const PLOT_W: f64 = WIDTH - PLOT_X - 30.0;
/// Height of each of the two plots.
const PLOT_H: f64 = 200.0;
/// Bins per octave (factor of two) in the latency chart: 8 makes each bin about 9 % wide,
/// fine enough to show two humps, coarse enough that each bin holds a countable number.
const BINS_PER_OCTAVE: f64 = 8.0;
/// The percentiles marked, with their labels.
const MARKS: [(f64, &str); 3] = [(50.0, "p50"), (99.0, "p99"), (99.9, "p99.9")];

/// A 1-2-5 value of nanoseconds as an axis label: `1 us`, `20 us`, `500 ms`, `2 s`.
fn axis_label(ns: f64) -> String {
    let ns = ns.round() as u64;
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{} us", ns / 1_000),
        1_000_000..1_000_000_000 => format!("{} ms", ns / 1_000_000),
        _ => format!("{} s", ns / 1_000_000_000),
    }
}

/// The values 1, 2 and 5 × 10^k (k ≥ 0) from the largest at or below `min` to the smallest at
/// or above `max`: the latency axis's ticks and its ends, tight around the data whatever its
/// spread.
fn one_two_five(min: u64, max: u64) -> Vec<f64> {
    let (min, max) = (min.max(1) as f64, max.max(1) as f64);
    let mut all = Vec::new();
    let mut decade = 1.0f64;
    while decade <= 1e19 {
        all.extend([decade, 2.0 * decade, 5.0 * decade]);
        decade *= 10.0;
    }
    let first = all.iter().rposition(|&v| v <= min).unwrap_or(0);
    let last = all.iter().position(|&v| v >= max).unwrap_or(all.len() - 1).max(first + 1);
    all[first..=last].to_vec()
}

/// The load report as two charts, one above the other: the latency distribution (log-scale
/// axis, bars per eighth of an octave, p50/p99/p99.9 marked) and requests/s over time (from
/// [`LoadReport::throughput`], with the run's mean as a dashed line). The title says what was
/// loaded, how, and the headline numbers.
pub fn load_charts(report: &LoadReport) -> String {
    let how = if report.keep_alive { "keep-alive" } else { "a connection per request" };
    let threads = match report.threads {
        Threads::EventLoops(1) => "1 event-loop thread".to_string(),
        Threads::EventLoops(t) => format!("{t} event-loop threads"),
        Threads::PerConnection => "a blocking thread each".to_string(),
    };
    let title = format!("load {} for {}", report.url, report.limits);
    let sub = format!(
        "{} connections on {threads} ({how}): {} requests in {:.2} s, {:.1} req/s, {} errors",
        report.connections,
        report.responses(),
        report.elapsed.as_secs_f64(),
        report.requests_per_sec(),
        report.error_count()
    );
    let top1 = 90.0;
    let top2 = top1 + PLOT_H + 90.0;
    let height = top2 + PLOT_H + 50.0;
    let mut doc = Doc::new(WIDTH, height, &format!("{title}; {sub}"));
    doc.text(16.0, 20.0, "fg b", "start", &title);
    doc.text(16.0, 40.0, "fg", "start", &sub);
    latency(&mut doc, report, top1);
    rate(&mut doc, report, top2);
    doc.finish()
}

/// A linear count axis on the left of a plot whose bottom is at `base`: grid and labels.
fn count_axis(doc: &mut Doc, base: f64, max: f64, label: &dyn Fn(f64) -> String) {
    let (marks, _) = ticks(max, 4);
    let top = marks.last().copied().unwrap_or(1.0).max(max);
    for &v in &marks {
        let y = base - v / top * PLOT_H;
        doc.line((PLOT_X, y), (PLOT_X + PLOT_W, y), "grid", "");
        doc.text(PLOT_X - 8.0, y, "mute", "end", &label(v));
    }
    doc.line((PLOT_X, base), (PLOT_X + PLOT_W, base), "axis", "");
}

/// The latency chart with its top at `top`.
fn latency(doc: &mut Doc, report: &LoadReport, top: f64) {
    let l = &report.latency;
    doc.text(PLOT_X, top - 24.0, "fg b", "start", "latency distribution (log scale), requests per bin");
    let base = top + PLOT_H;
    if l.is_empty() {
        doc.line((PLOT_X, base), (PLOT_X + PLOT_W, base), "axis", "");
        doc.text(PLOT_X + PLOT_W / 2.0, top + PLOT_H / 2.0, "mute", "middle", "no responses");
        return;
    }
    // Bins of an eighth of an octave, on log2 of the value; a bucket of the histogram goes
    // wholly into the bin of its low end (its width is under 1 % of it).
    let bin_of = |v: u64| ((v.max(1) as f64).log2() * BINS_PER_OCTAVE).floor() as i64;
    let (first, last) = (bin_of(l.min()), bin_of(l.max()));
    let mut counts = vec![0u64; (last - first + 1) as usize];
    for (low, _, count) in l.buckets() {
        let i = (bin_of(low) - first).clamp(0, last - first) as usize;
        counts[i] += count;
    }
    // The axis runs between the 1-2-5 values around the data, with a tick at each of them.
    let marks = one_two_five(l.min(), l.max());
    let (lo, hi) = (marks[0], marks[marks.len() - 1]);
    let at = |v: f64| PLOT_X + (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()) * PLOT_W;
    let fullest = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    count_axis(doc, base, fullest, &|v| format!("{v:.0}"));
    let (_, step) = ticks(fullest, 4);
    let scale_top = ((fullest / step).ceil() * step).max(fullest);
    for &v in &marks {
        doc.line((at(v), base), (at(v), base + 4.0), "axis", "");
        doc.text(at(v), base + 14.0, "mute", "middle", &axis_label(v));
    }
    for (i, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let bin = first + i as i64;
        let from = 2f64.powf(bin as f64 / BINS_PER_OCTAVE);
        let to = 2f64.powf((bin + 1) as f64 / BINS_PER_OCTAVE);
        // Any count shows at least a pixel, as the ASCII histogram shows at least one `#`.
        let h = (count as f64 / scale_top * PLOT_H).max(1.0);
        doc.rect(at(from), base - h, (at(to) - at(from) - 0.5).max(1.0), h, "f0 bin");
    }
    // The marks, their labels staggered so that close percentiles do not overprint.
    for (row, (p, name)) in MARKS.iter().enumerate() {
        let v = l.percentile(*p) as f64;
        let x = at(v);
        doc.line((x, top - 4.0 + row as f64 * 15.0), (x, base), "mark", " stroke-dasharray=\"4 3\"");
        let label = format!("{name} {}", format_nanos(v as u64));
        let (tx, anchor) = if x + text_width(&label) + 4.0 > PLOT_X + PLOT_W {
            (x - 4.0, "end")
        } else {
            (x + 4.0, "start")
        };
        doc.text(tx, top + 2.0 + row as f64 * 15.0, "fg", anchor, &label);
    }
    doc.text(
        PLOT_X + PLOT_W,
        base + 32.0,
        "mute",
        "end",
        "latency, from the request's write to its last byte",
    );
}

/// The requests/s chart with its top at `top`.
fn rate(doc: &mut Doc, report: &LoadReport, top: f64) {
    let base = top + PLOT_H;
    doc.text(PLOT_X, top - 24.0, "fg b", "start", "requests/s over the run");
    let rates = report.throughput.rates(report.elapsed);
    let end = report.elapsed.as_secs_f64().max(1e-3);
    let fastest = rates.iter().map(|r| r.2).fold(0.0, f64::max);
    let (marks, _) = ticks(fastest.max(1.0), 4);
    let scale_top = marks.last().copied().unwrap_or(1.0).max(fastest).max(1.0);
    count_axis(doc, base, fastest.max(1.0), &|v| {
        if v >= 10_000.0 { format!("{:.0}k", v / 1000.0) } else { format!("{v:.0}") }
    });
    let at = |t: f64| PLOT_X + (t / end).clamp(0.0, 1.0) * PLOT_W;
    let y = |r: f64| base - r / scale_top * PLOT_H;
    let (tmarks, step) = ticks(end, 10);
    for &t in &tmarks {
        doc.line((at(t), base), (at(t), base + 4.0), "axis", "");
        doc.text(at(t), base + 14.0, "mute", "middle", &secs_label(t, step));
    }
    if rates.is_empty() {
        doc.text(PLOT_X + PLOT_W / 2.0, top + PLOT_H / 2.0, "mute", "middle", "no responses");
        return;
    }
    // One step per interval: the rate is an average over the interval, so a flat top, not a
    // point, says what was measured.
    let mut d = format!("M{} {}", num(at(rates[0].0)), num(base));
    for &(from, to, r) in &rates {
        d.push_str(&format!("L{} {}L{} {}", num(at(from)), num(y(r)), num(at(to)), num(y(r))));
    }
    d.push_str(&format!("L{} {}", num(at(rates[rates.len() - 1].1)), num(base)));
    doc.out.push_str(&format!("<path class=\"c0 rate\" stroke-width=\"2\" fill=\"none\" d=\"{d}\"/>\n"));
    let mean = report.requests_per_sec();
    doc.line((PLOT_X, y(mean)), (PLOT_X + PLOT_W, y(mean)), "mark", " stroke-dasharray=\"4 3\"");
    let label = format!("mean {mean:.0} req/s");
    doc.text(PLOT_X + PLOT_W - 4.0, y(mean) - FONT * 0.8, "fg", "end", &label);
    let every = report.throughput.interval.as_secs_f64();
    doc.text(
        PLOT_X + PLOT_W,
        base + 32.0,
        "mute",
        "end",
        &format!("seconds since the start; one step per {every:.1} s"),
    );
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;
    use crate::client::Histogram;
    use crate::client::load::Throughput;
    use std::time::Duration;

    fn report(values: &[u64], counts: Vec<u64>) -> LoadReport {
        let mut latency = Histogram::new();
        for &v in values {
            latency.record(v);
        }
        LoadReport {
            url: "http://127.0.0.1:8000/hello".into(),
            connections: 32,
            threads: Threads::EventLoops(2),
            keep_alive: true,
            limits: "1 s".into(),
            elapsed: Duration::from_millis(1000),
            latency,
            statuses: vec![(200, values.len() as u64)],
            errors: vec![],
            error_examples: vec![],
            bytes_read: 0,
            connects: 32,
            unfinished: 0,
            throughput: Throughput { interval: Duration::from_millis(100), counts },
        }
    }

    #[test]
    fn bins_marks_and_steps_for_a_known_input() {
        // 1000 values at 1024 ns, 10 at 4096 ns and one at 65536 ns: three bins, two and four
        // octaves apart.
        let mut values = vec![1024; 1000];
        values.extend([4096; 10]);
        values.push(65_536);
        let svg = load_charts(&report(&values, vec![101; 10]));
        let e = check::parse(&svg).unwrap_or_else(|why| panic!("{why}\n{svg}"));
        let bins = e.iter().filter(|e| e.name == "rect" && e.attr("class") == Some("f0 bin")).count();
        assert_eq!(bins, 3);
        let texts = check::texts(&e);
        // p50 and p99 fall in the 1024 ns bucket; p99.9, the 1010th of 1011 values, in 4096's.
        let l = &report(&values, vec![]).latency;
        let mark = |p: f64, name: &str| format!("{name} {}", format_nanos(l.percentile(p)));
        assert!(mark(50.0, "p50").starts_with("p50 1.0") && mark(99.9, "p99.9").starts_with("p99.9 4.1"));
        let marks = [mark(50.0, "p50"), mark(99.0, "p99"), mark(99.9, "p99.9")];
        // The axis: 1-2-5 values from 1 us (at or below 1024 ns) to 100 us (at or above 65536).
        let axis = ["1 us", "2 us", "5 us", "10 us", "20 us", "50 us", "100 us", "mean 1011 req/s"]
            .map(String::from);
        for label in marks.iter().chain(&axis) {
            assert!(texts.iter().any(|t| t == label), "{label}: {texts:?}");
        }
        assert_eq!(e.iter().filter(|e| e.attr("class") == Some("mark")).count(), 3 + 1);
        let rate = e.iter().find(|e| e.attr("class") == Some("c0 rate")).expect("the rate line");
        // Ten intervals, two corners each, plus the way down and up at the ends.
        assert_eq!(rate.attr("d").unwrap().matches('L').count(), 10 * 2 + 1);
        assert!(texts[0] == "load http://127.0.0.1:8000/hello for 1 s", "{texts:?}");
        assert!(texts[1].ends_with("1011 requests in 1.00 s, 1011.0 req/s, 0 errors"), "{texts:?}");
    }

    #[test]
    fn the_axis_is_tight_around_the_data() {
        assert_eq!(one_two_five(10_500_000, 112_000_000), vec![1e7, 2e7, 5e7, 1e8, 2e8]);
        assert_eq!(one_two_five(1000, 1000), vec![1e3, 2e3]);
        assert_eq!(one_two_five(0, 3), vec![1.0, 2.0, 5.0]);
        assert_eq!(one_two_five(u64::MAX, u64::MAX).len(), 2);
        assert_eq!(
            (axis_label(2e7), axis_label(5e2), axis_label(2e9)),
            ("20 ms".into(), "500 ns".into(), "2 s".into())
        );
    }

    #[test]
    fn an_empty_run_is_still_a_picture() {
        let svg = load_charts(&report(&[], vec![]));
        let e = check::parse(&svg).expect("well-formed");
        assert_eq!(check::texts(&e).iter().filter(|t| *t == "no responses").count(), 2);
    }
}
