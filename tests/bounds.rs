//! Resource bounds (issue 4, item 3), the example servers run as child processes:
//! * a configured cap on workers (`--max-threads`, `--max-children`, `--threads`, `--workers`)
//!   holds under a burst of 10 × the cap, sampled from /proc, and every request is served;
//! * the listen backlog (`SOMAXCONN` by default) absorbs 1000 simultaneous connections;
//! * running out of file descriptors (EMFILE on `accept`) is logged at most about once a second,
//!   costs no CPU, and the server recovers once descriptors are free again.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    ServerProcess, burst, cpu_time, eventually, get, live_children, proc_children, raise_nofile, read_reply,
    thread_count,
};

const N: usize = 4;

/// Samples `measure` every 2 ms on a thread until `stop`; returns the largest value seen.
fn sample_max(
    stop: Arc<AtomicBool>,
    measure: impl Fn() -> usize + Send + 'static,
) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut max = 0;
        // Bounded: 60 s at most even if the test forgets to stop it.
        let t0 = Instant::now();
        while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(60) {
            max = max.max(measure());
            thread::sleep(Duration::from_millis(2));
        }
        max
    })
}

/// Fires 10 × N `/delay?s=0.2` at `server` while sampling `measure`; asserts every reply is 200
/// and returns the largest sample.
fn burst_and_sample(server: &ServerProcess, measure: impl Fn() -> usize + Send + 'static) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_max(Arc::clone(&stop), measure);
    let (wall, replies) = burst(server.addr, 10 * N, "/delay?s=0.2");
    stop.store(true, Ordering::Relaxed);
    assert!(replies.iter().all(|r| r.status == 200), "every request served");
    assert_eq!(replies.len(), 10 * N);
    // Ten waves of 0.2 s with N at a time: about 2 s; not much faster (that would mean more
    // than N at once), generous above (2 shared cores).
    assert!(wall >= Duration::from_millis(1800), "{wall:?}: faster than N at a time can be");
    sampler.join().unwrap()
}

#[test]
fn threaded_max_threads_caps_request_threads_under_a_burst() {
    let n = N.to_string();
    let server = ServerProcess::start("threaded_server", &["--quiet", "--max-threads", &n]);
    // Idle: main only (shutdown_on_signals installs a handler, no thread). Every thread above
    // that is a request thread.
    assert_eq!(get(server.addr, "/hello").status, 200);
    let pid = server.pid;
    assert!(
        eventually(Duration::from_secs(5), || thread_count(pid) == 1),
        "idle threads: {}",
        thread_count(pid)
    );
    let fixed = thread_count(pid);
    let max = burst_and_sample(&server, move || thread_count(pid));
    assert!(max - fixed <= N, "{} request threads at once, cap {N}", max - fixed);
    assert!(max - fixed >= 2, "the burst never ran concurrently ({} threads)", max - fixed);
}

#[test]
fn forking_max_children_caps_children_under_a_burst() {
    let n = N.to_string();
    let server = ServerProcess::start("forking_server", &["--quiet", "--max-children", &n]);
    let pid = server.pid;
    // Children of any state count: an exited child not yet reaped still holds its slot.
    let max = burst_and_sample(&server, move || proc_children(pid).len());
    assert!(max <= N, "{max} children at once, cap {N}");
    assert!(max >= 2, "the burst never ran concurrently ({max} children)");
    assert!(eventually(Duration::from_secs(3), || proc_children(pid).is_empty()), "children left");
}

#[test]
fn pool_threads_is_a_fixed_number_of_workers_under_a_burst() {
    let n = N.to_string();
    let server = ServerProcess::start("pool_server", &["--quiet", "--threads", &n]);
    assert_eq!(get(server.addr, "/hello").status, 200);
    let pid = server.pid;
    // Idle: main + N workers, started up front (no reactor thread: the workers take turns at
    // the reactor, leader/followers).
    let idle = thread_count(pid);
    assert_eq!(idle, 1 + N, "idle pool threads: {:?}", common::thread_names(pid));
    let max = burst_and_sample(&server, move || thread_count(pid));
    assert_eq!(max, idle, "the pool grew under the burst: {} workers", max - 1);
    assert_eq!(thread_count(pid), idle);
}

