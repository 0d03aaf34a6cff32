//! The client against tiny std-only servers on 127.0.0.1:0.
//!
//! Each test server accepts exactly the connections the test will make and then stops, so every
//! test is bounded; the only sleeps are the handlers' simulated work, never synchronisation.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use course::client::{ErrorKind, FireConfig, FireReport, Url, fire};
use socketserver::trace;

/// How each test server handles one connection whose request head it has read.
type Respond = fn(&mut TcpStream);

/// Whether the test server handles connections on the accepting thread or a thread each.
#[derive(Clone, Copy)]
enum Style {
    Sequential,
    Threaded,
}

/// Accepts `n` connections on a fresh port, reads each request head, and calls `respond`.
fn server(n: usize, style: Style, respond: Respond) -> (Url, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/delay?s=0.2")).expect("url");
    let handle = thread::spawn(move || {
        let mut workers = Vec::new();
        for _ in 0..n {
            let Ok((mut stream, _)) = listener.accept() else {
                break;
            };
            let mut work = move || {
                if read_head(&mut stream) {
                    respond(&mut stream);
                }
            };
            match style {
                Style::Sequential => work(),
                Style::Threaded => workers.push(thread::spawn(work)),
            }
        }
        for w in workers {
            let _ = w.join();
        }
    });
    (url, handle)
}

/// Reads up to the blank line ending a request head; false if the client went away first.
fn read_head(stream: &mut TcpStream) -> bool {
    // A safety net so a broken test fails instead of hanging; not a synchronisation device.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// Works 200 ms and says who did it and when, as the crate's example servers do.
fn timed_ok(stream: &mut TcpStream) {
    let start = trace::now();
    thread::sleep(Duration::from_millis(200));
    let elapsed = trace::now() - start;
    let body = "ok\n";
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Pid: {}\r\nX-Tid: {}\r\n\
         X-Start: {start:.6}\r\nX-Elapsed: {elapsed:.6}\r\nServer: test\r\n\r\n{body}",
        body.len(),
        trace::pid(),
        trace::tid(),
    );
    let _ = stream.write_all(response.as_bytes());
}

fn fire_at(url: Url, n: usize, timeout: Duration) -> FireReport {
    fire(&FireConfig { timeout, ..FireConfig::new(n, url) })
}

fn kinds(report: &FireReport) -> Vec<Option<ErrorKind>> {
    report.outcomes.iter().map(|o| o.result.as_ref().err().map(|e| e.kind)).collect()
}

#[test]
fn threaded_server_handles_all_five_at_once() {
    let (url, server) = server(5, Style::Threaded, timed_ok);
    let report = fire_at(url, 5, Duration::from_secs(10));
    server.join().expect("server thread");
    assert!(report.all_answered(), "{report}");
    assert_eq!(report.max_in_flight(), 5, "{report}");
    assert!(report.wall < 1.0, "{report}");
    assert_eq!(report.distinct_pids(), 1);
    assert_eq!(report.distinct_tids(), 5);
    assert_eq!(report.verdict(), "concurrently, by 5 threads of 1 process", "{report}");
    let indexes: Vec<usize> = report.outcomes.iter().map(|o| o.index).collect();
    assert_eq!(indexes, [1, 2, 3, 4, 5]);
    for o in &report.outcomes {
        let reply = o.result.as_ref().expect("reply");
        assert_eq!((reply.status, reply.body_len), (200, 3));
        assert_eq!(reply.pid, Some(std::process::id()));
        assert!(o.sent <= o.done && o.done <= report.wall);
    }
    let text = report.to_string();
    assert!(text.contains(&format!("pid {} tid ", std::process::id())), "{text}");
}

#[test]
fn sequential_server_handles_one_at_a_time() {
    let (url, server) = server(3, Style::Sequential, timed_ok);
    let report = fire_at(url, 3, Duration::from_secs(10));
    server.join().expect("server thread");
    assert!(report.all_answered(), "{report}");
    assert_eq!(report.max_in_flight(), 1, "{report}");
    assert_eq!(report.distinct_tids(), 1);
    assert_eq!(report.verdict(), "one at a time");
    assert!(report.wall >= 0.6, "{report}");
    // One group heading, three bars under it.
    let text = report.to_string();
    assert_eq!(text.matches("\npid ").count(), 1, "{text}");
}

