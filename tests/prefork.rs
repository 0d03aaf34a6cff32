//! The prefork example server as a child process (never a fork inside this multi-threaded
//! harness): workers are the master's children, found through /proc; every wait is a bounded
//! poll; `ServerProcess`'s Drop kills and reaps the master and its workers on every path.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{ServerProcess, burst, children_of, eventually, fd_count, get, proc_children};
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
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
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
