//! Pictures of what the client measured, as SVG: the fire timeline, the demo's timelines
//! side by side, and load mode's latency distribution and requests/s over time.
//!
//! SVG is text, so this is string formatting and nothing else: no drawing library, no runtime
//! dependency. Each picture is one self-contained file a browser (or GitHub's markdown view)
//! shows as it is:
//!
//! * **both themes**: a background rectangle and a `<style>` whose colours change under
//!   `@media (prefers-color-scheme: dark)`, so the picture reads on a white page and on a dark
//!   one (an `<img>` gets the reader's colour scheme); the bar colours are mid-tones that stand
//!   out on either background;
//! * **small**: all bars of one colour are one `<path>` of `M x y h w` segments, never one element
//!   per bar, and rows get thinner (down to a fraction of a pixel) as requests get more, so 1000
//!   requests stay well under 50 KB (a unit test holds that line);
//! * **readable at 100 %**: 13 px text, labels only where there is room for them (a row label
//!   when a row is at least a line tall, a worker label when its group is).
//!
//! ```no_run
//! use course::client::{FireConfig, Url, fire, svg};
//!
//! let report = fire(&FireConfig::new(5, Url::parse("http://127.0.0.1:8000/delay?s=1")?));
//! std::fs::write("timeline.svg", svg::fire_timeline(&report))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Where things are: `timeline.rs` draws fire reports (one, or several side by side), on the
//! same [layout](super::timeline) as the ASCII timeline; `load.rs` draws load reports.

mod load;
mod timeline;

pub use load::load_charts;
pub use timeline::{fire_timeline, timelines_side_by_side};

use std::fmt::Write as _;

/// Bar colours, one per worker in turn: mid-tones (Tableau 10's) that stand out on a white
/// background and on a dark one alike. Red is kept for failures.
const PALETTE: [&str; 8] =
    ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7"];

/// Failed requests and percentile marks.
const RED: &str = "#e15759";

/// Text size in px: what a browser shows at 100 % for body text is 16; 13 is a figure's.
const FONT: f64 = 13.0;

/// Escapes text for an XML element or an attribute value in double quotes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all; none should reach here
            // (URLs and headings are ASCII), but a picture must stay well-formed whatever comes.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// A number for a coordinate: one decimal, no `-0.0`, no NaN (which would make the file
/// invalid for a renderer, if not for a parser).
pub(crate) fn num(x: f64) -> String {
    let x = if x.is_finite() { (x * 10.0).round() / 10.0 } else { 0.0 };
    let x = if x == 0.0 { 0.0 } else { x };
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

/// An SVG document being written: the root element, the style, the background.
pub(crate) struct Doc {
    pub(crate) out: String,
}

impl Doc {
    /// Starts a `width` × `height` picture whose accessible name is `title`.
    pub(crate) fn new(width: f64, height: f64, title: &str) -> Doc {
        let mut out = String::new();
        let (w, h) = (num(width), num(height));
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\" \
             font-size=\"{FONT}\" role=\"img\">"
        );
        let _ = writeln!(out, "<title>{}</title>", esc(title));
        out.push_str("<style>\n");
        out.push_str(
            ".bg{fill:#ffffff}.fg{fill:#1f2328}.mute{fill:#59636e}.grid{stroke:#d8dee4}\
             .axis{stroke:#59636e}.wait{stroke:#a8b1bb}.waitf{fill:#a8b1bb}\n\
             @media (prefers-color-scheme:dark){.bg{fill:#0d1117}.fg{fill:#e6edf3}.mute{fill:#9198a1}\
             .grid{stroke:#30363d}.axis{stroke:#9198a1}.wait{stroke:#5a626c}.waitf{fill:#5a626c}}\n",
        );
        for (i, c) in PALETTE.iter().enumerate() {
            let _ = write!(out, ".c{i}{{stroke:{c}}}.f{i}{{fill:{c}}}");
        }
        let _ = writeln!(out, ".fail{{stroke:{RED}}}.failf{{fill:{RED}}}.mark{{stroke:{RED}}}");
        out.push_str("text{dominant-baseline:middle}.b{font-weight:600}\n</style>\n");
        let _ = writeln!(out, "<rect class=\"bg\" width=\"100%\" height=\"100%\"/>");
        Doc { out }
    }

    /// A line of text at `(x, y)` (the middle of the line), in `class`, anchored `start`,
    /// `middle` or `end`.
    pub(crate) fn text(&mut self, x: f64, y: f64, class: &str, anchor: &str, s: &str) {
        let anchor = if anchor == "start" { String::new() } else { format!(" text-anchor=\"{anchor}\"") };
        let _ = writeln!(
            self.out,
            "<text x=\"{}\" y=\"{}\" class=\"{class}\"{anchor}>{}</text>",
            num(x),
            num(y),
            esc(s)
        );
    }

    /// A straight line from `(x1, y1)` to `(x2, y2)`.
    pub(crate) fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), class: &str, extra: &str) {
        let _ = writeln!(
            self.out,
            "<path class=\"{class}\" d=\"M{} {}L{} {}\"{extra}/>",
            num(x1),
            num(y1),
            num(x2),
            num(y2)
        );
    }

    /// A filled rectangle.
    pub(crate) fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, class: &str) {
        let _ = writeln!(
            self.out,
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            num(x),
            num(y),
            num(w.max(0.0)),
            num(h.max(0.0))
        );
    }

    /// Ends the document.
    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// Horizontal bars of one class, all in one `<path>`: each bar is a `M x y h w` segment of a
