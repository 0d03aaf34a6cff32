//! The bundled client judged against servers whose truth is known: Python's own `http.server`
//! servers (sequential with a backlog of 5, threading, forking), which send no timing headers,
//! and this crate's example servers, which do.
//!
//! Every server runs as a child process (`tests/python/servers.py`, or an example binary): a
//! forking server must not fork inside this multi-threaded harness. `ServerProcess` stops and
//! reaps each one, its children too, when the test ends, whether it passed or not.
//!
//! The margins are structural, never tight timing: twelve 0.2 s requests take at least 2.4 s
//! one at a time, and well under half of that at once; the client's wall time must match the
//! time the volley really took, within what starting and joining its threads costs.

mod common;

use std::process::Command;
use std::time::Instant;

use common::ServerProcess;
use course::client::{FireConfig, FireReport, Url, fire};

/// Requests per volley: more than Python's backlog of 5 (plus the connection its server takes
/// before it blocks), so some SYNs are dropped and retried by the kernel.
const N: usize = 12;

/// Seconds each request makes the server sleep.
const DELAY: f64 = 0.2;

/// Python's `http.server` as a child process: `kind` is sequential, threading or forking.
fn python(kind: &str) -> ServerProcess {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/servers.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(kind);
    ServerProcess::start_command(&format!("python3 servers.py {kind}"), cmd)
}

/// Fires `N` requests at `/delay?s=0.2` with the default (patient) timeout, and checks that the
/// report's wall time is the time the volley took.
fn volley(server: &ServerProcess) -> FireReport {
    let url = Url::parse(&format!("http://{}/delay?s={DELAY}", server.addr)).expect("url");
    let began = Instant::now();
    let report = fire(&FireConfig::new(N, url));
    let took = began.elapsed().as_secs_f64();
    // The wall time runs from the release to the last answer: inside the call, and short of it
    // only by starting and joining the threads (milliseconds; a second is a structural margin:
    // the bug this guards against reported 1.4 s for a 6.4 s run).
    assert!(
        report.wall <= took && took - report.wall < 1.0,
        "wall {} s, the call took {took:.3} s\n{report}",
        report.wall
    );
    assert!(report.all_answered(), "a patient client gets every answer\n{report}");
    report
}

/// The one-at-a-time truth: the staircase, and at least N × DELAY of wall time.
fn assert_one_at_a_time(report: &FireReport) {
    assert_eq!(report.verdict(), "one at a time", "{report}");
    assert_eq!(report.max_in_flight(), 1, "{report}");
    assert!(report.wall >= N as f64 * DELAY, "{report}");
}

/// The concurrent truth: more than one at once, and the verdict says so.
fn assert_concurrent(report: &FireReport) {
    assert!(report.verdict().starts_with("concurrently"), "{report}");
    assert!(report.max_in_flight() >= 2, "{report}");
}

#[test]
fn python_sequential_http_server_with_backlog_5_is_one_at_a_time_and_every_answer_comes() {
    let server = python("sequential");
    let report = volley(&server);
    assert_one_at_a_time(&report);
    // No timing headers: the verdict says it is read from the spacing of the answers.
    assert!(report.basis().contains("a staircase"), "{report}");
    // Twelve SYNs against a backlog of 5: the kernel dropped some, retried them after a second,
    // and those requests were sent late instead of failing.
    let late = report.outcomes.iter().filter(|o| o.connected.is_some_and(|c| c >= 0.9)).count();
    assert!(late >= 1, "expected SYNs retried after the kernel's 1 s timeout\n{report}");
    assert!(report.to_string().contains("~ connecting"), "{report}");
}

#[test]
fn python_threading_http_server_is_concurrent() {
    let server = python("threading");
    let report = volley(&server);
    assert_concurrent(&report);
    assert!(report.basis().contains("overlapped"), "{report}");
    // Five requests fit in the backlog: at once, they take about one DELAY; one at a time they
    // could not take less than five, the bound checked.
    let url = Url::parse(&format!("http://{}/delay?s={DELAY}", server.addr)).expect("url");
    let five = fire(&FireConfig::new(5, url));
    assert!(five.all_answered() && five.wall < 5.0 * DELAY, "{five}");
    assert_concurrent(&five);
}

#[test]
fn python_forking_http_server_is_concurrent() {
    let server = python("forking");
    let report = volley(&server);
    assert_concurrent(&report);
    let url = Url::parse(&format!("http://{}/delay?s={DELAY}", server.addr)).expect("url");
    let five = fire(&FireConfig::new(5, url));
    assert!(five.all_answered() && five.wall < 5.0 * DELAY, "{five}");
    assert_concurrent(&five);
}

#[test]
fn our_sequential_server_is_one_at_a_time() {
    let server = ServerProcess::start("sequential_server", &["--quiet"]);
    let report = volley(&server);
    assert_one_at_a_time(&report);
    assert!(report.to_string().contains("most in flight     1 (on the server)"), "{report}");
}

#[test]
fn our_threaded_and_forking_servers_are_concurrent_by_threads_and_by_processes() {
    let server = ServerProcess::start("threaded_server", &["--quiet"]);
    let report = volley(&server);
    assert_eq!(report.verdict(), format!("concurrently, by {N} threads of 1 process"), "{report}");
    assert!(report.wall < N as f64 * DELAY / 2.0, "{report}");
    drop(server);
    let server = ServerProcess::start("forking_server", &["--quiet"]);
    let report = volley(&server);
    assert_eq!(report.verdict(), format!("concurrently, by {N} processes"), "{report}");
    assert!(report.wall < N as f64 * DELAY / 2.0, "{report}");
}

#[test]
fn our_pool_and_prefork_servers_are_concurrent_up_to_their_size() {
    for (name, args) in
        [("pool_server", &["--threads", "4", "--quiet"]), ("prefork_server", &["--workers", "4", "--quiet"])]
    {
        let server = ServerProcess::start(name, args);
        let report = volley(&server);
        assert_concurrent(&report);
        // Four at a time: never more than four in flight, so twelve take at least three rounds.
        assert!(report.max_in_flight() <= 4, "{name}\n{report}");
        assert!(report.wall >= 3.0 * DELAY && report.wall < N as f64 * DELAY, "{name}\n{report}");
    }
}
