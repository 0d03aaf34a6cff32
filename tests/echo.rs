//! `echo_server` on every transport (TCP, UDP, Unix stream, Unix datagram) with every strategy
//! (sequential, threading, forking), judged by Python's own clients from the socketserver
//! documentation (`tests/python/*_client.py`), by 100 concurrent clients, and by bad input.
//!
//! Every server is the example binary run as a child process: the forking ones must not fork
//! inside this multi-threaded harness, and the others are run the same way so that all are
//! judged alike. `ServerProcess` kills and reaps each one (and its children) even when an
//! assertion fails.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{ServerProcess, TempDir, eventually, proc_children};
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(30);

/// The four transports, as the test names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Tcp,
    Udp,
    Unix,
    UnixDgram,
}

/// Starts `echo_server` on transport `t` with `strategy` (`""`, `--threading`, `--forking`);
/// a Unix socket goes into `dir`.
fn start(t: T, strategy: &str, dir: &TempDir, extra: &[&str]) -> ServerProcess {
    let sock = dir.join(&format!("echo{}.sock", strategy.trim_start_matches('-')));
    let sock = sock.to_str().expect("utf-8 temp path").to_string();
    let mut args: Vec<&str> = match t {
        T::Tcp => vec!["--tcp"],
        T::Udp => vec!["--udp"],
        T::Unix => vec!["--unix", &sock],
        T::UnixDgram => vec!["--unix-dgram", &sock],
    };
    if !strategy.is_empty() {
        args.push(strategy);
    }
    args.extend_from_slice(extra);
    let server = ServerProcess::start_echo(&args);
    if let Some(path) = &server.unix {
        assert_eq!(path, Path::new(&sock), "the banner names the socket file");
    }
    server
}

/// Stops `server` with SIGTERM: it must exit 0, leave no child behind and no socket file.
fn stop(mut server: ServerProcess) -> String {
    let pid = server.pid;
    server.signal(Signal::SIGTERM);
    let (status, log) = server.wait_exit(LIMIT);
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}\n{log}");
    assert!(proc_children(pid).is_empty(), "children left: {:?}", proc_children(pid));
    if let Some(path) = &server.unix {
        assert!(!path.exists(), "{} is left after SIGTERM", path.display());
    }
    assert!(log.contains("stopped"), "{log}");
    log
}

/// Runs one of Python's clients (`tests/python/NAME`) with `args`; its stdout. Killed after
/// [`LIMIT`] (a datagram lost or unanswered would otherwise leave `recv` waiting forever).
fn python(script: &str, args: &[&str]) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/").to_string() + script;
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break Some(s);
        }
        if t0.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut out).expect("read stdout");
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read stderr");
    assert!(status.is_some_and(|s| s.success()), "{script} {args:?}: {status:?}\n{out}{err}");
    out
}

/// Python's documentation client for transport `t`, sending `hello world` to `server`.
fn python_client(t: T, server: &ServerProcess) -> String {
    let port = server.addr.port().to_string();
    let host = server.addr.ip().to_string();
    let sock = server.unix.as_ref().map(|p| p.to_str().expect("utf-8").to_string()).unwrap_or_default();
    match t {
        T::Tcp => python("tcp_client.py", &[&host, &port, "hello", "world"]),
        T::Udp => python("udp_client.py", &[&host, &port, "hello", "world"]),
        T::Unix => python("unix_stream_client.py", &[&sock, "hello", "world"]),
        T::UnixDgram => python("unix_dgram_client.py", &[&sock, "hello", "world"]),
    }
}

/// Python's client against `echo_server` on `t` with each of the three strategies.
fn python_clients_on(t: T) {
    let dir = TempDir::new(&format!("echo-python-{t:?}"));
    for strategy in ["", "--threading", "--forking"] {
        let server = start(t, strategy, &dir, &[]);
        let out = python_client(t, &server);
        assert!(out.contains("Sent:     hello world\nReceived: HELLO WORLD\n"), "{t:?} {strategy}: {out}");
        assert!(
            server.wait_for_log("\"hello world\" +", LIMIT),
            "{t:?} {strategy}: no log line\n{}",
            server.log_so_far()
        );
        stop(server);
    }
}

#[test]
fn pythons_tcp_client_works_on_every_strategy() {
    python_clients_on(T::Tcp);
}

#[test]
fn pythons_udp_client_works_on_every_strategy() {
    python_clients_on(T::Udp);
}

#[test]
fn pythons_client_on_a_unix_stream_socket_works_on_every_strategy() {
    python_clients_on(T::Unix);
}

#[test]
fn pythons_client_on_a_unix_datagram_socket_works_on_every_strategy() {
    python_clients_on(T::UnixDgram);
}

