//! The prefork example server as a child process (never a fork inside this multi-threaded
//! harness): workers are the master's children, found through /proc; every wait is a bounded
//! poll; `ServerProcess`'s Drop kills and reaps the master and its workers on every path.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{ServerProcess, burst, children_of, eventually, fd_count, get, proc_children, read_reply};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The master's children that are alive (not zombies).
fn live_workers(master: u32) -> Vec<u32> {
    proc_children(master).into_iter().filter(|(_, state)| *state != 'Z').map(|(p, _)| p).collect()
}

fn zombies(master: u32) -> Vec<u32> {
    proc_children(master).into_iter().filter(|(_, state)| *state == 'Z').map(|(p, _)| p).collect()
}

/// `prefork_server --quiet --workers n ARGS`, returned once all `n` workers exist.
fn start(n: usize, args: &[&str]) -> ServerProcess {
    let workers = n.to_string();
    let mut all = vec!["--quiet", "--workers", workers.as_str()];
    all.extend_from_slice(args);
    let server = ServerProcess::start("prefork_server", &all);
    let pid = server.pid;
    assert!(
        eventually(Duration::from_secs(5), || live_workers(pid).len() == n),
        "expected {n} workers, found {:?}",
        live_workers(pid)
    );
    // Existing is not serving: on a loaded machine a worker can take a while from fork to its
    // accept loop. Each says "serving" in the log when it gets there.
    assert!(
        eventually(Duration::from_secs(10), || server.log_so_far().matches(": serving (").count() >= n),
        "not all {n} workers reached their accept loop:\n{}",
        server.log_so_far()
    );
    server
}

/// Whether process `pid` is gone (or a zombie waiting for a parent that is not ours to be).
fn gone(pid: u32) -> bool {
    proc_state(pid).is_none_or(|state| state == 'Z')
}

#[test]
fn banner_and_hello_come_from_a_worker_not_the_master() {
    let server = start(2, &[]);
    let workers = live_workers(server.pid);
    for _ in 0..5 {
        let hello = get(server.addr, "/hello");
        assert_eq!((hello.status, hello.text().as_str()), (200, "Hello, world!\n"));
        assert_ne!(hello.pid(), server.pid, "the master never serves");
        assert!(workers.contains(&hello.pid()), "{} is not one of the workers {workers:?}", hello.pid());
    }
}

#[test]
fn four_workers_serve_four_slow_requests_at_once_in_four_processes() {
    let server = start(4, &[]);
    let workers: HashSet<u32> = live_workers(server.pid).into_iter().collect();
    let (wall, replies) = burst(server.addr, 4, "/delay?s=0.5");
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(wall < Duration::from_millis(1500), "4 x 0.5 s on 4 workers took {wall:?}");
    let pids: HashSet<u32> = replies.iter().map(|r| r.pid()).collect();
    assert_eq!(pids.len(), 4, "four distinct workers served: {pids:?}");
    assert!(pids.is_subset(&workers), "{pids:?} are not all workers {workers:?}");
}

#[test]
fn a_killed_worker_is_reaped_and_replaced() {
    let server = start(3, &[]);
    let master = server.pid;
    let before = live_workers(master);
    let victim = before[0];
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).expect("kill -9 a worker");
    let replaced = eventually(Duration::from_secs(5), || {
        let now = live_workers(master);
        now.len() == 3 && !now.contains(&victim) && zombies(master).is_empty()
    });
    assert!(
        replaced,
        "after kill -9 {victim}: workers {:?}, zombies {:?}",
        live_workers(master),
        zombies(master)
    );
    assert!(!children_of(master).contains(&victim), "the dead worker was reaped");
    let new: Vec<u32> = live_workers(master).into_iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "exactly one new worker: {new:?}");
    assert_eq!(get(server.addr, "/hello").status, 200, "still serving");
}

