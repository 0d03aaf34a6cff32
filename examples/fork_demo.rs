//! Fork in numbers: the same CPU-heavy job in 1, 2, 3, 4 processes at once, timed.
//!
//! Run it:
//!     cargo run --release --example fork_demo        # about 1 s of work per process, 1..=4
//!     cargo run --example fork_demo -- --secs 2 --max 6
//!     cargo run --example fork_demo -- --help
//!
//! What it does: first it sizes a fixed job (a loop of xorshift rounds) so that it takes about
//! `--secs` seconds on one core, and runs it once in the parent. Then, for n = 1, 2, 3, 4, the
//! parent forks n children at the same instant; each child runs the *same* job, prints its pid,
//! its parent's pid and when it started and ended, and `_exit`s. The parent reaps all n and
//! writes down the wall time. Last, a table: processes, wall time, speed-up (against the one
//! child of the first row: the same work done the same way, forked and reaped).
//!
//! What to look for: with 2 cores, 2 processes finish in about the time 1 does (speed-up about
//! 2: two jobs for the price of one). Past the core count the speed-up stays at about 2 and each
//! process takes longer: 3 processes need about 1.5 × the time, 4 about 2 ×, because the
//! kernel now time-slices 2 cores between them. Every child's parent pid is the demo's pid.
//!
//! The job is a fixed amount of work, not "spin for one second" (as the servers' `/cpu` does):
//! a job that spins for a fixed time takes that time whether it has a core to itself or not,
//! and would hide exactly the sharing this demo is about.
//!
//! Figures vary with the machine and with whatever else is running on it.

use std::hint::black_box;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use course::app::{self, UsageWho, calibrate_cpu_work, cpu_seconds, cpu_work};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};

const USAGE: &str = "\
usage: fork_demo [--secs S] [--max N]

Runs a fixed CPU-bound job in the parent, then in 1, 2, ..., N forked children at
once, and prints the wall time and speed-up for each N.

options:
  --secs S   size the job to take about S seconds on one core (0.1 to 5, default 1)
  --max N    fork up to N children at once (1 to 8, default 4)
  -h, --help show this help";

fn main() -> ExitCode {
    let (secs, max) = match app::options_or_exit(parse_args(std::env::args().skip(1)), USAGE) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let epoch = Instant::now();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("fork_demo: pid {}, {} core(s), {} thread(s) in this process", getpid(), cores, threads());

    let rounds = calibrate_cpu_work(Duration::from_secs_f64(secs), UsageWho::RUSAGE_SELF);
    println!("one job = {rounds} xorshift rounds, sized to about {secs:.1} s on one core\n");

    // The baseline: the parent does the job itself, no fork.
    let cpu_before = cpu_seconds(UsageWho::RUSAGE_SELF);
    let start = epoch.elapsed();
    black_box(cpu_work(rounds));
    let end = epoch.elapsed();
    let alone = (end - start).as_secs_f64();
    println!(
        "parent pid {} alone: start +{:.3}s end +{:.3}s ({:.3} s, {:.3} s on a core)\n",
        getpid(),
        secs_of(start),
        secs_of(end),
        alone,
        cpu_seconds(UsageWho::RUSAGE_SELF) - cpu_before
    );

    let mut rows = Vec::new();
    for n in 1..=max {
        println!("{n} process(es) at once:");
        match run_children(n, rounds, epoch) {
            Ok((wall, cpu)) => rows.push((n, wall, cpu)),
            Err(why) => {
                eprintln!("error: {why}");
                return ExitCode::FAILURE;
            }
        }
        println!();
    }

    // The baseline is the first row, one forked child: the same kind of process, forked and
    // reaped the same way, as every other row. (The parent's own run is printed above as a
    // check; it ran before the others, and a CPU that is still clocking up, or a job measured on
    // a cold cache, would make it slower and every speed-up look better than the cores allow.)
    let one = rows.first().map_or(alone, |&(_, wall, _)| wall);
    println!("processes  wall time  speed-up  wall ÷ one  CPU time  cores busy");
    for (n, wall, cpu) in &rows {
        // Speed-up: n jobs one after another would take n × one; they took `wall`.
        let speedup = *n as f64 * one / wall;
        // Cores busy: CPU seconds used per wall-clock second (2.00 = both cores, all the time).
        println!(
            "{n:>9}  {wall:>7.3} s  {speedup:>7.2}x  {:>9.2}x  {cpu:>6.3} s  {:>10.2}",
            wall / one,
            cpu / wall
        );
    }
    println!("\n(speed-up against 1 child: {one:.3} s; the parent alone took {alone:.3} s; {cores} core(s))");
    ExitCode::SUCCESS
}