/// stroke `thickness` px wide, so a thousand bars cost a few bytes each instead of an element each.
#[derive(Default)]
pub(crate) struct Bars {
    d: String,
    count: usize,
}

impl Bars {
    /// A bar from `x` to `x + w` centred on `y` (at least `min` wide, so nothing vanishes).
    pub(crate) fn add(&mut self, x: f64, y: f64, w: f64, min: f64) {
        let _ = write!(self.d, "M{} {}h{}", num(x), num(y), num(w.max(min)));
        self.count += 1;
    }

    /// Writes the path (nothing if there are no bars).
    pub(crate) fn draw(&self, doc: &mut Doc, class: &str, thickness: f64) {
        if self.count > 0 {
            let _ = writeln!(
                doc.out,
                "<path class=\"{class}\" stroke-width=\"{}\" fill=\"none\" d=\"{}\"/>",
                num(thickness.max(0.1)),
                self.d
            );
        }
    }
}

/// Tick positions for an axis from 0 to `max`: multiples of 1, 2 or 5 × 10^k, at most `most`
/// intervals, always including 0.
pub(crate) fn ticks(max: f64, most: usize) -> (Vec<f64>, f64) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let most = most.max(1) as f64;
    let raw = max / most;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| max / s <= most).unwrap_or(10.0 * mag);
    let n = (max / step + 1e-9).floor() as usize;
    ((0..=n).map(|i| i as f64 * step).collect(), step)
}

/// `t` seconds as an axis label with as many decimals as `step` needs: `0`, `2.5 s`, `0.25 s`.
pub(crate) fn secs_label(t: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil().max(0.0) as usize };
    let text = format!("{t:.decimals$}");
    // `1.0` between `0.5` and `1.5` reads better as `1`.
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    if t == 0.0 { "0".to_string() } else { format!("{text} s") }
}

/// Width of `s` in px at [`FONT`], roughly (an average glyph is about 0.6 em): for sizing the
/// label column, where too wide only costs a little space.
pub(crate) fn text_width(s: &str) -> f64 {
    s.chars().count() as f64 * FONT * 0.6
}

#[cfg(test)]
pub(crate) mod check {
    //! A small XML well-formedness checker for the tests, and counters over what it found.
    //!
    //! Why a checker here rather than an XML crate as a dev-dependency: the pictures use a tiny
    //! subset of XML (elements, double-quoted attributes, text, five entities), the checks that
    //! matter for it fit in fifty lines, and the tooling stays without a dependency to audit
    //! and lock. `docs/img/check-render.sh` feeds the generated files to a real parser (Python's
    //! `xml.etree`) and a real browser besides.

    /// One start tag: its name and attributes.
    #[derive(Debug, Clone)]
    pub(crate) struct Element {
        pub(crate) name: String,
        pub(crate) attrs: Vec<(String, String)>,
        /// The text directly inside it (for `<text>`).
        pub(crate) text: String,
    }

    impl Element {
        pub(crate) fn attr(&self, name: &str) -> Option<&str> {
            self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    fn check_entities(s: &str) -> Result<(), String> {
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            let after = &rest[i + 1..];
            let ok = ["amp;", "lt;", "gt;", "quot;", "apos;"].iter().any(|e| after.starts_with(e));
            if !ok {
                return Err(format!("bad entity at {:?}", &rest[i..rest.len().min(i + 10)]));
            }
            rest = after;
        }
        if s.contains('<') { Err(format!("stray < in {s:?}")) } else { Ok(()) }
    }

