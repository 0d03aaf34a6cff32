//! The example servers, each run as a child process, against the example contract
//! (../shared/DESIGN.md and course/src/app.rs): the same handler on every strategy, concurrency seen
//! through pids and tids, fault isolation, graceful SIGTERM, no zombies, no fd leak.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{
    ServerProcess, burst, children_of, eventually, fd_count, get, live_children, proc_children, raw,
    read_reply, thread_count,
};
use nix::sys::signal::Signal;

const KINDS: [&str; 5] =
    ["sequential_server", "threaded_server", "forking_server", "pool_server", "event_loop_server"];

#[test]
fn the_same_handler_answers_the_same_on_every_strategy() {
    for name in KINDS {
        let server = ServerProcess::start(name, &["--quiet"]);
        let a = server.addr;
        let hello = get(a, "/hello");
        assert_eq!((hello.status, hello.text().as_str()), (200, "Hello, world!\n"), "{name}");
        for h in ["x-pid", "x-tid", "content-length", "date", "server"] {
            assert!(hello.header(h).is_some(), "{name}: /hello lacks {h}: {:?}", hello.headers);
        }
        assert_eq!(get(a, "/").status, 200, "{name}");
        assert_eq!(get(a, "/nowhere").status, 404, "{name}");
        assert_eq!(get(a, "/delay?s=0").status, 200, "{name}");
        assert_eq!(get(a, "/delay?s=61").status, 400, "{name}");
        assert_eq!(get(a, "/delay?s=abc").status, 400, "{name}");
        assert_eq!(get(a, "/block?s=0").status, 200, "{name}");
        assert_eq!(get(a, "/block?s=61").status, 400, "{name}");
        assert_eq!(get(a, "/cpu?ms=5").status, 200, "{name}");
        assert_eq!(get(a, "/cpu?ms=-1").status, 400, "{name}");
        let post =
            raw(a, b"POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .unwrap();
        assert_eq!(post.status, 405, "{name}");
        assert_eq!(post.header("allow"), Some("GET, HEAD"));
        let brew = raw(a, b"BREW /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(brew.status, 501, "{name}");
        let head = raw(a, b"HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!((head.status, head.header("content-length")), (200, Some("14")), "{name}");
        assert!(head.body.is_empty());
    }
}

#[test]
fn sequential_serves_six_half_second_requests_one_at_a_time() {
    let server = ServerProcess::start("sequential_server", &["--quiet"]);
    let (wall, replies) = burst(server.addr, 6, "/delay?s=0.5");
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(wall >= Duration::from_millis(2900), "6 x 0.5 s sequentially took only {wall:?}");
    let who: HashSet<_> = replies.iter().map(|r| (r.pid(), r.tid())).collect();
    assert_eq!(who, HashSet::from([(server.pid, server.pid)]), "the server's main thread served all");
}

#[test]
fn threaded_serves_six_half_second_requests_at_once_on_six_threads() {
    let server = ServerProcess::start("threaded_server", &["--quiet"]);
    let (wall, replies) = burst(server.addr, 6, "/delay?s=0.5");
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(wall < Duration::from_millis(1500), "6 x 0.5 s on threads took {wall:?}");
    let tids: HashSet<_> = replies.iter().map(|r| r.tid()).collect();
    let pids: HashSet<_> = replies.iter().map(|r| r.pid()).collect();
    assert_eq!(tids.len(), 6, "six distinct threads: {tids:?}");
    assert_eq!(pids, HashSet::from([server.pid]));
}

#[test]
fn forking_serves_six_half_second_requests_at_once_in_six_children() {
    let server = ServerProcess::start("forking_server", &["--quiet"]);
    let (wall, replies) = burst(server.addr, 6, "/delay?s=0.5");
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(wall < Duration::from_millis(1500), "6 x 0.5 s in children took {wall:?}");
    let pids: HashSet<_> = replies.iter().map(|r| r.pid()).collect();
    assert_eq!(pids.len(), 6, "six distinct child pids: {pids:?}");
    assert!(!pids.contains(&server.pid), "the parent never handles a request itself");
    // Reaped within a poll interval (0.5 s); allow generous slack.
    assert!(
        eventually(Duration::from_secs(3), || children_of(server.pid).is_empty()),
        "children left after the burst: {:?}",
        proc_children(server.pid)
    );
}

#[test]
fn forking_with_max_children_two_never_exceeds_two_and_serves_all() {
    let server = ServerProcess::start("forking_server", &["--quiet", "--max-children", "2"]);
    let pid = server.pid;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut most = 0;
            // Bounded: at most 20 s of sampling.
            let t0 = std::time::Instant::now();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(20) {
                most = most.max(children_of(pid).len());
                std::thread::sleep(Duration::from_millis(5));
            }
            most
        })
    };
    let (wall, replies) = burst(server.addr, 6, "/delay?s=0.3");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let most = watcher.join().unwrap();
    assert_eq!(replies.len(), 6);
    assert!(replies.iter().all(|r| r.status == 200), "all six served");
    assert!(most <= 2, "{most} children alive at once with max_children 2");
    assert!(most >= 1, "the watcher saw children at all");
    // Three waves of two.
    assert!(wall >= Duration::from_millis(850), "3 waves of 0.3 s took only {wall:?}");
    assert!(eventually(Duration::from_secs(3), || children_of(pid).is_empty()), "no zombies left");
}