#[test]
fn ttin_adds_a_worker_and_ttou_removes_one() {
    let server = start(2, &[]);
    let master = server.pid;
    server.signal(Signal::SIGTTIN);
    assert!(
        eventually(Duration::from_secs(5), || live_workers(master).len() == 3),
        "SIGTTIN: {:?}",
        live_workers(master)
    );
    server.signal(Signal::SIGTTOU);
    assert!(
        eventually(Duration::from_secs(5), || live_workers(master).len() == 2 && zombies(master).is_empty()),
        "SIGTTOU: workers {:?}, zombies {:?}",
        live_workers(master),
        zombies(master)
    );
    assert_eq!(get(server.addr, "/hello").status, 200);
}

#[test]
fn sigterm_during_a_request_lets_it_finish_and_leaves_no_worker() {
    let mut server = start(2, &[]);
    let master = server.pid;
    let workers = live_workers(master);
    let fds: Vec<usize> = workers.iter().map(|w| fd_count(*w)).collect();
    let addr = server.addr;
    let request = std::thread::spawn(move || get(addr, "/delay?s=1"));
    // A worker has accepted the request when one more descriptor is open in it.
    assert!(
        eventually(Duration::from_secs(5), || workers.iter().zip(&fds).any(|(w, n)| fd_count(*w) > *n)),
        "no worker accepted the request"
    );
    server.signal(Signal::SIGTERM);
    let reply = request.join().unwrap();
    assert_eq!(reply.status, 200, "the in-flight request finished");
    let (status, log) = server.wait_exit(Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("the master did not exit; log:\n{log}"));
    assert_eq!(status.code(), Some(0), "master exit status; log:\n{log}");
    for w in &workers {
        assert!(gone(*w), "worker {w} outlived the master; log:\n{log}");
    }
    assert!(log.contains("every worker reaped"), "log:\n{log}");
}

#[test]
fn sigint_stops_quickly_and_exits_zero() {
    let mut server = start(2, &[]);
    let workers = live_workers(server.pid);
    server.signal(Signal::SIGINT);
    let (status, log) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "log:\n{log}");
    assert!(workers.iter().all(|w| gone(*w)), "log:\n{log}");
}

#[test]
fn workers_exit_when_the_master_is_killed() {
    let mut server = start(2, &[]);
    let workers = live_workers(server.pid);
    server.signal(Signal::SIGKILL);
    let (status, _) = server.wait_exit(Duration::from_secs(5));
    assert!(status.is_some(), "the master died");
    // PR_SET_PDEATHSIG: each worker gets SIGTERM and exits on its own.
    assert!(
        eventually(Duration::from_secs(5), || workers.iter().all(|w| gone(*w))),
        "orphaned workers: {:?}",
        workers.iter().filter(|w| !gone(**w)).collect::<Vec<_>>()
    );
}

#[test]
fn two_workers_with_four_threads_serve_eight_slow_requests_at_once() {
    let server = start(2, &["--threads", "4"]);
    let (wall, replies) = burst(server.addr, 8, "/delay?s=0.5");
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(wall < Duration::from_millis(1500), "8 x 0.5 s on 2 x 4 threads took {wall:?}");
    let workers = live_workers(server.pid);
    assert!(replies.iter().all(|r| workers.contains(&r.pid())));
}

