//! The client against tiny std-only servers on 127.0.0.1:0.
//!
//! Each test server accepts exactly the connections the test will make and then stops, so every
//! test is bounded; the only sleeps are the handlers' simulated work, never synchronisation.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socketserver::client::{ErrorKind, FireConfig, FireReport, Url, fire};
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
