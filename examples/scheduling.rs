//! Scheduling: 4 CPU-bound 1-second requests on 2 cores, three ways; simulated, then measured.
//!
//! Run it:
//!     cargo run --example scheduling
//!     cargo run --example scheduling -- --requests 6 --secs 0.5
//!     cargo run --example scheduling -- --help
//!
//! The three policies, for R requests of S seconds of CPU each on C cores:
//! * **whole requests per core**: C workers, each takes the next request and runs it to the
//!   end (a pool of C threads, or C pre-forked workers);
//! * **fair time slicing**: every request starts at once and the kernel shares the cores
//!   between them in small slices (a thread or a process per request);
//! * **all cores on one request at a time**: each request is split into C parts that run on
//!   the C cores together; then the next request.
//!
//! What it does: first a tiny simulation computes when each request would finish under each
//! policy, on ideal cores with free switching. Then it does the same for real, with threads
//! running a fixed amount of CPU work sized to S seconds, and prints both side by side.
//!
//! What to look for: with 4 requests on 2 cores, all three finish the last request at about
//! 2 s (the same work on the same cores), but the *average* completion time differs: 1.5 s for
//! whole requests per core, 2 s for time slicing (everyone shares, so everyone finishes late),
//! 1.25 s for all cores on one request (the first is done after 0.5 s). The measured column
//! follows the simulated one when the machine is otherwise idle; other programs competing for
//! the cores stretch every measured figure.

use std::collections::VecDeque;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use course::app::{self, UsageWho, calibrate_cpu_work, cpu_seconds, cpu_work};

const USAGE: &str = "\
usage: scheduling [--requests R] [--secs S]

Simulates, then measures with threads, R CPU-bound requests of S seconds each on
this machine's cores under three policies, and prints when each request finished.

options:
  --requests R  number of requests (1 to 16, default 4)
  --secs S      CPU seconds per request (0.1 to 3, default 1)
  -h, --help    show this help";

#[derive(Debug, Clone, Copy)]
enum Policy {
    WholePerCore,
    TimeSlicing,
    AllCoresOnOne,
}

const POLICIES: [Policy; 3] = [Policy::WholePerCore, Policy::TimeSlicing, Policy::AllCoresOnOne];

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::WholePerCore => "whole requests per core",
            Policy::TimeSlicing => "fair time slicing",
            Policy::AllCoresOnOne => "all cores on one request",
        }
    }
}

fn main() -> ExitCode {
    // The simulation plans for the cores the measurement really has.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (requests, secs) = match app::options_or_exit(parse_args(std::env::args().skip(1)), USAGE) {
        Ok(v) => v,
        Err(code) => return code,
    };
    println!("{requests} requests of {secs:.2} s of CPU each, on {cores} cores\n");

    println!("simulated (ideal cores, free switching): when each request finishes");
    let mut simulated = Vec::new();
    for policy in POLICIES {
        let done = simulate(policy, requests, secs, cores);
        print_row(policy, &done);
        simulated.push(done);
    }

    let rounds = calibrate_cpu_work(Duration::from_secs_f64(secs), UsageWho::RUSAGE_THREAD);
    println!("\nmeasured (threads, {rounds} xorshift rounds per request): when each request finishes");
    let mut measured = Vec::new();
    for policy in POLICIES {
        let (done, busy) = measure(policy, requests, rounds, cores);
        print_row(policy, &done);
        measured.push((done, busy));
    }

    println!("\npolicy                    average: sim  measured   last done: sim  measured   cores busy");
    for (i, policy) in POLICIES.iter().enumerate() {
        let (s, (m, busy)) = (&simulated[i], &measured[i]);
        println!(
            "{:<26} {:>10.2} s {:>7.2} s {:>14.2} s {:>7.2} s {:>12.2}",
            policy.name(),
            average(s),
            average(m),
            last(s),
            last(m),
            busy
        );
    }
    println!("\n({cores} cores; figures vary with whatever else is running)");
    ExitCode::SUCCESS
}

fn print_row(policy: Policy, done: &[f64]) {
    let times: Vec<String> = done.iter().map(|t| format!("{t:.2}")).collect();
    println!("  {:<26} [{}]  average {:.2} s", policy.name(), times.join(", "), average(done));
}