#[test]
fn refused_connections_are_reported_not_panicked() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.local_addr().expect("local addr").port()
        // Dropped here: nothing listens on `port` any more.
    };
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
    let report = fire_at(url, 3, Duration::from_secs(5));
    assert_eq!(kinds(&report), [Some(ErrorKind::Refused); 3], "{report}");
    assert!(!report.all_answered());
    assert_eq!(report.verdict(), "no answers: all 3 requests failed");
    let text = report.to_string();
    assert!(text.contains("refused"), "{text}");
    assert!(text.contains("errors             3 refused"), "{text}");
}

#[test]
fn a_server_that_closes_without_answering_is_closed() {
    let (url, server) = server(2, Style::Threaded, |_| {});
    let report = fire_at(url, 2, Duration::from_secs(10));
    server.join().expect("server thread");
    assert_eq!(kinds(&report), [Some(ErrorKind::Closed); 2], "{report}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Reads the request, then waits for the client to give up and close.
    let (url, server) = server(1, Style::Threaded, |s| {
        let _ = s.read_to_end(&mut Vec::new());
    });
    let began = Instant::now();
    let report = fire_at(url, 1, Duration::from_millis(300));
    server.join().expect("server thread");
    assert_eq!(kinds(&report), [Some(ErrorKind::Timeout)], "{report}");
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(report.wall >= 0.3, "{report}");
}

#[test]
fn garbage_is_a_bad_response() {
    let (url, server) = server(1, Style::Threaded, |s| {
        let _ = s.write_all(b"hello, this is not HTTP\r\n\r\n");
    });
    let report = fire_at(url, 1, Duration::from_secs(10));
    server.join().expect("server thread");
    assert_eq!(kinds(&report), [Some(ErrorKind::BadResponse)], "{report}");
}

#[test]
fn a_cut_body_is_closed() {
    let (url, server) = server(1, Style::Threaded, |s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    });
    let report = fire_at(url, 1, Duration::from_secs(10));
    server.join().expect("server thread");
    assert_eq!(kinds(&report), [Some(ErrorKind::Closed)], "{report}");
    let message = &report.outcomes[0].result.as_ref().unwrap_err().message;
    assert!(message.contains("3 of 10 body bytes"), "{message}");
}

#[test]
fn content_length_ends_the_response_even_if_the_server_keeps_the_connection() {
    // A keep-alive server that ignores Connection: close and has no X- headers: the client
    // must stop at Content-Length, record the 404, and fall back to its own clock.
    let (url, server) = server(2, Style::Threaded, |s| {
        let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!");
        let _ = s.read_to_end(&mut Vec::new());
    });
    let report = fire_at(url, 2, Duration::from_secs(10));
    server.join().expect("server thread");
    assert!(report.all_answered(), "{report}");
    for o in &report.outcomes {
        let reply = o.result.as_ref().expect("reply");
        assert_eq!((reply.status, reply.body_len, reply.pid), (404, 5, None));
    }
    assert!(report.to_string().contains("seen from the client"));
}

#[test]
fn without_content_length_the_body_runs_to_end_of_stream() {
    let (url, server) = server(1, Style::Threaded, |s| {
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nX-Pid: 7\r\n\r\nhello, world");
    });
    let report = fire_at(url, 1, Duration::from_secs(10));
    server.join().expect("server thread");
    let reply = report.outcomes[0].result.as_ref().expect("reply");
    assert_eq!((reply.status, reply.body_len, reply.pid), (200, 12, Some(7)));
}

#[test]
fn interim_100_continue_is_skipped() {
    let (url, server) = server(1, Style::Threaded, |s| {
        let _ =
            s.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    });
    let report = fire_at(url, 1, Duration::from_secs(10));
    server.join().expect("server thread");
    let reply = report.outcomes[0].result.as_ref().expect("reply");
    assert_eq!(reply.status, 201);
}

// ---------------------------------------------------------------------------------------------
// Load mode, against a tiny std keep-alive server.
// ---------------------------------------------------------------------------------------------

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use course::client::{LoadConfig, LoadReport, Threads, load};

/// How the keep-alive test server answers one request: it gets the stream, whether the request
/// said `Connection: close`, and the request's number across the whole server (from 0), and
/// says whether to keep the connection open for another request.
type Answer = fn(&mut TcpStream, bool, usize) -> bool;

