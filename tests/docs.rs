//! The docs check: every `cargo run --example NAME -- FLAGS` (and `--release`, and
//! `target/*/examples/NAME FLAGS`) written in `README.md` or `docs/*.md` names an example that
//! exists, and every flag in it is one that example's `--help` lists. So a renamed example or a
//! dropped flag fails `cargo test` instead of leaving a learner with a command that does not run.
//!
//! It checks whatever chapters exist; a chapter not written yet is simply not scanned.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One command found in a document.
#[derive(Debug)]
struct Found {
    file: String,
    line: usize,
    example: String,
    flags: Vec<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The markdown files to scan: README.md and docs/*.md.
fn documents() -> Vec<PathBuf> {
    let mut v = vec![root().join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root().join("docs")) {
        let mut md: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        md.sort();
        v.extend(md);
    }
    v
}

/// The words of a command line after `start`, up to the end of the command: a comment, a pipe,
/// a redirect, `&`, `;`, a closing backtick or `)`.
fn command_words(rest: &str) -> Vec<String> {
    let end = rest.find(['#', '|', '>', '&', ';', '`', ')']).unwrap_or(rest.len());
    rest[..end].split_whitespace().map(str::to_string).collect()
}

/// Flags (words starting with `-`) in the words after the example's own `--`.
fn flags_of(words: &[String]) -> Vec<String> {
    words
        .iter()
        .filter(|w| w.starts_with('-') && w.len() > 1 && w.parse::<f64>().is_err())
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect()
}

/// Finds the commands in one line of text.
fn scan_line(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    // `cargo run [--release] --example NAME [-- FLAGS...]`
    let mut s = text;
    while let Some(i) = s.find("cargo run") {
        let words = command_words(&s[i + "cargo run".len()..]);
        if let Some(pos) = words.iter().position(|w| w == "--example")
            && let Some(name) = words.get(pos + 1)
        {
            let after = &words[pos + 2..];
            let flags = match after.iter().position(|w| w == "--") {
                Some(dd) => flags_of(&after[dd + 1..]),
                None => Vec::new(),
            };
            out.push((name.clone(), flags));
        }
        s = &s[i + "cargo run".len()..];
    }
    // `target/<profile>/examples/NAME FLAGS...` (also $CARGO_TARGET_DIR/release/examples/NAME)
    let mut s = text;
    while let Some(i) = s.find("/examples/") {
        let before = &s[..i];
        let after = &s[i + "/examples/".len()..];
        let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let is_binary = (before.ends_with("/release") || before.ends_with("/debug"))
            && !name.is_empty()
            && !after[name.len()..].starts_with('.');
        if is_binary {
            out.push((name.clone(), flags_of(&command_words(&after[name.len()..]))));
        }
        s = after;
    }
    out
}

fn scan(path: &Path) -> Vec<Found> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let file = path.strip_prefix(root()).unwrap_or(path).display().to_string();
    let mut found = Vec::new();
    let dir = path.parent().unwrap_or(Path::new("."));
    for (n, line) in text.lines().enumerate() {
        // A table-of-contents row linking a chapter that is not written yet (it lands from a
        // parallel branch, with its example) is checked once the chapter exists.
        if let Some((_, rest)) = line.split_once("](")
            && let Some((target, _)) = rest.split_once(')')
            && target.ends_with(".md")
            && !dir.join(target).exists()
        {
            continue;
        }
        for (example, flags) in scan_line(line) {
            found.push(Found { file: file.clone(), line: n + 1, example, flags });
        }
    }
    found
}

/// The usage text an example prints for `--help` (stdout and stderr together).
fn help_text(example: &str) -> String {
    let out = Command::new(common::example_path(example))
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {example} --help: {e}"));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A flag appears in a usage text when it stands there as a word: `--threads` matches
/// `--threads N`, but not `--threads-max`.
fn lists_flag(usage: &str, flag: &str) -> bool {
    usage.match_indices(flag).any(|(i, _)| {
        let before = usage[..i].chars().last();
        let after = usage[i + flag.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn the_scanner_finds_commands_and_flags() {
    let v = scan_line("cargo run --release --example client -- --load -c 32 -d 5s http://x/ # note --nope");
    assert_eq!(v, [("client".to_string(), vec!["--load".into(), "-c".into(), "-d".into()])]);
    let v = scan_line("$ target/release/examples/pool_server --threads 4 --quiet &");
    assert_eq!(v, [("pool_server".to_string(), vec!["--threads".into(), "--quiet".into()])]);
    assert!(scan_line("see examples/caching.rs and course/src/app.rs").is_empty());
    assert_eq!(scan_line("`cargo run --example demo`"), [("demo".to_string(), vec![])]);
    assert!(lists_flag("  --threads N   workers", "--threads"));
    assert!(!lists_flag("  --threads-max N", "--threads"));
}

#[test]
fn every_documented_command_names_a_real_example_and_real_flags() {
    let mut found = Vec::new();
    for doc in documents() {
        found.extend(scan(&doc));
    }
    assert!(!found.is_empty(), "no `cargo run --example` found in README.md: is the scanner broken?");
    let mut problems = Vec::new();
    let mut usage: BTreeMap<String, String> = BTreeMap::new();
    let mut checked = BTreeSet::new();
    for f in &found {
        let where_ = format!("{}:{}", f.file, f.line);
        if !root().join("examples").join(format!("{}.rs", f.example)).exists() {
            problems.push(format!("{where_}: no examples/{}.rs", f.example));
            continue;
        }
        let text = usage.entry(f.example.clone()).or_insert_with(|| help_text(&f.example));
        for flag in &f.flags {
            if !lists_flag(text, flag) {
                problems.push(format!("{where_}: `{} {flag}`: {flag} is not in its --help", f.example));
            }
        }
        checked.insert(f.example.clone());
    }
    assert!(problems.is_empty(), "the docs have gone stale:\n  {}", problems.join("\n  "));
    eprintln!("checked {} commands naming {} examples: {checked:?}", found.len(), checked.len());
}