#[test]
fn a_panicking_handler_gets_500_and_the_next_request_works() {
    for name in KINDS.into_iter().chain(["prefork_server"]) {
        let server = ServerProcess::start(name, &["--quiet"]);
        let pid = server.pid;
        if name == "prefork_server" {
            assert!(eventually(Duration::from_secs(5), || live_children(pid).len() == 4), "workers booted");
        }
        assert_eq!(get(server.addr, "/hello").status, 200, "{name}");
        // What must not change: the pool's threads (a panic does not cost a worker), the
        // pre-forked workers (a panic does not kill the process).
        let (threads, workers) = (thread_count(pid), live_children(pid));
        for _ in 0..5 {
            let boom = get(server.addr, "/panic");
            assert_eq!(boom.status, 500, "{name}");
            assert_eq!(boom.header("connection"), Some("close"), "{name}");
            assert_eq!(get(server.addr, "/hello").status, 200, "{name} survived the panic");
        }
        if name == "pool_server" || name == "event_loop_server" {
            assert_eq!(thread_count(pid), threads, "{name}: a worker or the loop was lost or replaced");
        }
        if name == "prefork_server" {
            assert_eq!(live_children(pid), workers, "prefork: a worker died of a panic");
        }
    }
}

#[test]
fn sigterm_during_a_request_lets_it_finish_and_exits_zero() {
    for name in KINDS {
        let mut server = ServerProcess::start(name, &[]);
        let addr = server.addr;
        // The event loop opens its loops' descriptors when it starts serving, just after the
        // banner: one request on a connection kept open first, so that they are counted.
        let _warm = (name == "event_loop_server").then(|| {
            let mut warm = TcpStream::connect(addr).unwrap();
            warm.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            assert_eq!(read_reply(&mut warm, false).unwrap().status, 200);
            warm
        });
        let idle_fds = fd_count(server.pid);
        let request = std::thread::spawn(move || get(addr, "/delay?s=1"));
        // Wait until the server has *accepted* the request: a connection still in the kernel's
        // backlog is refused by a stopping server, by design. The forking server shows a child;
        // the others, one more open descriptor (the accepted socket).
        assert!(
            eventually(Duration::from_secs(5), || {
                if name == "forking_server" {
                    !children_of(server.pid).is_empty()
                } else {
                    fd_count(server.pid) > idle_fds
                }
            }),
            "{name}: the request never arrived"
        );
        server.signal(Signal::SIGTERM);
        let reply = request.join().unwrap();
        assert_eq!(reply.status, 200, "{name}: the in-flight request finished");
        let (status, log) = server.wait_exit(Duration::from_secs(10));
        let status = status.unwrap_or_else(|| panic!("{name} did not exit; log:\n{log}"));
        assert_eq!(status.code(), Some(0), "{name} exit status; log:\n{log}");
        assert!(log.contains("stopped"), "{name} log:\n{log}");
    }
}

#[test]
fn no_fd_leak_over_500_requests() {
    for name in KINDS {
        let server = ServerProcess::start(name, &["--quiet"]);
        // One request first, so that anything opened lazily (logging, the date cache) is open.
        assert_eq!(get(server.addr, "/hello").status, 200);
        let before = fd_count(server.pid);
        for i in 0..500 {
            let path = if i % 50 == 0 { "/panic" } else { "/hello" };
            let _ = get(server.addr, path);
        }
        // A leak is growth. `before` may still count the first request's socket (the client
        // has its reply before the server's close), so fewer afterwards is fine.
        let after_ok = eventually(Duration::from_secs(5), || fd_count(server.pid) <= before);
        assert!(after_ok, "{name}: {before} fds before, {} after 500 requests", fd_count(server.pid));
    }
}