/// A keep-alive HTTP/1.1 server on a thread: a thread per connection, any number of requests
/// per connection, accepted connections counted. Dropping it stops the accept loop (a flag and
/// one connection to wake `accept`, not a sleep) and joins every thread.
struct KeepAliveServer {
    url: Url,
    accepts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl KeepAliveServer {
    fn start(answer: Answer) -> KeepAliveServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/hello")).expect("url");
        let accepts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (accepts2, stop2) = (Arc::clone(&accepts), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accepts2.fetch_add(1, Ordering::SeqCst);
                let requests = Arc::clone(&requests);
                workers.push(thread::spawn(move || serve_connection(stream, answer, &requests)));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        KeepAliveServer { url, accepts, stop, handle: Some(handle) }
    }

    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

impl Drop for KeepAliveServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.url.port));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Reads request heads line by line and answers each, until the client goes away, asks to
/// close, or the answer says to stop.
fn serve_connection(stream: TcpStream, answer: Answer, requests: &AtomicUsize) {
    // A safety net so a broken test fails instead of hanging; not a synchronisation device.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut close = false;
        let mut lines = 0;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" && lines > 0 {
                break;
            }
            lines += 1;
            close |= line.eq_ignore_ascii_case("connection: close\r\n");
        }
        let nth = requests.fetch_add(1, Ordering::SeqCst);
        if !answer(&mut writer, close, nth) || close {
            return;
        }
    }
}

/// 200 "ok\n", except every fifth request (by server-wide number) gets 404; echoes
/// `Connection: close` when asked.
fn ok_or_404(s: &mut TcpStream, close: bool, nth: usize) -> bool {
    let status = if nth % 5 == 4 { "404 Not Found" } else { "200 OK" };
    let connection = if close { "Connection: close\r\n" } else { "" };
    let response = format!("HTTP/1.1 {status}\r\nContent-Length: 3\r\n{connection}\r\nok\n");
    s.write_all(response.as_bytes()).is_ok()
}

/// Both threading models: every load test runs against each, so the multiplexed event loops
/// and the blocking thread-per-connection mode are held to the same behaviour.
const MODES: [Threads; 2] = [Threads::PerConnection, Threads::EventLoops(2)];

fn cfg(
    threads: Threads,
    url: &Url,
    connections: usize,
    requests: Option<u64>,
    duration: Option<Duration>,
) -> LoadConfig {
    LoadConfig {
        connections,
        threads,
        requests,
        duration,
        timeout: Duration::from_secs(10),
        ..LoadConfig::new(url.clone())
    }
}

fn assert_no_errors(report: &LoadReport) {
    assert!(report.all_answered(), "{report}");
    assert_eq!(report.error_count(), 0, "{report}");
}

#[test]
fn load_n_500_gives_exactly_500_responses_on_kept_alive_connections() {
    for mode in MODES {
        let server = KeepAliveServer::start(ok_or_404);
        let report = load(&cfg(mode, &server.url, 4, Some(500), None));
        assert_no_errors(&report);
        assert_eq!(report.responses(), 500, "{report}");
        assert_eq!(report.statuses, vec![(200, 400), (404, 100)], "{report}");
        assert_eq!(report.latency.count(), 500);
        assert_eq!(
            report.bytes_read,
            500 * "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n".len() as u64
                + 100 * ("404 Not Found".len() - "200 OK".len()) as u64
        );
        assert_eq!(report.unfinished, 0);
        // Keep-alive: at most one connection each, reused for every request. (At most: with
        // -n, a quick connection may claim every request before a slow one has connected,
        // and a connection with nothing left to send is never opened.)
        assert!((1..=4).contains(&report.connects), "{report}");
        let connects = report.connects;
        drop(report);
        assert_eq!(server.accepts() as u64, connects);
        let text = load(&cfg(mode, &server.url, 2, Some(10), None)).to_string();
        assert!(text.contains("status       200: 8, 404: 2\n"), "{text}");
        assert!(text.contains("errors       none\n"), "{text}");
    }
}

