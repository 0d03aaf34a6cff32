//! The two measuring examples that docs/06 and docs/07 are built on, run as child processes
//! with small arguments: they must finish, say what the chapters say they say, and (fork_demo)
//! fork from a single thread, have every child name the demo as its parent, and reap them all.
//! Timings are not asserted: the machine may be busy.

mod common;

use std::process::Command;

use common::example_path;

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example_path(name)).args(args).output().expect("run example");
    assert!(out.status.success(), "{name} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn fork_demo_forks_from_one_thread_and_reaps_every_child() {
    let out = run("fork_demo", &["--secs", "0.1", "--max", "3"]);
    let first = out.lines().next().unwrap_or_default();
    assert!(first.contains("1 thread(s) in this process"), "{out}");
    let demo_pid = first.split_whitespace().nth(2).expect("pid").trim_end_matches(',');
    // 1 + 2 + 3 children, each naming the demo as its parent.
    let children: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("child pid")).collect();
    assert_eq!(children.len(), 6, "{out}");
    for line in &children {
        assert!(line.contains(&format!("(parent {demo_pid})")), "{line}\n{out}");
    }
    for n in 1..=3 {
        assert!(out.contains(&format!("all {n} reaped by parent {demo_pid}")), "{out}");
    }
    assert!(out.contains("processes  wall time  speed-up"), "{out}");
}

#[test]
fn fork_demo_has_help_and_refuses_bad_arguments() {
    assert!(run("fork_demo", &["--help"]).starts_with("usage: fork_demo"));
    let bad = Command::new(example_path("fork_demo")).args(["--max", "99"]).output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn scheduling_simulation_gives_the_textbook_averages() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let out = run("scheduling", &["--requests", "4", "--secs", "0.2"]);
    // Ideal figures for 4 requests of 0.2 s on `cores` cores, as docs/07 derives them
    // (0.30, 0.40 and 0.25 s on 2 cores).
    let r = 4usize;
    let s = 0.2;
    let whole = (1..=r).map(|i| i.div_ceil(cores) as f64 * s).sum::<f64>() / r as f64;
    let slicing = if r >= cores { r as f64 * s / cores as f64 } else { s };
    let all_cores = (1..=r).map(|i| i as f64 * s / cores as f64).sum::<f64>() / r as f64;
    let sim = out.split("measured").next().expect("simulated part");
    for (policy, avg) in [
        ("whole requests per core", whole),
        ("fair time slicing", slicing),
        ("all cores on one request", all_cores),
    ] {
        let line = sim.lines().find(|l| l.contains(policy)).unwrap_or_else(|| panic!("no {policy}:\n{out}"));
        assert!(line.ends_with(&format!("average {avg:.2} s")), "{line} (expected {avg:.2})\n{out}");
    }
    assert!(out.contains("cores busy"), "{out}");
}
