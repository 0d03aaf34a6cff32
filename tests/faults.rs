//! Faults (issue 4, item 4), the example servers run as child processes. A handler's panic on
//! every strategy is in tests/examples.rs (`a_panicking_handler_gets_500_and_the_next_request_works`),
//! `kill -9` of a pre-forked worker in tests/prefork.rs (`a_killed_worker_is_reaped_and_replaced`,
//! which also asserts no zombie). Here: `kill -9` of a forked child mid-request, and the
//! slow-request warning (`--warn-after`).

mod common;

use std::time::{Duration, Instant};

use common::{ServerProcess, eventually, get, live_children, proc_children};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn a_forked_child_killed_mid_request_closes_the_connection_is_reaped_and_the_server_goes_on() {
    let server = ServerProcess::start("forking_server", &["--quiet"]);
    let (addr, pid) = (server.addr, server.pid);
    let request = std::thread::spawn(move || {
        common::raw(addr, b"GET /delay?s=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    });
    assert!(eventually(Duration::from_secs(5), || live_children(pid).len() == 1), "no child forked");
    let child = live_children(pid)[0];
    let t0 = Instant::now();
    kill(Pid::from_raw(child as i32), Signal::SIGKILL).unwrap();
    let outcome = request.join().unwrap();
    // The kernel closes a killed process's sockets: the client sees EOF (or a reset) at once,
    // not a response and not a hang until the 2 s delay is over.
    assert!(outcome.is_err(), "a killed child answered: {outcome:?}");
    assert!(t0.elapsed() < Duration::from_millis(1500), "the client waited {:?}", t0.elapsed());
    // Reaped within a poll interval (0.5 s); generous for a loaded machine.
    assert!(
        eventually(Duration::from_secs(3), || proc_children(pid).is_empty()),
        "the killed child was not reaped: {:?}",
        proc_children(pid)
    );
    assert_eq!(get(addr, "/hello").status, 200, "the server goes on");
}

#[test]
fn a_request_slower_than_warn_after_is_logged_on_every_strategy() {
    for name in ["sequential_server", "threaded_server", "forking_server", "pool_server", "prefork_server"] {
        let args: &[&str] = if name == "prefork_server" {
            &["--warn-after", "0.2", "--workers", "1"]
        } else {
            &["--warn-after", "0.2"]
        };
        let mut server = ServerProcess::start(name, args);
        assert_eq!(get(server.addr, "/hello").status, 200, "{name}");
        assert_eq!(get(server.addr, "/delay?s=0.5").status, 200, "{name}");
        server.signal(Signal::SIGTERM);
        let (status, log) = server.wait_exit(Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{name}: {log}");
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("slow request")).collect();
        assert_eq!(warnings.len(), 1, "{name}: one warning, for /delay only:\n{log}");
        let w = warnings[0];
        assert!(
            w.starts_with("WARN") && w.contains("GET /delay?s=0.5") && w.contains("127.0.0.1"),
            "{name}: {w}"
        );
        assert!(w.contains("pid ") && w.contains("tid ") && w.contains("took 0.5"), "{name}: {w}");
    }
}
