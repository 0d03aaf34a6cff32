//! Unix stream sockets: every strategy serves HTTP on one (in-process servers for the threaded
//! strategies, example binaries as child processes for the forking ones: never fork inside this
//! multi-threaded harness), and the socket file's rules hold: owner-only, removed on close, a
//! stale one replaced, anything else at the path refused and kept.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use common::{ServerProcess, TempDir, burst_unix, children_of, get_unix};
use nix::sys::signal::Signal;
use socketserver::http::{HttpHandler, Request, Response};
use socketserver::trace::Who;
use socketserver::{Addr, Concurrency, Error, EventLoop, Pool, Sequential, Server, Threading, handler_fn};

/// An HTTP handler that says who served the request and who asked.
fn who_and_peer() -> HttpHandler<impl socketserver::http::Service> {
    HttpHandler::new(|req: &Request| {
        Response::text(200, format!("{} from {}\n", Who::current(), req.peer_addr()))
    })
}

/// Serves HTTP on a Unix socket at `path` with `c` on a thread; checks one request, then stops
/// the server and checks the file is gone.
fn serves_http_on_unix<C: Concurrency + Send + 'static>(c: C, path: &Path) {
    let mut server = Server::bind_unix(path, c, who_and_peer()).expect("bind_unix");
    assert_eq!(server.local_addr(), Addr::Unix(path.to_path_buf()));
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "owner-only by default");
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || {
        server.serve_forever().unwrap();
        server.server_close();
    });
    let r = get_unix(path, "/");
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("from unix:(unnamed)\n"), "{}", r.text());
    // Keep-alive over a Unix socket: two requests on one connection.
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all}");
    stop.shutdown().unwrap();
    t.join().unwrap();
    assert!(!path.exists(), "the socket file is removed on close");
}

#[test]
fn every_threaded_strategy_serves_http_on_a_unix_socket() {
    let dir = TempDir::new("unix-strategies");
    serves_http_on_unix(Sequential, &dir.join("seq.sock"));
    serves_http_on_unix(Threading::new(), &dir.join("thr.sock"));
    serves_http_on_unix(Pool::new(2), &dir.join("pool.sock"));
    serves_http_on_unix(Pool::new(2).half_async(false), &dir.join("pool-blocking.sock"));
    serves_http_on_unix(EventLoop::new(), &dir.join("loop.sock"));
    serves_http_on_unix(EventLoop::new().threads(2).accept_on_loops(true), &dir.join("loops.sock"));
}

#[test]
fn a_plain_handler_gets_a_unix_stream_and_an_unnamed_peer() {
    let dir = TempDir::new("unix-plain");
    let path = dir.join("echo.sock");
    let echo = handler_fn(|conn| {
        let peer = conn.peer_addr().to_string();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&*conn.stream()), &mut line)?;
        write!(conn.stream(), "{} {peer}", line.trim_end().to_uppercase())?;
        Ok(())
    });
    let mut server = Server::bind_unix(&path, Threading::new(), echo).unwrap();
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || {
        server.serve_forever().unwrap();
        server.server_close();
    });
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"hello\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "HELLO unix:(unnamed)");
    stop.shutdown().unwrap();
    t.join().unwrap();
}

#[test]
fn a_second_server_on_a_live_socket_is_refused_and_the_first_keeps_serving() {
    let dir = TempDir::new("unix-two");
    let path = dir.join("s.sock");
    let mut first = Server::bind_unix(&path, Threading::new(), who_and_peer()).unwrap();
    match Server::bind_unix(&path, Sequential, who_and_peer()) {
        Err(Error::Bind { addr, source }) => {
            assert_eq!(addr, Addr::Unix(path.clone()));
            assert!(source.to_string().contains("another server is listening"), "{source}");
        }
        other => panic!("expected a bind error, got {:?}", other.map(|s| s.local_addr())),
    }
    let stop = first.shutdown_handle();
    let t = thread::spawn(move || {
        first.serve_forever().unwrap();
        first.server_close();
    });
    assert_eq!(get_unix(&path, "/").status, 200, "the first server is untouched");
    stop.shutdown().unwrap();
    t.join().unwrap();
}

