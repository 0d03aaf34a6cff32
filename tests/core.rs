//! The server core with raw (non-HTTP) handlers, in-process: sequential and threading only.
//! Forking servers never run inside this multi-threaded test harness; they are tested as child
//! processes in tests/forking.rs.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{SleepThenWho, raw_burst, reply_tids};
use socketserver::{
    Concurrency, Connection, Error, HandlerError, RequestHandler, Sequential, Server, ServerBuilder,
    Threading, handler_fn,
};

/// Starts `serve_forever` on a thread; returns the address, a handle and the join handle.
fn start<C: Concurrency + Send + 'static, H: RequestHandler>(
    c: C,
    h: H,
) -> (SocketAddr, socketserver::ShutdownHandle, thread::JoinHandle<()>) {
    let mut server = Server::bind("127.0.0.1:0", c, h).expect("bind");
    let addr = server.local_addr().as_inet().expect("a TCP server");
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || {
        server.serve_forever().expect("serve_forever");
        server.server_close();
    });
    (addr, stop, t)
}

fn ask(addr: SocketAddr, msg: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(msg.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn sequential_handles_one_at_a_time() {
    let (addr, stop, t) = start(Sequential, SleepThenWho);
    let (wall, replies) = raw_burst(addr, 6, "500");
    stop.shutdown().unwrap();
    t.join().unwrap();
    assert!(wall >= Duration::from_millis(2900), "6 x 0.5 s one at a time took only {wall:?}");
    assert_eq!(reply_tids(&replies).len(), 1, "one thread served all: {replies:?}");
}

#[test]
fn threading_handles_concurrently_on_distinct_threads() {
    let (addr, stop, t) = start(Threading::new(), SleepThenWho);
    let (wall, replies) = raw_burst(addr, 6, "500");
    stop.shutdown().unwrap();
    t.join().unwrap();
    assert!(wall < Duration::from_millis(1500), "6 x 0.5 s on threads took {wall:?}");
    assert_eq!(reply_tids(&replies).len(), 6, "six threads: {replies:?}");
    let pids: HashSet<_> = replies.iter().map(|r| r.split_whitespace().next().unwrap().to_string()).collect();
    assert_eq!(pids, HashSet::from([std::process::id().to_string()]));
}

#[test]
fn max_threads_caps_concurrency() {
    // 4 requests of 300 ms with at most 2 threads: two waves, so at least 600 ms.
    let (addr, stop, t) = start(Threading::new().max_threads(2), SleepThenWho);
    let (wall, replies) = raw_burst(addr, 4, "300");
    stop.shutdown().unwrap();
    t.join().unwrap();
    assert_eq!(replies.len(), 4);
    assert!(replies.iter().all(|r| !r.is_empty()), "all served: {replies:?}");
    assert!(wall >= Duration::from_millis(590), "capped at 2 threads, yet took {wall:?}");
}

#[test]
fn a_panicking_handler_does_not_stop_the_server() {
    for threaded in [false, true] {
        let (addr, stop, t) =
            if threaded { start(Threading::new(), SleepThenWho) } else { start(Sequential, SleepThenWho) };
        // The panicking request's connection is simply closed.
        assert_eq!(ask(addr, "panic").unwrap(), "");
        assert!(!ask(addr, "0").unwrap().is_empty(), "server survived a panic (threaded: {threaded})");
        stop.shutdown().unwrap();
        t.join().unwrap();
    }
}

#[test]
fn shutdown_from_another_thread_stops_serve_forever_promptly() {
    let mut server = ServerBuilder::new()
        .poll_interval(Duration::from_secs(30))
        .bind("127.0.0.1:0", Sequential, SleepThenWho)
        .unwrap();
    let stop = server.shutdown_handle();
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        tx.send(()).unwrap();
        server.serve_forever()
    });
    rx.recv().unwrap();
    let t0 = Instant::now();
    stop.shutdown().unwrap();
    t.join().unwrap().unwrap();
    // The self-pipe wakes the poll; the 30 s poll interval is not waited out.
    assert!(t0.elapsed() < Duration::from_secs(2), "shutdown took {:?}", t0.elapsed());
}

#[test]
fn shutdown_from_inside_a_handler_is_an_error_not_a_deadlock() {
    for threaded in [false, true] {
        let (result_tx, result_rx) = mpsc::channel::<String>();
        let result_tx = std::sync::Mutex::new(result_tx);
        let handler = handler_fn(move |conn: &mut Connection| {
            let outcome = match conn.server().shutdown_handle().shutdown() {
                Err(Error::ShutdownFromHandler) => "refused".to_string(),
                other => format!("{other:?}"),
            };
            result_tx.lock().unwrap().send(outcome).unwrap();
            Ok(())
        });
        let (addr, _stop, t) =
            if threaded { start(Threading::new(), handler) } else { start(Sequential, handler) };
        let _ = ask(addr, "x");
        assert_eq!(result_rx.recv_timeout(Duration::from_secs(10)).unwrap(), "refused");
        // The stop itself was requested: serve_forever returns without anyone else asking.
        t.join().unwrap();
    }
}