/// One client's exchange: sends `msg` (a line) on transport `t` to `server`, returns the reply.
/// A Unix datagram client binds `me` first: without a name it could not be answered.
fn exchange(t: T, server: &ServerProcess, msg: &[u8], me: &Path) -> std::io::Result<Vec<u8>> {
    let mut reply = vec![0u8; 65536];
    match t {
        T::Tcp | T::Unix => {
            let mut s: Box<dyn ReadWrite> = match t {
                T::Tcp => {
                    let s = TcpStream::connect(server.addr)?;
                    s.set_read_timeout(Some(LIMIT))?;
                    Box::new(s)
                }
                _ => {
                    let s = UnixStream::connect(server.unix.as_ref().expect("socket path"))?;
                    s.set_read_timeout(Some(LIMIT))?;
                    Box::new(s)
                }
            };
            s.write_all(msg)?;
            let mut line = Vec::new();
            BufReader::new(s).read_until(b'\n', &mut line)?;
            Ok(line)
        }
        T::Udp => {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_read_timeout(Some(LIMIT))?;
            s.send_to(msg, server.addr)?;
            let n = s.recv(&mut reply)?;
            Ok(reply[..n].to_vec())
        }
        T::UnixDgram => {
            let s = UnixDatagram::bind(me)?;
            s.set_read_timeout(Some(LIMIT))?;
            s.send_to(msg, server.unix.as_ref().expect("socket path"))?;
            let n = s.recv(&mut reply)?;
            Ok(reply[..n].to_vec())
        }
    }
}

/// A stream, TCP or Unix, behind one box.
trait ReadWrite: Read + Write {}
impl<S: Read + Write> ReadWrite for S {}

