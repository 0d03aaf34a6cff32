//! The demo: four servers side by side, in one command.
//!
//! Run it:
//!     cargo run --example demo                 # 5 concurrent /delay?s=1 at each server
//!     cargo run --example demo -- -n 10 --delay 0.5
//!     cargo run --example demo -- --svg docs/img    # and draw the four timelines, side by side
//!
//! What it does: starts the sequential, threaded, forking and event-loop example servers as
//! child processes on free ports (each is this same program, re-run with `--serve KIND`), fires
//! n requests at
//! each *at the same instant* with the bundled client, prints each client report (table,
//! timeline, verdict) and then one comparison table. Finally it stops every server with SIGTERM
//! and reaps it.
//!
//! What to look for: the sequential server's timeline is a staircase and its wall time is
//! n × delay; the other three finish in about one delay. The threaded server's replies name one
//! pid and n tids; the forking server's name n pids, none the server's own; the event loop's
//! name one pid and *one* tid: a single thread had all n in flight at once, because `/delay`
//! is a timer of its loop, not a sleep (chapter 13).
//!
//! With `--svg DIR` it also writes `DIR/demo.svg`: the four timelines side by side on one time
//! scale, each titled with its wall time and verdict (the comparison table as a figure). What it
//! prints is the same with or without it, plus one last line naming the file.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use course::app::{self, Kind};
use course::client::{FireConfig, FireReport, Url, fire, svg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const KINDS: [Kind; 4] = [Kind::Sequential, Kind::Threading, Kind::Forking, Kind::EventLoop];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut n = 5usize;
    let mut delay = 1.0f64;
    let mut svg_dir: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // A child of the demo: be that server.
            "--serve" => {
                let Some(kind) = args.next().as_deref().and_then(Kind::parse) else {
                    eprintln!("--serve needs sequential, threading, forking or event-loop");
                    return ExitCode::from(2);
                };
                return app::run(kind, args);
            }
            "-n" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) if (1..=200).contains(&v) => n = v,
                _ => return usage("-n needs a whole number from 1 to 200"),
            },
            "--delay" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) if (0.0..=5.0).contains(&v) => delay = v,
                _ => return usage("--delay needs seconds from 0 to 5"),
            },
            "--svg" => match args.next() {
                Some(dir) if !dir.is_empty() => svg_dir = Some(PathBuf::from(dir)),
                _ => return usage("--svg needs a directory"),
            },
            "-h" | "--help" => return usage(""),
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    run_demo(n, delay, svg_dir)
}

fn usage(why: &str) -> ExitCode {
    if !why.is_empty() {
        eprintln!("error: {why}\n");
    }
    eprintln!(
        "usage: cargo run --example demo -- [-n N (default 5)] [--delay SECONDS (default 1)] [--svg DIR]"
    );
    eprintln!("  --svg DIR  also write DIR/demo.svg: the four timelines side by side");
    if why.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) }
}

/// A server child process; killed and reaped on drop if it is still running.
struct ServerChild {
    kind: Kind,
    child: Child,
    addr: SocketAddr,
}

impl ServerChild {
    fn start(kind: Kind) -> Result<ServerChild, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        // The name `Kind::parse` reads back in the child (`EventLoop` is spelled `event-loop`).
        let name = match kind {
            Kind::EventLoop => "event-loop".to_string(),
            other => format!("{other:?}").to_lowercase(),
        };
        let mut child = Command::new(exe)
            .args(["--serve", &name, "--port", "0", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the {name} server: {e}"))?;
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let _ = out.read_line(&mut line);
        // The server prints nothing more on stdout; a thread keeps the pipe drained anyway.
        std::thread::spawn(move || {
            let _ = out.read_to_end(&mut Vec::new());
        });
        match app::parse_banner(line.trim_end()) {
            Some(addr) => Ok(ServerChild { kind, child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the {name} server did not start (said {line:?})"))
            }
        }
    }

    /// SIGTERM, then wait (at most 10 s) for a graceful exit; SIGKILL if it does not come.
    fn stop(mut self) -> Result<(), String> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("{:?} server exited with {status}", self.kind)),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("{:?} server did not stop within 10 s", self.kind))
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn run_demo(n: usize, delay: f64, svg_dir: Option<PathBuf>) -> ExitCode {
    let t0 = Instant::now();
    // Start them all first, so their start-up does not count in anyone's timing.
    let mut servers = Vec::new();
    for kind in KINDS {
        match ServerChild::start(kind) {
            Ok(s) => servers.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut rows: Vec<(Kind, FireReport)> = Vec::new();
    for server in &servers {
        let url = match Url::parse(&format!("http://{}/delay?s={delay}", server.addr)) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "==================== {} (server pid {}) ====================",
            server.kind.example_name(),
            server.child.id()
        );
        let report = fire(&FireConfig::new(n, url));
        println!("{report}");
        rows.push((server.kind, report));
    }
    let mut ok = true;
    for server in servers {
        if let Err(e) = server.stop() {
            eprintln!("error: {e}");
            ok = false;
        }
    }

    println!("==================== comparison: {n} concurrent /delay?s={delay} ====================");
    println!("{:<18} {:>8} {:>10} {:>6} {:>6}  verdict", "server", "wall", "in flight", "pids", "tids");
    for (kind, report) in &rows {
        println!(
            "{:<18} {:>7.2}s {:>10} {:>6} {:>6}  {}",
            kind.example_name(),
            report.wall,
            report.max_in_flight(),
            report.distinct_pids(),
            report.distinct_tids(),
            report.verdict()
        );
        ok &= report.all_answered();
    }
    println!(
        "\nexpected: sequential ≈ {:.1} s ({n} × {delay} s, one at a time); threaded, forking and event loop ≈ {delay} s",
        n as f64 * delay
    );
    println!("demo finished in {:.1} s; every server stopped and reaped", t0.elapsed().as_secs_f64());
    if let Some(dir) = svg_dir {
        let title = format!("{n} concurrent /delay?s={delay} at each server: who handled which, and when");
        let panels: Vec<(&str, &FireReport)> =
            rows.iter().map(|(kind, r)| (kind.example_name(), r)).collect();
        let path = dir.join("demo.svg");
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, svg::timelines_side_by_side(&title, &panels)));
        match written {
            Ok(()) => println!("picture: {}", path.display()),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                ok = false;
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
