//! Shutdown under load (issue 4, item 5).
//! * SIGTERM with 50 slow requests in flight: every one completes with 200, new connections are
//!   refused, exit 0, no process left behind (example servers as child processes).
//! * After `server_close` a `Threading` server has no request thread left (in-process: only
//!   threads, no fork).
//! * A second SIGINT exits at once, and a forking server's children do not outlive it.
//!
//! A shutdown requested from inside a handler returns an error instead of deadlocking:
//! tests/core.rs, `shutdown_from_inside_a_handler_is_an_error_not_a_deadlock`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    ServerProcess, children_of, eventually, fd_count, gone, live_children, thread_count, thread_names,
};
use nix::sys::signal::Signal;
use socketserver::{Server, Threading, handler_fn};

const IN_FLIGHT: usize = 50;

/// Starts `IN_FLIGHT` clients of `/delay?s=1`; each returns the status or an error text.
fn fire(addr: SocketAddr) -> Vec<thread::JoinHandle<Result<u16, String>>> {
    (0..IN_FLIGHT)
        .map(|_| {
            thread::spawn(move || {
                common::raw(addr, b"GET /delay?s=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .map(|r| r.status)
                    .map_err(|e| e.to_string())
            })
        })
        .collect()
}

/// The descriptors of a process and its children together.
fn family_fds(pid: u32) -> usize {
    fd_count(pid) + children_of(pid).into_iter().map(fd_count).sum::<usize>()
}

fn sigterm_under_load(name: &str, args: &[&str]) {
    let mut server = ServerProcess::start(name, args);
    let (addr, pid) = (server.addr, server.pid);
    if name == "prefork_server" {
        assert!(eventually(Duration::from_secs(5), || live_children(pid).len() == 2), "workers booted");
    }
    // The event loop opens its loops' descriptors when it starts serving, just after the
    // banner: one request first (on a connection kept open), so that they are counted.
    let _warm = (name == "event_loop_server").then(|| {
        let mut warm = TcpStream::connect(addr).unwrap();
        warm.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(common::read_reply(&mut warm, false).unwrap().status, 200);
        warm
    });
    let idle_fds = family_fds(pid);
    let clients = fire(addr);
    // A connection still in the backlog when the listener closes is refused by design: wait
    // until all 50 are *accepted* (a child each, or an open socket each).
    let accepted = eventually(Duration::from_secs(10), || {
        if name == "forking_server" {
            live_children(pid).len() >= IN_FLIGHT
        } else {
            family_fds(pid) >= idle_fds + IN_FLIGHT
        }
    });
    assert!(accepted, "{name}: the 50 requests were not all accepted");
    let family: Vec<u32> = children_of(pid);
    server.signal(Signal::SIGTERM);
    let t0 = Instant::now();
    // New connections are refused (or reset) once the listener is gone. Bounded poll.
    let mut refused = false;
    while t0.elapsed() < Duration::from_secs(5) {
        match TcpStream::connect(addr) {
            Err(_) => {
                refused = true;
                break;
            }
            Ok(s) => drop(s),
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(refused, "{name}: still accepting connections 5 s after SIGTERM");
    let statuses: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = statuses.iter().filter(|s| **s == Ok(200)).count();
    let (status, log) = server.wait_exit(Duration::from_secs(15));
    assert_eq!(ok, IN_FLIGHT, "{name}: in-flight requests: {statuses:?}\n{log}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{name}: exit status; log:\n{log}");
    assert!(family.iter().all(|&c| gone(c)), "{name}: children left: {family:?}");
    assert!(children_of(pid).is_empty(), "{name}: children left");
    eprintln!("{name}: 50 in flight, SIGTERM to exit {:?}", t0.elapsed());
}

#[test]
fn sigterm_with_50_requests_in_flight_threaded() {
    sigterm_under_load("threaded_server", &["--quiet"]);
}

#[test]
fn sigterm_with_50_requests_in_flight_forking() {
    sigterm_under_load("forking_server", &["--quiet", "--max-children", "64"]);
}

#[test]
fn sigterm_with_50_requests_in_flight_pool() {
    sigterm_under_load("pool_server", &["--quiet", "--threads", "64"]);
}

#[test]
fn sigterm_with_50_requests_in_flight_prefork() {
    sigterm_under_load("prefork_server", &["--quiet", "--workers", "2", "--threads", "32"]);
}

/// On the event loop the 50 `/delay` requests are 50 timers of one loop thread.
#[test]
fn sigterm_with_50_requests_in_flight_event_loop() {
    sigterm_under_load("event_loop_server", &["--quiet"]);
}

/// Request threads of this test process (Threading names them `request-N`).
fn request_threads() -> usize {
    thread_names(std::process::id()).iter().filter(|n| n.starts_with("request-")).count()
}

#[test]
fn server_close_leaves_no_request_thread_behind() {
    let mut server = Server::bind(
        "127.0.0.1:0",
        Threading::new(),
        handler_fn(|conn| {
            let mut b = [0u8; 1];
            conn.stream().read_exact(&mut b)?;
            thread::sleep(Duration::from_millis(300));
            conn.stream().write_all(b"done\n")?;
            Ok(())
        }),
    )
    .unwrap();
    let addr = server.local_addr().as_inet().expect("a TCP server");
    let handle = server.shutdown_handle();
    let baseline = thread_count(std::process::id());
    let serving = thread::spawn(move || {
        server.serve_forever().unwrap();
        server.server_close();
    });
    let clients: Vec<_> = (0..20)
        .map(|_| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(b"x").unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).map(|_| out)
            })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || request_threads() == 20),
        "{} request threads",
        request_threads()
    );
    handle.shutdown().unwrap();
    serving.join().unwrap();
    // server_close joined them: none left at once, no waiting needed.
    assert_eq!(request_threads(), 0, "{:?}", thread_names(std::process::id()));
    for c in clients {
        assert_eq!(c.join().unwrap().unwrap(), "done\n");
    }
    // The whole process is back where it was (other tests of this binary run children, not
    // threads, apart from their client threads, so allow those a bounded moment to end).
    let back = eventually(Duration::from_secs(5), || thread_count(std::process::id()) <= baseline);
    assert!(back || request_threads() == 0, "threads: {:?}", thread_names(std::process::id()));
}