#[test]
fn multiplexed_connections_need_not_divide_evenly_among_threads() {
    let server = KeepAliveServer::start(ok_or_404);
    for (c, t, n) in [(5, 2, 333), (7, 3, 1000), (3, 8, 50), (1, 2, 7)] {
        // Exactly n, however unevenly the threads share them. (A fast thread may claim them all
        // before another has connected, so connections are at most c here.)
        let report = load(&cfg(Threads::EventLoops(t), &server.url, c, Some(n), None));
        assert_no_errors(&report);
        assert_eq!(report.responses(), n, "c {c} t {t}: {report}");
        assert!(report.connects <= c as u64, "c {c} t {t}: {report}");
        assert_eq!(report.threads, Threads::EventLoops(t.min(c)), "no more threads than connections");
        // A timed run keeps every one of the c connections busy.
        let timed = cfg(Threads::EventLoops(t), &server.url, c, None, Some(Duration::from_millis(200)));
        let report = load(&timed);
        assert_no_errors(&report);
        assert_eq!(report.connects, c as u64, "c {c} t {t}: {report}");
    }
    let text = load(&cfg(Threads::EventLoops(3), &server.url, 7, Some(10), None)).to_string();
    assert!(text.contains("with 7 connections, on 3 event-loop threads (keep-alive)\n"), "{text}");
    let text = load(&cfg(Threads::PerConnection, &server.url, 2, Some(10), None)).to_string();
    assert!(text.contains("with 2 connections, a blocking thread each (keep-alive)\n"), "{text}");
}

#[test]
fn every_response_is_in_the_throughput_series() {
    for mode in MODES {
        let server = KeepAliveServer::start(ok_or_404);
        let report = load(&cfg(mode, &server.url, 2, None, Some(Duration::from_millis(350))));
        assert_no_errors(&report);
        let t = &report.throughput;
        // However late the sampling thread woke, no response is lost or counted twice.
        assert_eq!(t.counts.iter().sum::<u64>(), report.responses(), "{:?}", t.counts);
        // 350 ms in 100 ms intervals: at most three whole ones and the rest.
        assert!((1..=4).contains(&t.counts.len()), "{:?}", t.counts);
        assert_eq!(t.interval, course::client::load::SAMPLE_INTERVAL);
    }
}

#[test]
fn load_close_mode_opens_a_connection_per_request() {
    for mode in MODES {
        let server = KeepAliveServer::start(ok_or_404);
        let report = load(&LoadConfig { keep_alive: false, ..cfg(mode, &server.url, 3, Some(60), None) });
        assert_no_errors(&report);
        assert_eq!((report.responses(), report.connects), (60, 60), "{report}");
        assert_eq!(server.accepts(), 60);
        assert!(report.to_string().contains("(one request each)"));
    }
}

#[test]
fn load_reconnects_when_the_server_closes_a_kept_alive_connection() {
    for mode in MODES {
        // Says `Connection: close` on every response: the client reconnects before the next one.
        let server = KeepAliveServer::start(|s, _, nth| {
            ok_or_404(s, true, nth);
            false
        });
        let report = load(&cfg(mode, &server.url, 2, Some(40), None));
        assert_no_errors(&report);
        assert_eq!((report.responses(), report.connects), (40, 40), "{report}");

        // Closes after every response *without* saying so: the next request on that connection
        // finds it closed before any byte comes back, and is sent again on a new one, silently.
        let server = KeepAliveServer::start(|s, _, nth| {
            ok_or_404(s, false, nth);
            false
        });
        let report = load(&cfg(mode, &server.url, 2, Some(40), None));
        assert_no_errors(&report);
        assert_eq!(report.responses(), 40, "{report}");
        assert!(report.connects >= 40, "{report}");
    }
}

#[test]
fn load_counts_a_response_cut_short_as_closed() {
    for mode in MODES {
        let server = KeepAliveServer::start(|s, _, _| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
            false
        });
        let report = load(&cfg(mode, &server.url, 2, Some(20), None));
        assert_eq!(report.responses(), 0, "{report}");
        assert_eq!(report.errors, vec![(ErrorKind::Closed, 20)], "{report}");
        assert!(!report.all_answered());
        let text = report.to_string();
        assert!(text.contains("errors       20 closed\n"), "{text}");
        assert!(text.contains("3 of 10 body bytes"), "{text}");
    }
}