fn average(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn last(v: &[f64]) -> f64 {
    v.iter().cloned().fold(0.0, f64::max)
}

/// The simulation: time moves in steps of 1 ms; at each step the policy says how much of a
/// core each unfinished request gets, and that much work is done. Returns each request's
/// completion time, in request order.
fn simulate(policy: Policy, requests: usize, secs: f64, cores: usize) -> Vec<f64> {
    const STEP: f64 = 0.001;
    let mut left = vec![secs; requests];
    let mut done = vec![0.0; requests];
    let mut t = 0.0;
    while left.iter().any(|&l| l > 1e-9) {
        let waiting: Vec<usize> = (0..requests).filter(|&i| left[i] > 1e-9).collect();
        // share[i]: the fraction of one core request i gets during this step.
        let mut share = vec![0.0; requests];
        match policy {
            // The first `cores` unfinished requests (in arrival order) get a core each.
            Policy::WholePerCore => waiting.iter().take(cores).for_each(|&i| share[i] = 1.0),
            // Every unfinished request gets an equal part of all the cores (at most one core:
            // a single-threaded request cannot use two).
            Policy::TimeSlicing => {
                let each = (cores as f64 / waiting.len() as f64).min(1.0);
                waiting.iter().for_each(|&i| share[i] = each);
            }
            // The first unfinished request gets every core.
            Policy::AllCoresOnOne => share[waiting[0]] = cores as f64,
        }
        t += STEP;
        for &i in &waiting {
            left[i] -= share[i] * STEP;
            if left[i] <= 1e-9 {
                done[i] = t;
            }
        }
    }
    done
}

/// The same three policies for real, with threads running `rounds` of work per request.
/// Returns each request's completion time in seconds since the policy started.
fn measure(policy: Policy, requests: usize, rounds: u64, cores: usize) -> (Vec<f64>, f64) {
    let cpu_before = cpu_seconds(UsageWho::RUSAGE_SELF);
    let start = Instant::now();
    let done = Mutex::new(vec![0.0; requests]);
    let finish = |i: usize| done.lock().unwrap_or_else(|p| p.into_inner())[i] = start.elapsed().as_secs_f64();
    match policy {
        // `cores` threads take requests from a shared queue, one whole request at a time.
        Policy::WholePerCore => {
            let queue = Mutex::new((0..requests).collect::<VecDeque<usize>>());
            std::thread::scope(|s| {
                for _ in 0..cores {
                    s.spawn(|| {
                        loop {
                            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                            let Some(i) = next else { break };
                            black_box(cpu_work(rounds));
                            finish(i);
                        }
                    });
                }
            });
        }
        // One thread per request, all at once: the kernel's scheduler slices the cores.
        Policy::TimeSlicing => std::thread::scope(|s| {
            for i in 0..requests {
                let finish = &finish;
                s.spawn(move || {
                    black_box(cpu_work(rounds));
                    finish(i);
                });
            }
        }),
        // Each request in turn, split into `cores` equal parts on `cores` threads; the request
        // is done when its last part is.
        Policy::AllCoresOnOne => {
            for i in 0..requests {
                std::thread::scope(|s| {
                    for _ in 0..cores {
                        s.spawn(|| black_box(cpu_work(rounds / cores as u64)));
                    }
                });
                finish(i);
            }
        }
    }
    // Cores busy: CPU seconds this process used per wall-clock second (2.00 = two whole cores).
    let busy = (cpu_seconds(UsageWho::RUSAGE_SELF) - cpu_before) / start.elapsed().as_secs_f64();
    (done.into_inner().unwrap_or_else(|p| p.into_inner()), busy)
}

/// `Ok(None)` for --help.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<(usize, f64)>, String> {
    let (mut requests, mut secs) = (4usize, 1.0f64);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => requests = app::bounded("--requests", args.next(), 1..=16, "a whole number")?,
            "--secs" => secs = app::bounded("--secs", args.next(), 0.1..=3.0, "seconds")?,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some((requests, secs)))
}