/// Starts a `/delay?s=5`, sends SIGINT twice; returns the exit status, the time from the second
/// SIGINT to the exit, the server's children at the time of the signal, and the client's outcome.
fn double_sigint(name: &str) -> (Option<i32>, Duration, Vec<u32>, String) {
    let mut server = ServerProcess::start(name, &[]);
    let (addr, pid) = (server.addr, server.pid);
    if name == "prefork_server" {
        assert!(eventually(Duration::from_secs(5), || !live_children(pid).is_empty()), "workers booted");
    }
    let idle_fds = family_fds(pid);
    let client = thread::spawn(move || {
        common::raw(addr, b"GET /delay?s=5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .map(|r| r.status.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    });
    let accepted = eventually(Duration::from_secs(5), || {
        if name == "forking_server" { !live_children(pid).is_empty() } else { family_fds(pid) > idle_fds }
    });
    assert!(accepted, "{name}: the request was not accepted");
    let family = children_of(pid);
    server.signal(Signal::SIGINT);
    // Standard signals do not queue: wait until the first was taken before sending the second.
    assert!(server.wait_for_log("stopping", Duration::from_secs(5)), "{name}: {}", server.log_so_far());
    server.signal(Signal::SIGINT);
    let t0 = Instant::now();
    let (status, log) = server.wait_exit(Duration::from_secs(5));
    let took = t0.elapsed();
    let status = status.unwrap_or_else(|| panic!("{name} did not exit after two SIGINTs:\n{log}"));
    (status.code(), took, family, client.join().unwrap())
}

#[test]
fn a_second_sigint_exits_at_once_with_130() {
    for name in ["threaded_server", "pool_server"] {
        let (code, took, _, client) = double_sigint(name);
        assert_eq!(code, Some(130), "{name}");
        assert!(took < Duration::from_secs(1), "{name}: {took:?}");
        assert!(client.starts_with("error"), "{name}: the cut-off request answered {client}");
    }
}

#[test]
fn a_second_sigint_exits_the_forking_server_at_once_and_its_children_with_it() {
    let (code, took, children, client) = double_sigint("forking_server");
    assert_eq!(code, Some(130));
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(children.len(), 1);
    // PR_SET_PDEATHSIG: the child gets SIGTERM when the parent dies; no orphan runs on.
    assert!(
        eventually(Duration::from_secs(1), || children.iter().all(|&c| gone(c))),
        "orphaned children still running: {children:?}"
    );
    assert!(client.starts_with("error"), "the cut-off request answered {client}");
}

#[test]
fn a_second_sigint_makes_the_prefork_master_kill_its_workers() {
    // The master's documented behaviour: the second signal SIGKILLs every worker, reaps, and
    // returns normally (exit 0): it did what it was told.
    let (code, took, workers, client) = double_sigint("prefork_server");
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(workers.iter().all(|&w| gone(w)), "workers left: {workers:?}");
    assert!(client.starts_with("error"), "the cut-off request answered {client}");
}

#[test]
fn sigterm_to_a_forking_servers_child_ends_the_child_not_the_server() {
    // The child inherits shutdown_on_signals' handler with the parent's memory; in the child it
    // must take the default action (die), not record a stop and wake the parent's eventfd.
    let mut server = ServerProcess::start("forking_server", &[]);
    let (addr, pid) = (server.addr, server.pid);
    let client = thread::spawn(move || {
        common::raw(addr, b"GET /delay?s=5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .map(|r| r.status.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    });
    assert!(eventually(Duration::from_secs(5), || !live_children(pid).is_empty()), "no child forked");
    let children = live_children(pid);
    assert_eq!(children.len(), 1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(children[0] as i32), Signal::SIGTERM).unwrap();
    assert!(eventually(Duration::from_secs(2), || gone(children[0])), "the child survived SIGTERM");
    let answer = client.join().unwrap();
    assert!(answer.starts_with("error"), "the killed child's request answered {answer}");
    // The server did not take the child's signal for its own: it still serves.
    assert_eq!(common::get(addr, "/hello").status, 200);
    assert!(server.wait_for_log("killed by SIGTERM", Duration::from_secs(5)), "{}", server.log_so_far());
    assert!(!server.log_so_far().contains("stopping"), "{}", server.log_so_far());
    server.signal(Signal::SIGTERM);
    let (status, log) = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
}
