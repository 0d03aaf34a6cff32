//! The [`EventLoop`] in-process (threads only, no fork): later replies and their panics, the
//! graceful stop with answers on a timer and on an offload worker, several loops, and the
//! refusal of byte-stream handlers.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{eventually, get, read_reply};
use socketserver::http::{HttpHandler, Reply, Request, Response, Service};
use socketserver::{EventLoop, RequestHandler, Server, ShutdownHandle, handler_fn};

/// A server on 127.0.0.1:0 serving on its own thread; the thread returns the server after
/// `server_close`.
struct Running {
    addr: SocketAddr,
    stop: ShutdownHandle,
    thread: JoinHandle<()>,
}

fn serve<H: RequestHandler + Send + 'static>(strategy: EventLoop, handler: H) -> Running {
    let mut server = Server::bind("127.0.0.1:0", strategy, handler).expect("bind");
    let (addr, stop) = (server.local_addr().as_inet().expect("a TCP server"), server.shutdown_handle());
    let thread = thread::spawn(move || {
        server.serve_forever().expect("serve_forever");
        server.server_close();
    });
    Running { addr, stop, thread }
}

impl Running {
    /// Stops the server (gracefully) and waits until `server_close` returned.
    fn close(self) {
        self.stop.shutdown().expect("shutdown");
        self.thread.join().expect("server thread");
    }
}

fn http(service: impl Service) -> HttpHandler<impl Service> {
    HttpHandler::new(service).log_requests(false)
}

fn later(req: &Request) -> Reply {
    match req.path() {
        "/after" => Reply::after(Duration::from_millis(300), || Response::text(200, "after\n")),
        "/after-panic" => {
            Reply::after(Duration::from_millis(10), || panic!("a later closure panics (expected)"))
        }
        "/offload" => Reply::offload(|| {
            thread::sleep(Duration::from_millis(300));
            Response::text(200, "offloaded\n")
        }),
        "/offload-panic" => Reply::offload(|| panic!("an offloaded closure panics (expected)")),
        _ => Reply::now(Response::text(200, "now\n")),
    }
}

#[test]
fn a_panic_in_a_later_closure_is_a_500_and_the_loop_goes_on() {
    let reported = Arc::new(AtomicUsize::new(0));
    struct Counting<S> {
        inner: HttpHandler<S>,
        reported: Arc<AtomicUsize>,
    }
    impl<S: Service> RequestHandler for Counting<S> {
        fn handle(&self, conn: &mut socketserver::Connection) -> Result<(), socketserver::HandlerError> {
            self.inner.handle(conn)
        }
        fn handle_error(&self, _peer: &socketserver::Addr, _error: &socketserver::HandlerError) {
            self.reported.fetch_add(1, Ordering::SeqCst);
        }
        fn sans_io(&self) -> Option<&dyn socketserver::http::SansIo> {
            self.inner.sans_io()
        }
    }
    let handler = Counting { inner: http(later), reported: Arc::clone(&reported) };
    let server = serve(EventLoop::new().offload(1), handler);
    for path in ["/after-panic", "/offload-panic"] {
        let r = get(server.addr, path);
        assert_eq!((r.status, r.header("connection")), (500, Some("close")), "{path}");
        assert_eq!(get(server.addr, "/").status, 200, "the loop goes on after {path}");
    }
    assert_eq!(reported.load(Ordering::SeqCst), 2, "each panic reported to handle_error");
    server.close();
}

#[test]
fn a_graceful_stop_answers_requests_on_a_timer_and_on_an_offload_worker() {
    // The service counts the later replies it has handed out: then their requests are read and
    // in progress (a stop refuses connections still in the backlog, by design).
    let started = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&started);
    let service = move |req: &Request| {
        if req.path() != "/" {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        later(req)
    };
    let server = serve(EventLoop::new().offload(2), http(service));
    let addr = server.addr;
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut idle, false).unwrap().status, 200);
    let mut pending = Vec::new();
    for path in ["/after", "/offload"] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
        pending.push(s);
    }
    assert!(eventually(Duration::from_secs(10), || started.load(Ordering::SeqCst) == 2));
    let t0 = Instant::now();
    let closer = thread::spawn(move || server.close());
    for (s, want) in pending.iter_mut().zip(["after\n", "offloaded\n"]) {
        let r = read_reply(s, false).expect("answered during the stop");
        assert_eq!((r.status, r.text().as_str(), r.header("connection")), (200, want, Some("close")));
    }
    // The idle keep-alive connection was closed, not left to its idle timeout.
    let mut rest = Vec::new();
    assert!(idle.read_to_end(&mut rest).is_ok() && rest.is_empty());
    closer.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "the stop took {:?}", t0.elapsed());
}