/// The (pid, tid) of every log line of `log` that shows the request `shown` (quoted).
fn who_served(log: &str, shown: &str) -> Vec<(u32, u32)> {
    log.lines()
        .filter(|l| l.contains(&format!("\"{shown}\" +")))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match (w.first(), w.get(1), w.get(2), w.get(3)) {
                (Some(&"pid"), Some(p), Some(&"tid"), Some(t)) => Some((p.parse().ok()?, t.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

/// 100 clients at once on `t` with `strategy`: every one answered correctly, each request in
/// its own thread (threading) or process (forking), no zombie left, and SIGTERM cleans up.
fn hundred_clients(t: T, strategy: &str) {
    const N: usize = 100;
    let dir = TempDir::new(&format!("echo-100-{t:?}{strategy}"));
    let server = Arc::new(start(t, strategy, &dir, &[]));
    let barrier = Arc::new(Barrier::new(N));
    let clients: Vec<_> = (0..N)
        .map(|i| {
            let (server, barrier) = (Arc::clone(&server), Arc::clone(&barrier));
            let me = dir.join(&format!("client-{i}.sock"));
            thread::spawn(move || {
                barrier.wait();
                exchange(t, &server, format!("client {i}\n").as_bytes(), &me)
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let reply = c.join().expect("client thread").unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(String::from_utf8_lossy(&reply), format!("CLIENT {i}\n"), "{t:?} {strategy}");
    }
    let server = Arc::into_inner(server).expect("every client is done");
    // A request's log line may come just after its reply (and the pipe is read by a thread of
    // ours): wait until all are in.
    let lines_of = |log: &str| -> Vec<(u32, u32)> {
        (0..N).flat_map(|i| who_served(log, &format!("client {i}"))).collect()
    };
    eventually(LIMIT, || lines_of(&server.log_so_far()).len() >= N);
    let log = server.log_so_far();
    let who = lines_of(&log);
    assert_eq!(who.len(), N, "one log line per request\n{log}");
    let distinct: HashSet<u32> =
        who.iter().map(|&(pid, tid)| if strategy == "--forking" { pid } else { tid }).collect();
    assert_eq!(distinct.len(), N, "{t:?} {strategy}: every request in its own thread or process\n{log}");
    if strategy == "--forking" {
        assert!(who.iter().all(|&(pid, _)| pid != server.pid), "the children answered, not the server");
        // Finished children are reaped between requests (every poll interval): none is left.
        let pid = server.pid;
        assert!(eventually(LIMIT, || proc_children(pid).is_empty()), "zombies: {:?}", proc_children(pid));
    } else {
        assert!(who.iter().all(|&(pid, _)| pid == server.pid), "one process");
    }
    stop(server);
}

#[test]
fn hundred_tcp_clients_threading_and_forking() {
    hundred_clients(T::Tcp, "--threading");
    hundred_clients(T::Tcp, "--forking");
}

#[test]
fn hundred_udp_clients_threading_and_forking() {
    hundred_clients(T::Udp, "--threading");
    hundred_clients(T::Udp, "--forking");
}

#[test]
fn hundred_unix_stream_clients_threading_and_forking() {
    hundred_clients(T::Unix, "--threading");
    hundred_clients(T::Unix, "--forking");
}

#[test]
fn hundred_unix_datagram_clients_threading_and_forking() {
    hundred_clients(T::UnixDgram, "--threading");
    hundred_clients(T::UnixDgram, "--forking");
}

/// The server still answers: a fresh client gets its line back.
fn still_answers(t: T, server: &ServerProcess, dir: &TempDir) {
    let reply = exchange(t, server, b"still there?\n", &dir.join("after.sock")).expect("the next client");
    assert_eq!(reply, b"STILL THERE?\n");
}

#[test]
fn a_stream_client_that_vanishes_before_the_reply_costs_nothing() {
    let dir = TempDir::new("echo-vanish-stream");
    for t in [T::Tcp, T::Unix] {
        let server = start(t, "", &dir, &[]);
        for _ in 0..20 {
            // A line, then gone before the answer: the server's write meets a closed socket
            // (EPIPE or ECONNRESET, never SIGPIPE) or lands in a buffer nobody reads.
            match t {
                T::Tcp => {
                    let s = socket2::Socket::from(TcpStream::connect(server.addr).unwrap());
                    s.set_linger(Some(Duration::ZERO)).unwrap(); // close with a reset
                    (&s).write_all(b"gone\n").unwrap();
                }
                _ => {
                    UnixStream::connect(server.unix.as_ref().unwrap()).unwrap().write_all(b"gone\n").unwrap()
                }
            }
        }
        still_answers(t, &server, &dir);
        stop(server);
    }
}

#[test]
fn a_line_longer_than_the_limit_closes_that_connection_with_an_error_in_the_log() {
    let dir = TempDir::new("echo-long-line");
    let server = start(T::Tcp, "", &dir, &[]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let long = vec![b'x'; course::echo::MAX_LINE + 100];
    // The server may close while we are still writing: a reset is as good as an EOF here.
    let _ = s.write_all(&long);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no answer to a cut line: {} bytes came", rest.len());
    assert!(server.wait_for_log("longer than 8192 bytes", LIMIT), "{}", server.log_so_far());
    still_answers(T::Tcp, &server, &dir);
    stop(server);
}

#[test]
fn empty_and_oversized_datagrams_are_logged_and_the_server_goes_on() {
    let dir = TempDir::new("echo-bad-dgram");
    for t in [T::Udp, T::UnixDgram] {
        let server = start(t, "", &dir, &[]);
        let big = vec![b'y'; 9000];
        match t {
            T::Udp => {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.send_to(b"", server.addr).unwrap();
                s.send_to(&big, server.addr).unwrap();
            }
            _ => {
                let s = UnixDatagram::bind(dir.join("bad.sock")).unwrap();
                let to = server.unix.as_ref().unwrap();
                s.send_to(b"", to).unwrap();
                s.send_to(&big, to).unwrap();
            }
        }
        assert!(
            server.wait_for_log("\"\" +", LIMIT),
            "{t:?}: the empty datagram is a request too\n{}",
            server.log_so_far()
        );
        assert!(
            server.wait_for_log("truncated", LIMIT),
            "{t:?}: a datagram over 8192 bytes is reported, not silently cut\n{}",
            server.log_so_far()
        );
        still_answers(t, &server, &dir);
        stop(server);
    }
}

#[test]
fn a_datagram_client_that_vanishes_before_the_reply_costs_nothing() {
    let dir = TempDir::new("echo-vanish-dgram");
    // UDP: the reply goes to a port nobody has any more; an unconnected socket hears nothing of
    // the ICMP "port unreachable" that comes back.
    let server = start(T::Udp, "", &dir, &[]);
    for _ in 0..20 {
        UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"gone\n", server.addr).unwrap();
    }
    still_answers(T::Udp, &server, &dir);
    stop(server);
    // Unix: the client's socket file is gone, so the reply's sendto fails: an error in the log.
    let server = start(T::UnixDgram, "", &dir, &[]);
    let me: PathBuf = dir.join("gone.sock");
    let s = UnixDatagram::bind(&me).unwrap();
    s.send_to(b"gone\n", server.unix.as_ref().unwrap()).unwrap();
    drop(s);
    std::fs::remove_file(&me).unwrap();
    assert!(server.wait_for_log("\"gone\" +", LIMIT), "{}", server.log_so_far());
    still_answers(T::UnixDgram, &server, &dir);
    stop(server);
}

#[test]
fn an_unnamed_unix_datagram_client_cannot_be_answered_and_the_log_says_so() {
    let dir = TempDir::new("echo-unnamed");
    let server = start(T::UnixDgram, "", &dir, &[]);
    let s = UnixDatagram::unbound().unwrap();
    s.send_to(b"who am i\n", server.unix.as_ref().unwrap()).unwrap();
    assert!(
        server.wait_for_log("unix:(unnamed)", LIMIT) && server.wait_for_log("ERROR", LIMIT),
        "an error naming the unnamed peer\n{}",
        server.log_so_far()
    );
    still_answers(T::UnixDgram, &server, &dir);
    stop(server);
}