#[test]
fn verify_request_false_closes_without_handling() {
    struct Nobody(Arc<AtomicUsize>);
    impl RequestHandler for Nobody {
        fn handle(&self, _: &mut Connection) -> Result<(), HandlerError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn verify_request(&self, _: &socketserver::Addr) -> bool {
            false
        }
    }
    let handled = Arc::new(AtomicUsize::new(0));
    let (addr, stop, t) = start(Sequential, Nobody(Arc::clone(&handled)));
    assert_eq!(ask(addr, "x").unwrap_or_default(), "");
    stop.shutdown().unwrap();
    t.join().unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 0);
}

/// The Pool's reactor and a single event loop accept from the listener themselves: they must
/// ask `verify_request` as the accept thread does, and a refused client must get nothing.
#[test]
fn verify_request_false_is_asked_by_reactors_that_accept_themselves() {
    use socketserver::http::{HttpHandler, Request, Response, SansIo};
    use socketserver::{EventLoop, Pool};
    struct Refusing(HttpHandler<fn(&Request) -> Response>, Arc<AtomicUsize>);
    impl RequestHandler for Refusing {
        fn handle(&self, conn: &mut Connection) -> Result<(), HandlerError> {
            self.0.handle(conn)
        }
        fn verify_request(&self, _: &socketserver::Addr) -> bool {
            self.1.fetch_add(1, Ordering::SeqCst);
            false
        }
        fn sans_io(&self) -> Option<&dyn SansIo> {
            self.0.sans_io()
        }
    }
    fn hello(_: &Request) -> Response {
        Response::text(200, "hello\n")
    }
    let get = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (name, asked) in
        [("pool", Arc::new(AtomicUsize::new(0))), ("event loop", Arc::new(AtomicUsize::new(0)))]
    {
        let handler = Refusing(HttpHandler::new(hello as fn(&Request) -> Response), Arc::clone(&asked));
        let (addr, stop, t) =
            if name == "pool" { start(Pool::new(2), handler) } else { start(EventLoop::new(), handler) };
        for _ in 0..3 {
            assert_eq!(ask(addr, get).unwrap_or_default(), "", "{name}: a refused client gets nothing");
        }
        stop.shutdown().unwrap();
        t.join().unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 3, "{name}: asked once per connection");
    }
}

#[test]
fn handle_request_times_out_then_handles_one() {
    let mut server = ServerBuilder::new()
        .timeout(Some(Duration::from_millis(200)))
        .bind("127.0.0.1:0", Sequential, SleepThenWho)
        .unwrap();
    let t0 = Instant::now();
    assert!(!server.handle_request().unwrap(), "nobody connected");
    assert!(t0.elapsed() >= Duration::from_millis(190));
    let addr = server.local_addr().as_inet().expect("a TCP server");
    let client = thread::spawn(move || ask(addr, "0"));
    // Sequential: handle_request runs the handler inline, then returns.
    let mut handled = false;
    for _ in 0..50 {
        if server.handle_request().unwrap() {
            handled = true;
            break;
        }
    }
    assert!(handled);
    assert!(!client.join().unwrap().unwrap().is_empty());
}

#[test]
fn server_close_waits_for_in_flight_threads_and_refuses_new_connections() {
    let mut server = Server::bind("127.0.0.1:0", Threading::new(), SleepThenWho).unwrap();
    let addr = server.local_addr().as_inet().expect("a TCP server");
    let client = thread::spawn(move || ask(addr, "400"));
    // Dispatch exactly that one connection to a thread.
    while !server.handle_request().unwrap() {}
    let t0 = Instant::now();
    server.server_close();
    assert!(t0.elapsed() >= Duration::from_millis(200), "close returned before the request finished");
    assert!(!client.join().unwrap().unwrap().is_empty(), "the in-flight request completed");
    assert!(TcpStream::connect(addr).is_err(), "listener is closed");
    assert!(matches!(server.serve_forever(), Err(Error::Closed)));
}

#[test]
fn finished_threads_are_not_kept() {
    let mut server = ServerBuilder::new()
        .timeout(Some(Duration::from_secs(5)))
        .bind("127.0.0.1:0", Threading::new(), SleepThenWho)
        .unwrap();
    let addr = server.local_addr().as_inet().expect("a TCP server");
    for _ in 0..20 {
        let client = thread::spawn(move || ask(addr, "0"));
        assert!(server.handle_request().unwrap());
        client.join().unwrap().unwrap();
    }
    assert_eq!(server.concurrency().threads_started(), 20);
    // Python keeps all 20 thread objects until close (bpo-37193); here the finished ones were
    // joined and dropped on the way.
    assert!(
        server.concurrency().tracked_threads() <= 5,
        "{} threads still tracked",
        server.concurrency().tracked_threads()
    );
    // Every client got its answer, so every thread is done or about to be.
    let t0 = Instant::now();
    while server.concurrency().active_threads() > 0 && t0.elapsed() < Duration::from_secs(5) {
        thread::yield_now();
    }
    assert_eq!(server.concurrency().active_threads(), 0);
}