#[test]
fn pool_of_four_serves_ten_one_second_requests_in_three_waves_on_four_threads() {
    let server = ServerProcess::start("pool_server", &["--quiet", "--threads", "4"]);
    let (wall, replies) = burst(server.addr, 10, "/delay?s=0.5");
    assert!(replies.iter().all(|r| r.status == 200));
    // 4 + 4 + 2: three waves of 0.5 s.
    assert!(wall >= Duration::from_millis(1450), "10 x 0.5 s on 4 workers took only {wall:?}");
    assert!(wall < Duration::from_millis(3000), "10 x 0.5 s on 4 workers took {wall:?}");
    let tids: HashSet<_> = replies.iter().map(|r| r.tid()).collect();
    assert_eq!(tids.len(), 4, "four workers, reused: {tids:?}");
    assert_eq!(replies.iter().map(|r| r.pid()).collect::<HashSet<_>>(), HashSet::from([server.pid]));
}

/// The heart of the pool: 32 keep-alive clients on 4 workers. The clients go in lock-step
/// rounds (a barrier after every response), so all 32 connections are open and idle at once
/// between rounds. A pool that kept a worker blocked on each idle connection would serve 4
/// clients and starve the other 28 until the idle timeout; parking serves all of them.
#[test]
fn pool_of_four_serves_32_kept_alive_clients_without_starving_any() {
    const CLIENTS: usize = 32;
    const ROUNDS: usize = 20;
    let server = ServerProcess::start("pool_server", &["--quiet", "--threads", "4"]);
    let addr = server.addr;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let t0 = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || -> Result<(usize, HashSet<u32>), String> {
                let mut s = TcpStream::connect(addr).map_err(|e| e.to_string());
                if let Ok(s) = &s {
                    // Below the server's 5 s idle timeout: a starved client fails, not waits.
                    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                }
                let mut served = 0;
                let mut tids = HashSet::new();
                let mut failure = None;
                for round in 0..ROUNDS {
                    // After a failure keep meeting the barrier (bounded: ROUNDS times), so the
                    // other clients are not left waiting for this one.
                    if failure.is_none() {
                        let r = s.as_mut().map_err(|e| e.clone()).and_then(|s| {
                            s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                                .map_err(|e| e.to_string())?;
                            read_reply(s, false).map_err(|e| e.to_string())
                        });
                        match r {
                            Ok(r) if r.status == 200 && r.header("connection").is_none() => {
                                served += 1;
                                tids.insert(r.tid());
                            }
                            Ok(r) => failure = Some(format!("round {round}: {} {:?}", r.status, r.headers)),
                            Err(e) => failure = Some(format!("round {round}: {e}")),
                        }
                    }
                    barrier.wait();
                }
                match failure {
                    None => Ok((served, tids)),
                    Some(f) => Err(f),
                }
            })
        })
        .collect();
    let mut tids = HashSet::new();
    let mut failures = Vec::new();
    for c in clients {
        match c.join().expect("client thread") {
            Ok((served, t)) => {
                assert_eq!(served, ROUNDS);
                tids.extend(t);
            }
            Err(e) => failures.push(e),
        }
    }
    let took = t0.elapsed();
    assert!(failures.is_empty(), "{} of {CLIENTS} clients starved: {failures:?}", failures.len());
    assert!(took < Duration::from_secs(20), "{CLIENTS} x {ROUNDS} kept-alive requests took {took:?}");
    assert!(tids.len() <= 4, "only the four workers served: {tids:?}");
}