#[test]
fn two_loops_share_the_connections() {
    let server = serve(EventLoop::new().threads(2), http(later));
    // Handed off, two connections open at once go to the two loops (the one with fewer
    // connections). (Accepting themselves, whichever loop is idle takes them.)
    let mut a = TcpStream::connect(server.addr).unwrap();
    let mut b = TcpStream::connect(server.addr).unwrap();
    let mut tids = HashSet::new();
    for s in [&mut a, &mut b] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        tids.insert(read_reply(s, false).unwrap().tid());
    }
    assert_eq!(tids.len(), 2, "two loops, two threads: {tids:?}");
    // A connection stays on its loop.
    a.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert!(tids.contains(&read_reply(&mut a, false).unwrap().tid()));
    server.close();
}

/// Each loop accepts from the shared listener itself: many connections are all served, by the
/// loops' threads (never the accept thread, which only waits for the shutdown).
#[test]
fn loops_that_accept_themselves_serve_every_connection() {
    let server = serve(EventLoop::new().threads(2).accept_on_loops(true), http(later));
    let mut tids = HashSet::new();
    for _ in 0..50 {
        tids.insert(get(server.addr, "/").tid());
    }
    assert!(!tids.is_empty() && tids.len() <= 2, "{tids:?}");
    assert!(!tids.contains(&std::process::id()), "not the test's main thread");
    server.close();
}

/// Sockets listening on `addr` (an IPv4 address), from the kernel's table `/proc/net/tcp`:
/// every socket of the network namespace, whichever descriptor holds it.
fn listening_sockets_on(addr: SocketAddr) -> usize {
    let SocketAddr::V4(v4) = addr else { panic!("IPv4 only: {addr}") };
    // The table prints the address as the 32-bit value in host (little-endian) order, then the
    // port, both in hex; state 0A is LISTEN.
    let want = format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port());
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"0A")
        })
        .count()
}

/// `reuse_port`: each loop accepts from a SO_REUSEPORT socket of its own on the server's port
/// (two listening sockets in the kernel's table, where the shared mode has one), the kernel
/// spreads connections from many client ports over both loops, and closing the server closes
/// every one of those sockets.
#[test]
fn loops_with_a_reuse_port_listener_each_share_the_port() {
    let shared = serve(EventLoop::new().threads(2).accept_on_loops(true), http(later));
    let _ = get(shared.addr, "/"); // answered: the loops have started and hold their listeners
    assert_eq!(listening_sockets_on(shared.addr), 1, "one shared listener");
    shared.close();

    let server = serve(EventLoop::new().threads(2).reuse_port(true), http(later));
    let mut tids = HashSet::new();
    tids.insert(get(server.addr, "/").tid());
    assert_eq!(listening_sockets_on(server.addr), 2, "a listener per loop");
    // Each connection comes from a new client port, and the hash of the address picks the
    // socket: 60 connections all on one loop would happen once in 2^59 runs.
    for _ in 0..60 {
        tids.insert(get(server.addr, "/").tid());
    }
    assert_eq!(tids.len(), 2, "both loops accepted: {tids:?}");
    let addr = server.addr;
    server.close();
    assert_eq!(listening_sockets_on(addr), 0, "every listener closed with the server");
}

#[test]
fn a_byte_stream_handler_is_refused_not_run_on_the_loop() {
    let server = serve(
        EventLoop::new(),
        handler_fn(|conn| {
            conn.stream().write_all(b"hello\n")?;
            Ok(())
        }),
    );
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    // Closed at once, without a word (EOF or a reset, never "hello").
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "{got:?}");
    server.close();
}