    fn name_ok(n: &str) -> bool {
        !n.is_empty()
            && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '_'))
    }

    /// Parses `doc`; every element in document order, or what is wrong with it.
    pub(crate) fn parse(doc: &str) -> Result<Vec<Element>, String> {
        let mut stack: Vec<usize> = Vec::new();
        let mut all: Vec<Element> = Vec::new();
        let mut rest = doc.trim_start();
        let mut roots = 0;
        while !rest.is_empty() {
            let Some(lt) = rest.find('<') else {
                if rest.trim().is_empty() && stack.is_empty() {
                    break;
                }
                return Err("text after the last tag".into());
            };
            let text = &rest[..lt];
            check_entities(text)?;
            match stack.last() {
                Some(&top) => all[top].text.push_str(text),
                None if !text.trim().is_empty() => return Err(format!("text outside the root: {text:?}")),
                None => {}
            }
            let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
            let tag = &rest[lt + 1..gt];
            rest = &rest[gt + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or_else(|| format!("</{name}> closes nothing"))?;
                if all[open].name != name {
                    return Err(format!("</{name}> closes <{}>", all[open].name));
                }
                continue;
            }
            let (tag, selfclose) = match tag.strip_suffix('/') {
                Some(t) => (t, true),
                None => (tag, false),
            };
            let (name, mut attrs_text) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
            if !name_ok(name) {
                return Err(format!("bad element name {name:?}"));
            }
            let mut attrs = Vec::new();
            loop {
                attrs_text = attrs_text.trim_start();
                if attrs_text.is_empty() {
                    break;
                }
                let eq =
                    attrs_text.find('=').ok_or_else(|| format!("attribute without value in <{name}>"))?;
                let key = attrs_text[..eq].trim();
                if !name_ok(key) || attrs.iter().any(|(k, _): &(String, String)| k == key) {
                    return Err(format!("bad or repeated attribute {key:?} in <{name}>"));
                }
                let after = attrs_text[eq + 1..].strip_prefix('"').ok_or("attribute value not in \"\"")?;
                let end = after.find('"').ok_or("unterminated attribute value")?;
                check_entities(&after[..end])?;
                attrs.push((key.to_string(), after[..end].to_string()));
                attrs_text = &after[end + 1..];
            }
            if stack.is_empty() {
                roots += 1;
                if roots > 1 {
                    return Err("more than one root element".into());
                }
            }
            all.push(Element { name: name.to_string(), attrs, text: String::new() });
            if !selfclose {
                stack.push(all.len() - 1);
            }
        }
        if let Some(&open) = stack.last() {
            return Err(format!("<{}> never closed", all[open].name));
        }
        if all.first().is_none_or(|e| e.name != "svg") {
            return Err("the root is not <svg>".into());
        }
        Ok(all)
    }

    /// The bars in a parsed picture: `M` segments of the bar paths (`stroke-width` set) whose
    /// class is `class`, or any class starting with it.
    pub(crate) fn bars(elements: &[Element], class: &str) -> usize {
        elements
            .iter()
            .filter(|e| e.name == "path" && e.attr("stroke-width").is_some())
            .filter(|e| e.attr("class").is_some_and(|c| c.starts_with(class)))
            .map(|e| e.attr("d").unwrap_or("").matches('M').count())
            .sum()
    }

    /// The texts of `<text>` elements, in order.
    pub(crate) fn texts(elements: &[Element]) -> Vec<String> {
        elements
            .iter()
            .filter(|e| e.name == "text")
            .map(|e| e.text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(esc("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(esc("bell\u{7}"), "bell?");
        assert_eq!(
            (num(1.04), num(1.05), num(-0.01), num(f64::NAN), num(12.0)),
            ("1".into(), "1.1".into(), "0".into(), "0".into(), "12".into())
        );
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(10.017, 10), (vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0], 2.0));
        assert_eq!(ticks(10.017, 11).1, 1.0);
        assert_eq!(ticks(3.003, 8).0, vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
        assert_eq!(ticks(16.1, 8).0, vec![0.0, 5.0, 10.0, 15.0]);
        assert_eq!(ticks(0.0, 5).0.len(), 6);
        assert_eq!(secs_label(2.5, 0.5), "2.5 s");
        assert_eq!(secs_label(0.0, 0.5), "0");
        assert_eq!((secs_label(1.0, 0.5), secs_label(0.25, 0.05)), ("1 s".into(), "0.25 s".into()));
        assert_eq!(secs_label(12.0, 2.0), "12 s");
    }

    #[test]
    fn the_checker_refuses_what_is_not_well_formed() {
        assert!(check::parse("<svg><g></g></svg>").is_ok());
        for bad in [
            "<svg><g></svg>",
            "<svg>a & b</svg>",
            "<svg x=1/>",
            "<svg x=\"1\" x=\"2\"/>",
            "<svg/><svg/>",
            "<g/>",
            "<svg><text>a<</text></svg>",
            "<svg>",
        ] {
            assert!(check::parse(bad).is_err(), "{bad}");
        }
        let doc = Doc::new(100.0, 50.0, "a <title> & more").finish();
        let e = check::parse(&doc).expect("well-formed");
        assert_eq!(e[0].attr("width"), Some("100"));
    }
}