#[test]
fn client_load_mode_against_the_threaded_server_and_its_exit_codes() {
    use std::process::Command;
    let server = ServerProcess::start("threaded_server", &["--quiet"]);
    let client = |args: &[&str]| {
        let out = Command::new(common::example_path("client")).args(args).output().expect("run client");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let url = format!("http://{}/hello", server.addr);
    let (code, text) = client(&["--load", "-c", "4", "-n", "2000", &url]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("status       200: 2000\n"), "{text}");
    assert!(text.contains("connections  4 opened\n"), "{text}");
    // Piped, so no progress line: no carriage returns at all.
    assert!(!text.contains('\r'), "{text:?}");

    let (code, text) = client(&["--load", "--close", "-c", "2", "-n", "50", &url]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("connections  50 opened\n"), "{text}");

    let (code, text) = client(&["--load", "-c", "2", "-n", "20", &format!("http://{}/nowhere", server.addr)]);
    assert_eq!(code, Some(0), "a 404 is an answer: {text}");
    assert!(text.contains("status       404: 20\n"), "{text}");

    drop(server);
    let (code, text) = client(&["--load", "-c", "1", "-n", "2", &url]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("errors       2 refused"), "{text}");
    assert_eq!(client(&["--load", "-c", "0"]).0, Some(2));
    assert_eq!(client(&["-c", "4"]).0, Some(2));
}

/// A browser keeps its connection open after a response. A graceful stop must not wait out
/// that idle keep-alive connection (5 s): the server lets go of it at once.
#[test]
fn sigterm_does_not_wait_for_idle_keep_alive_connections() {
    for name in KINDS {
        let mut server = ServerProcess::start(name, &["--quiet"]);
        let mut idle = TcpStream::connect(server.addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        idle.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let first = read_reply(&mut idle, false).unwrap();
        assert_eq!((first.status, first.header("connection")), (200, None), "{name} keeps it alive");
        let t0 = Instant::now();
        server.signal(Signal::SIGTERM);
        let (status, log) = server.wait_exit(Duration::from_secs(10));
        let took = t0.elapsed();
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{name}; log:\n{log}");
        assert!(took < Duration::from_secs(2), "{name} took {took:?} to stop with an idle client");
        // The idle connection was closed by the server: EOF, not a hang.
        let mut rest = Vec::new();
        assert!(idle.read_to_end(&mut rest).is_ok(), "{name}: closed cleanly, not reset");
        assert!(rest.is_empty());
    }
}

/// The event loop's lesson, structurally: 50 concurrent `/delay?s=1` on one loop are 50 timers
/// of one thread, all answered together; 5 concurrent `/block?s=1` sleep that thread itself,
/// and are answered one after the other.
#[test]
fn one_event_loop_waits_on_timers_for_many_and_stalls_on_a_blocking_call() {
    let server = ServerProcess::start("event_loop_server", &["--quiet", "--threads", "1"]);
    let (wall, replies) = burst(server.addr, 50, "/delay?s=1");
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(wall >= Duration::from_millis(990), "a 1 s timer fired early: {wall:?}");
    assert!(wall < Duration::from_secs(5), "50 x /delay?s=1 on one loop took {wall:?}");
    let tids: HashSet<_> = replies.iter().map(|r| r.tid()).collect();
    assert_eq!(tids.len(), 1, "one loop thread served all 50: {tids:?}");
    assert!(!tids.contains(&server.pid), "the loop is not the accept thread");

    let (wall, replies) = burst(server.addr, 5, "/block?s=1");
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(wall >= Duration::from_secs(4), "5 x /block?s=1 on one loop took only {wall:?}");
    let block_tids: HashSet<_> = replies.iter().map(|r| r.tid()).collect();
    assert_eq!(block_tids, tids, "the same loop thread, stalled five times over");
}

/// With `--offload`, `/cpu` runs on the offload workers, and the loop answers `/hello` while
/// they compute: no probe waits anywhere near the 2 s the work takes, as one would if the work
/// ran on the loop.
#[test]
fn offloaded_cpu_work_leaves_the_loop_free() {
    let server = ServerProcess::start("event_loop_server", &["--quiet", "--offload", "2"]);
    let addr = server.addr;
    let loop_tid = get(addr, "/hello").tid();
    let cpu = std::thread::spawn(move || get(addr, "/cpu?ms=2000"));
    let (mut probes, mut slowest) = (0, Duration::ZERO);
    let t0 = Instant::now();
    while !cpu.is_finished() && t0.elapsed() < Duration::from_secs(20) {
        let t = Instant::now();
        let hello = get(addr, "/hello");
        assert_eq!((hello.status, hello.tid()), (200, loop_tid));
        slowest = slowest.max(t.elapsed());
        probes += 1;
    }
    let cpu = cpu.join().unwrap();
    assert_eq!(cpu.status, 200);
    assert_ne!(cpu.tid(), loop_tid, "the CPU work ran on an offload worker");
    assert!(cpu.text().contains("burned 2000 ms"), "{}", cpu.text());
    assert!(probes > 1, "probes while the work ran: {probes}");
    assert!(slowest < Duration::from_millis(500), "a probe waited {slowest:?}: the loop was blocked");
}