#[test]
fn load_counts_garbage_and_refusals() {
    for mode in MODES {
        let server = KeepAliveServer::start(|s, _, _| {
            let _ = s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n");
            false
        });
        let report = load(&cfg(mode, &server.url, 1, Some(3), None));
        assert_eq!(report.errors, vec![(ErrorKind::BadResponse, 3)], "{report}");

        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
        let report = load(&cfg(mode, &url, 2, Some(6), None));
        assert_eq!(report.errors, vec![(ErrorKind::Refused, 6)], "{report}");
        assert_eq!((report.responses(), report.connects), (0, 0));
    }
}

#[test]
fn load_counts_a_silent_server_as_timeouts() {
    for mode in MODES {
        // Reads the request and never answers; the client's per-request timeout fires.
        let server = KeepAliveServer::start(|s, _, _| {
            let _ = s.read_to_end(&mut Vec::new());
            false
        });
        let config = LoadConfig {
            timeout: Duration::from_millis(200),
            ..cfg(mode, &server.url, 2, Some(4), Some(Duration::from_secs(5)))
        };
        let began = Instant::now();
        let report = load(&config);
        assert_eq!(report.errors, vec![(ErrorKind::Timeout, 4)], "{report}");
        assert!(began.elapsed() < Duration::from_secs(4), "{report}");
    }
}

#[test]
fn a_timed_load_run_stops_on_time() {
    for mode in MODES {
        let server = KeepAliveServer::start(ok_or_404);
        let began = Instant::now();
        let report = load(&cfg(mode, &server.url, 4, None, Some(Duration::from_millis(300))));
        let took = began.elapsed();
        assert_no_errors(&report);
        assert!(report.responses() > 0, "{report}");
        assert!(report.elapsed >= Duration::from_millis(300), "{report}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert_eq!(report.connects, 4);
        assert!(report.to_string().contains("for 0.3 s\n"));
    }
}

#[test]
fn a_timed_load_run_stops_on_time_even_if_the_server_never_answers() {
    for mode in MODES {
        // Reads the request, then waits for the client to give up and close.
        let server = KeepAliveServer::start(|s, _, _| {
            let _ = s.read_to_end(&mut Vec::new());
            false
        });
        let began = Instant::now();
        let report = load(&cfg(mode, &server.url, 3, None, Some(Duration::from_millis(300))));
        let took = began.elapsed();
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert_eq!((report.responses(), report.error_count(), report.unfinished), (0, 0, 3), "{report}");
        assert!(report.to_string().contains("unfinished   3"));
    }
}

#[test]
fn a_request_count_stops_first_when_both_limits_are_given() {
    for mode in MODES {
        let server = KeepAliveServer::start(ok_or_404);
        let report = load(&cfg(mode, &server.url, 2, Some(50), Some(Duration::from_secs(60))));
        assert_no_errors(&report);
        assert_eq!(report.responses(), 50);
        assert!(report.elapsed < Duration::from_secs(10), "{report}");
    }
}

#[test]
fn a_full_backlog_is_a_connect_timeout_with_its_time_in_the_report() {
    // A listener with the smallest backlog that never accepts: the kernel queues one or two
    // connections and drops the other SYNs (retrying them after 1 s, past this timeout). Every
    // request fails by the deadline, and the failures are timed, not left at 0.
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    listener.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().expect("addr").into()).expect("bind");
    listener.listen(0).expect("listen");
    let port = listener.local_addr().expect("local addr").as_socket().expect("inet").port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
    let began = Instant::now();
    let report = fire_at(url, 6, Duration::from_millis(500));
    assert!(began.elapsed() < Duration::from_secs(5), "{report}");
    assert_eq!(kinds(&report), [Some(ErrorKind::Timeout); 6], "{report}");
    let never_connected: Vec<_> = report.outcomes.iter().filter(|o| o.connected.is_none()).collect();
    assert!(!never_connected.is_empty(), "some SYNs should have been dropped\n{report}");
    for o in &never_connected {
        let message = &o.result.as_ref().unwrap_err().message;
        assert!(message.starts_with("connect: no connection within 0.5 s"), "{message}");
    }
    for o in &report.outcomes {
        assert!(o.done >= 0.5 && o.done <= report.wall, "{report}");
    }
    let text = report.to_string();
    assert!(text.contains("errors             6 timeout (at 0.5"), "{text}");
    assert!(text.contains("~ connecting"), "{text}");
    drop(listener);
}
