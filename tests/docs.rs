//! The docs check: every `cargo run --example NAME -- FLAGS` (and `--release`, and
//! `target/*/examples/NAME FLAGS`) written in `README.md` or `docs/*.md` names an example that
//! exists, and every flag in it is one that example's `--help` lists. So a renamed example or a
//! dropped flag fails `cargo test` instead of leaving a learner with a command that does not run.
//!
//! It also checks the rest of what a chapter tells a learner to run or read: every repository
//! path it names in backticks or in a shell block (`src/concurrency/pool.rs`,
//! `course/src/app.rs`) exists, and every script a command runs (`examples/nginx/run.sh
//! --deploy`, `python3 tests/python/servers.py sequential`) exists and knows the mode it is
//! given. `docs/rerun.sh` is the other half: it reruns the commands and prints what they print.
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

/// Paths a document names in backticks that are not meant to exist: the README weighs
/// `examples/common/` as the layout it did not choose.
const NOT_FILES: &[&str] = &["examples/common/"];

/// `text` without its code blocks other than shell commands (```sh): outputs (```text), trees
/// of the layout and Python or Rust sources name paths relative to something else.
fn prose_and_commands(text: &str) -> String {
    let mut out = String::new();
    let mut keep = true;
    let mut inside = false;
    for line in text.lines() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            if inside {
                inside = false;
                keep = true;
            } else {
                inside = true;
                keep = matches!(lang.trim(), "sh" | "bash" | "console" | "shell");
            }
            continue;
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The repository paths named in backticks (or in shell blocks) in `text`: words that start
/// with one of the repository's top-level folders (`src/`, `docs/`, `course/`, ...), with any
/// `:line` or trailing punctuation cut off.
fn named_paths(text: &str) -> Vec<String> {
    const TOP: [&str; 8] = ["src/", "docs/", "course/", "examples/", "tests/", "bench/", "benches/", "fuzz/"];
    let mut out = Vec::new();
    let text = prose_and_commands(text);
    for (i, chunk) in text.split('`').enumerate() {
        // Odd chunks are inside backticks; shell blocks lost their fences above, so a chunk
        // of several lines is prose around them: its command lines are checked by the scripts
        // test and by `every_documented_command_...`.
        if i % 2 == 0 {
            continue;
        }
        for word in
            chunk.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"' | '\'' | '='))
        {
            let word = word.split(':').next().unwrap_or(word).trim_end_matches(['.', ';']);
            if TOP.iter().any(|t| word.starts_with(t))
                && !word.contains(['*', '<', '$', '{'])
                && !word.ends_with("...")
            {
                out.push(word.to_string());
            }
        }
    }
    out
}

/// Scripts run in a document's commands (`examples/nginx/run.sh --deploy`, `python3
/// tests/python/servers.py sequential 8001`, `docs/rerun.sh 1 6`): the script, and the words
/// after it that it must know (flags, and a Python script's first argument).
fn script_commands(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words = command_words(line.trim_start_matches("$ "));
        for (i, w) in words.iter().enumerate() {
            let w = w.trim_matches('`');
            let w = w.split('=').next_back().unwrap_or(w);
            if !(w.ends_with(".sh") || w.ends_with(".py")) || !w.contains('/') || w.contains('$') {
                continue;
            }
            let mut args: Vec<String> = words[i + 1..]
                .iter()
                .take_while(|a| !a.contains('`'))
                .filter(|a| a.starts_with("--") && a.len() > 2)
                .map(|a| a.split('=').next().unwrap_or(a).to_string())
                .collect();
            if w.ends_with(".py")
                && let Some(first) = words.get(i + 1)
                && first.chars().all(|c| c.is_ascii_lowercase())
            {
                args.push(first.clone());
            }
            out.push((w.to_string(), args));
        }
    }
    out
}

#[test]
fn the_path_and_script_scanners_find_what_they_should() {
    assert_eq!(
        named_paths("see `src/server.rs:40` and `course/src/client/`, not `src/*.rs` or `http://x/`"),
        ["src/server.rs", "course/src/client/"]
    );
    assert_eq!(
        script_commands("examples/nginx/run.sh --deploy   # note --nope"),
        [("examples/nginx/run.sh".to_string(), vec!["--deploy".to_string()])]
    );
    assert_eq!(
        script_commands("python3 tests/python/servers.py sequential 8001"),
        [("tests/python/servers.py".to_string(), vec!["sequential".to_string()])]
    );
    assert_eq!(
        script_commands("PORTS=\"9001\" SERVER_PARAMS=max_fails=0 examples/nginx/run.sh --state"),
        [("examples/nginx/run.sh".to_string(), vec!["--state".to_string()])]
    );
}

#[test]
fn every_file_and_script_a_document_names_exists_and_knows_its_arguments() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap_or_default();
        let file = doc.strip_prefix(root()).unwrap_or(&doc).display().to_string();
        for path in named_paths(&text) {
            checked += 1;
            if !NOT_FILES.contains(&path.as_str()) && !root().join(&path).exists() {
                problems.push(format!("{file}: `{path}` does not exist"));
            }
        }
        for (script, args) in script_commands(&prose_and_commands(&text)) {
            checked += 1;
            let Ok(body) = std::fs::read_to_string(root().join(&script)) else {
                problems.push(format!("{file}: `{script}` does not exist"));
                continue;
            };
            for arg in args {
                if !body.contains(&arg) {
                    problems.push(format!("{file}: `{script} {arg}`: the script does not know {arg}"));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} paths and scripts found: is the scanner broken?");
    assert!(problems.is_empty(), "the docs name what is not there:\n  {}", problems.join("\n  "));
}