#[test]
fn the_socket_mode_is_configurable() {
    let dir = TempDir::new("unix-mode");
    let path = dir.join("group.sock");
    let server =
        socketserver::ServerBuilder::new().unix_mode(0o660).bind_unix(&path, Sequential, who_and_peer());
    let server = server.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
    drop(server);
    assert!(!path.exists());
}

/// Stops a child server with SIGTERM; checks exit 0, no child left, the socket file gone.
fn stop_cleanly(mut server: ServerProcess, path: &Path) {
    server.signal(Signal::SIGTERM);
    let pid = server.pid;
    let (status, log) = server.wait_exit(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "exit 0 after SIGTERM: {status:?}\n{log}");
    assert!(children_of(pid).is_empty(), "no child left behind");
    assert!(!path.exists(), "no socket file left after SIGTERM\n{log}");
}

#[test]
fn forking_server_on_a_unix_socket_answers_100_concurrent_clients_from_distinct_children() {
    let dir = TempDir::new("unix-forking");
    let path = dir.join("fork.sock");
    let server = ServerProcess::start_unix("forking_server", &path, &["--quiet", "--max-children", "100"]);
    assert_eq!(server.unix.as_deref(), Some(path.as_path()));
    let (_, replies) = burst_unix(&path, 100, "/delay?s=0.5");
    assert!(replies.iter().all(|r| r.status == 200));
    let pids: std::collections::HashSet<u32> = replies.iter().map(|r| r.pid()).collect();
    assert!(pids.len() > 1 && !pids.contains(&server.pid), "served by children: {} pids", pids.len());
    stop_cleanly(server, &path);
}

#[test]
fn threaded_server_on_a_unix_socket_answers_100_concurrent_clients_on_distinct_threads() {
    let dir = TempDir::new("unix-threaded");
    let path = dir.join("thr.sock");
    let server = ServerProcess::start_unix("threaded_server", &path, &["--quiet"]);
    let (_, replies) = burst_unix(&path, 100, "/delay?s=0.5");
    assert!(replies.iter().all(|r| r.status == 200));
    let tids: std::collections::HashSet<u32> = replies.iter().map(|r| r.tid()).collect();
    assert!(tids.len() > 1, "concurrent threads: {}", tids.len());
    stop_cleanly(server, &path);
}

#[test]
fn prefork_server_on_a_unix_socket_spreads_over_its_workers_and_removes_the_file() {
    let dir = TempDir::new("unix-prefork");
    let path = dir.join("prefork.sock");
    let server = ServerProcess::start_unix("prefork_server", &path, &["--quiet", "--workers", "3"]);
    let (_, replies) = burst_unix(&path, 12, "/delay?s=0.3");
    assert!(replies.iter().all(|r| r.status == 200));
    let pids: std::collections::HashSet<u32> = replies.iter().map(|r| r.pid()).collect();
    assert!(pids.len() > 1, "several workers served: {pids:?}");
    stop_cleanly(server, &path);
}

#[test]
fn an_example_server_refuses_a_regular_file_at_its_path_and_leaves_it() {
    let dir = TempDir::new("unix-refuse");
    let path = dir.join("notes.txt");
    std::fs::write(&path, "precious").unwrap();
    let out = std::process::Command::new(common::example_path("threaded_server"))
        .arg("--unix")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a regular file is at this path, not a socket; refusing to replace it"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn a_stale_socket_from_a_killed_server_is_replaced() {
    let dir = TempDir::new("unix-stale");
    let path = dir.join("s.sock");
    let mut killed = ServerProcess::start_unix("threaded_server", &path, &["--quiet"]);
    killed.signal(Signal::SIGKILL); // no cleanup: the file stays behind
    let _ = killed.wait_exit(Duration::from_secs(10));
    assert!(path.exists(), "SIGKILL leaves the socket file");
    let server = ServerProcess::start_unix("threaded_server", &path, &["--quiet"]);
    assert_eq!(get_unix(&path, "/hello").status, 200);
    stop_cleanly(server, &path);
}