#[test]
fn prefork_workers_is_a_fixed_number_of_processes_under_a_burst() {
    let n = N.to_string();
    let server = ServerProcess::start("prefork_server", &["--quiet", "--workers", &n]);
    let pid = server.pid;
    assert!(eventually(Duration::from_secs(5), || live_children(pid).len() == N), "workers booted");
    let workers = live_children(pid);
    let max = burst_and_sample(&server, move || proc_children(pid).len());
    assert_eq!(max, N, "{max} workers at once, {N} configured");
    assert_eq!(live_children(pid), workers, "the same workers, none died or was added");
}

#[test]
fn the_default_backlog_absorbs_1000_simultaneous_connections() {
    const CLIENTS: usize = 1000;
    // 1000 client sockets here, 1000 accepted ones in the server (which inherits our limit),
    // plus a margin for each.
    let limit = raise_nofile(2 * CLIENTS as u64 + 100);
    if limit < 2 * CLIENTS as u64 + 100 {
        eprintln!("SKIPPED: RLIMIT_NOFILE hard limit {limit} is below {}", 2 * CLIENTS + 100);
        return;
    }
    let server = ServerProcess::start("threaded_server", &["--quiet"]);
    let addr = server.addr;
    // Connect all first: the kernel completes each handshake into the backlog whether or not the
    // server has accepted yet. A refused or reset connect fails the test.
    let t0 = Instant::now();
    let mut streams: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect #{i}: {e}")))
        .collect();
    let connected = t0.elapsed();
    let req = b"GET /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    for (i, s) in streams.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(req).unwrap_or_else(|e| panic!("send #{i}: {e}"));
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let r = read_reply(s, false).unwrap_or_else(|e| panic!("reply #{i}: {e}"));
        assert_eq!(r.status, 200, "reply #{i}");
    }
    eprintln!("{CLIENTS} connects in {connected:?}, all answered in {:?}", t0.elapsed());
}

#[test]
fn out_of_file_descriptors_is_logged_once_a_second_costs_no_cpu_and_recovers() {
    // 32 descriptors: 3 stdio, the listener, two self-pipes (4), and a few to spare; the rest go
    // to accepted connections, one each (a thread per connection, waiting for a request).
    let server = ServerProcess::start_with_nofile("threaded_server", 32, &[]);
    let addr = server.addr;
    assert_eq!(get(addr, "/hello").status, 200);
    // 60 idle connections: about 24 are accepted and hold the rest of the table; the others wait
    // in the backlog, and each accept of them fails with EMFILE.
    let idle: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    assert!(
        server.wait_for_log("accept failed", Duration::from_secs(5)),
        "no accept error logged:\n{}",
        server.log_so_far()
    );
    let count = |log: &str| log.lines().filter(|l| l.contains("accept failed")).count();
    let (lines0, cpu0, t0) = (count(&server.log_so_far()), cpu_time(server.pid), Instant::now());
    thread::sleep(Duration::from_secs(3));
    let (lines1, cpu1, spent) = (count(&server.log_so_far()), cpu_time(server.pid), t0.elapsed());
    let logged = lines1 - lines0;
    assert!(
        logged <= spent.as_secs() as usize + 1,
        "{logged} accept-error lines in {spent:?}:\n{}",
        server.log_so_far()
    );
    assert!(logged >= 1, "the errors went on but were not reported again in {spent:?}");
    let cpu = cpu1.saturating_sub(cpu0);
    assert!(cpu < Duration::from_millis(500), "the server spun: {cpu:?} CPU in {spent:?}");
    eprintln!("EMFILE: {logged} log lines and {cpu:?} CPU in {spent:?}");
    // Free the descriptors: the server's threads see EOF and close theirs.
    drop(idle);
    let mut reply = None;
    let healed = eventually(Duration::from_secs(10), || {
        reply = common::raw(addr, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").ok();
        reply.as_ref().is_some_and(|r| r.status == 200)
    });
    assert!(healed, "no 200 after the descriptors were freed:\n{}", server.log_so_far());
    assert!(server.wait_for_log("accept works again", Duration::from_secs(2)), "{}", server.log_so_far());
}