/// `--event-loop`, nginx's architecture: each worker is one loop thread holding many requests
/// at once, so twenty `/delay?s=0.5` on two workers take about 0.5 s (two sequential workers
/// take 5 s), each worker answering on one thread; and SIGTERM to the master still lets a
/// request waiting on a loop timer finish before every worker exits.
#[test]
fn event_loop_workers_hold_many_requests_on_one_thread_each_and_stop_gracefully() {
    let mut server = start(2, &["--event-loop"]);
    let master = server.pid;
    let workers = live_workers(master);
    let (wall, replies) = burst(server.addr, 20, "/delay?s=0.5");
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(wall < Duration::from_millis(2500), "20 x 0.5 s on 2 event-loop workers took {wall:?}");
    let mut tids_of: HashMap<u32, HashSet<u32>> = HashMap::new();
    for r in &replies {
        assert!(workers.contains(&r.pid()), "{} is not a worker of {workers:?}", r.pid());
        tids_of.entry(r.pid()).or_default().insert(r.tid());
    }
    assert!(tids_of.values().all(|tids| tids.len() == 1), "one loop thread per worker: {tids_of:?}");

    // A /hello and a /delay pipelined in one write: once the /hello is answered, the worker
    // has read both, and the /delay waits on its loop's timer (no sleep to guess when).
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let pipelined = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n\
                      GET /delay?s=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    s.write_all(pipelined).unwrap();
    assert_eq!(read_reply(&mut s, false).unwrap().status, 200);
    server.signal(Signal::SIGTERM);
    let reply = read_reply(&mut s, false).unwrap();
    assert_eq!(reply.status, 200, "the request on a loop timer finished");
    let (status, log) = server.wait_exit(Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("the master did not exit; log:\n{log}"));
    assert_eq!(status.code(), Some(0), "master exit status; log:\n{log}");
    assert!(workers.iter().all(|w| gone(*w)), "a worker outlived the master; log:\n{log}");
}

#[test]
fn reuse_port_workers_each_bind_and_serve() {
    let server = start(3, &["--reuse-port"]);
    let workers = live_workers(server.pid);
    for _ in 0..20 {
        let r = get(server.addr, "/hello");
        assert_eq!(r.status, 200);
        assert!(workers.contains(&r.pid()), "{} is not a worker of {workers:?}", r.pid());
    }
}

/// Voluntary context switches of process `pid`'s main thread: how often it went to sleep, so
/// (for a worker's accept thread) how often something woke it.
fn wakeups(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The state letter of process `pid` (R running, S sleeping, Z zombie...).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Wake-ups per request of 16 idle sequential workers serving 40 requests one after another.
fn wakeups_per_request(args: &[&str]) -> f64 {
    const REQUESTS: u32 = 40;
    let server = start(16, args);
    let workers = live_workers(server.pid);
    // Each request must find the whole herd asleep (state S in /proc/PID/stat), or on a
    // loaded machine a worker still on its way back to sleep from the last wake-up is not
    // woken again and the count says less than the model does.
    let all_asleep = || {
        assert!(
            eventually(Duration::from_secs(5), || workers.iter().all(|w| proc_state(*w) == Some('S'))),
            "workers not all asleep: {:?}",
            workers.iter().map(|w| proc_state(*w)).collect::<Vec<_>>()
        )
    };
    assert_eq!(get(server.addr, "/hello").status, 200);
    all_asleep();
    let before: u64 = workers.iter().map(|w| wakeups(*w)).sum();
    for _ in 0..REQUESTS {
        assert_eq!(get(server.addr, "/hello").status, 200);
        all_asleep();
    }
    let after: u64 = workers.iter().map(|w| wakeups(*w)).sum();
    (after - before) as f64 / f64::from(REQUESTS)
}

/// The thundering herd, counted: with plain `poll` on the shared listener (`--wake-all`) each
/// connection wakes every idle worker (about 16 wake-ups per request with 16 workers); with
/// `EPOLLEXCLUSIVE` (the default) it wakes one, which sleeps again in its read or its next wait
/// (about 2 per request). Timer wake-ups (each worker's 0.5 s poll interval) add a little to both.
#[test]
fn exclusive_wakeup_wakes_one_worker_per_connection_poll_wakes_them_all() {
    let exclusive = wakeups_per_request(&[]);
    let herd = wakeups_per_request(&["--wake-all"]);
    println!("wake-ups per request, 16 workers: EPOLLEXCLUSIVE {exclusive:.1}, poll {herd:.1}");
    assert!(exclusive < 6.0, "EPOLLEXCLUSIVE: {exclusive:.1} wake-ups per request");
    assert!(herd > 8.0, "poll: only {herd:.1} wake-ups per request (expected about one per worker)");
}