/// Forks `n` children that each run the job, reaps them all, returns the wall time and the
/// children's total CPU time, in seconds.
fn run_children(n: usize, rounds: u64, epoch: Instant) -> Result<(f64, f64), String> {
    // The kernel adds a child's CPU time to RUSAGE_CHILDREN when the child is reaped.
    let cpu_before = cpu_seconds(UsageWho::RUSAGE_CHILDREN);
    // Anything still in stdout's buffer would be copied into every child and printed again.
    let _ = std::io::stdout().flush();
    let start = Instant::now();
    let mut children: Vec<Pid> = Vec::with_capacity(n);
    for _ in 0..n {
        // SAFETY: this process has exactly one thread (the demo never spawns one), so no lock
        // can be held by a thread that would be missing in the child. The child only computes,
        // prints one line, flushes and calls _exit: it never returns from this match.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => child(rounds, epoch),
            Ok(ForkResult::Parent { child }) => children.push(child),
            Err(e) => {
                // Reap the ones already started before giving up, so none is left a zombie.
                for pid in children {
                    let _ = waitpid(pid, None);
                }
                return Err(format!("fork failed: {e}"));
            }
        }
    }
    // Reap every child: each waitpid blocks until that child has exited.
    for pid in children {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, 0)) => {}
            Ok(other) => return Err(format!("child {pid} ended badly: {other:?}")),
            Err(e) => return Err(format!("waitpid({pid}) failed: {e}")),
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(UsageWho::RUSAGE_CHILDREN) - cpu_before;
    println!("  all {n} reaped by parent {}: wall time {wall:.3} s, {cpu:.3} s of CPU in all", getpid());
    Ok((wall, cpu))
}

/// A child's whole life: the job, one line of output, `_exit`. Never returns.
fn child(rounds: u64, epoch: Instant) -> ! {
    // `epoch` is the parent's Instant, copied by fork; Instant is the system-wide monotonic
    // clock, so the child's offsets are on the parent's time line.
    let start = epoch.elapsed();
    black_box(cpu_work(rounds));
    let end = epoch.elapsed();
    let cpu = cpu_seconds(UsageWho::RUSAGE_SELF);
    // One println is one write of one line, so lines of different children don't mix.
    println!(
        "  child pid {} (parent {}): start +{:.3}s end +{:.3}s ({:.3} s, {:.3} s on a core)",
        getpid(),
        getppid(),
        secs_of(start),
        secs_of(end),
        (end - start).as_secs_f64(),
        cpu
    );
    let _ = std::io::stdout().flush();
    // SAFETY: _exit ends this process at once, without running destructors or atexit
    // handlers, which belong to the parent's copy of the program; it has no preconditions.
    unsafe { libc::_exit(0) }
}

/// Threads in this process right now (each is a directory under /proc/self/task).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

fn secs_of(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `Ok(None)` for --help.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<(f64, usize)>, String> {
    let (mut secs, mut max) = (1.0f64, 4usize);
    let mut args = args;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secs" => secs = app::bounded("--secs", args.next(), 0.1..=5.0, "seconds")?,
            "--max" => max = app::bounded("--max", args.next(), 1..=8, "a whole number")?,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some((secs, max)))
}
