//! Property tests of the sans-IO HTTP connection (`socketserver::http::HttpConn`), through the
//! doc-hidden case table and driver in `socketserver::http::conn_cases`.
//!
//! The unit tests in `src/http/conn_cases.rs` run every case of the table whole, byte by
//! byte, at every split and in 64 fixed orders of readiness. These generate the schedules
//! (read sizes, write sizes, reads interleaved with pending writes) and mutate the inputs
//! (byte flips, inserted CR/LF/NUL/colon/space bytes, truncations), and require for each
//! input the same output and the same open-or-closing end as the input fed whole.
//!
//! 256 cases per property by default; more: `PROPTEST_CASES=10000 cargo test --test http_conn`.
//!
//! And the same table over real sockets: the blocking driver under `Sequential`, `Threading`
//! and (today's) `Pool` must send exactly the bytes the sans-IO runs produce.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use socketserver::http::Want;
use socketserver::http::conn_cases::{CASES, Step, drive, handler, normalise};
use socketserver::{Concurrency, Pool, Sequential, Server, Threading};

/// Serves the table's handler with `c` on a thread; runs every case against it (send the
/// input, half-close, read to EOF); stops it. Returns the cases whose bytes differed.
fn over_sockets<C: Concurrency + Send + 'static>(c: C) -> Vec<String> {
    let mut server = Server::bind("127.0.0.1:0", c, handler()).expect("bind");
    let addr: SocketAddr = server.local_addr().as_inet().expect("a TCP server");
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || {
        server.serve_forever().expect("serve_forever");
        server.server_close();
    });
    let mut wrong = Vec::new();
    for case in CASES {
        let mut s = TcpStream::connect(addr).expect("connect");
        // A safety net so a broken case fails instead of hanging; never reached when passing.
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(case.input).expect("send the input");
        s.shutdown(Shutdown::Write).expect("half-close");
        let mut out = Vec::new();
        let got = s.read_to_end(&mut out).map(|_| normalise(&out));
        if got.as_deref().ok() != Some(case.output) {
            wrong.push(format!("{}: {:?}", case.name, got.map(|o| String::from_utf8_lossy(&o).into_owned())));
        }
    }
    stop.shutdown().expect("shutdown");
    t.join().expect("server thread");
    wrong
}

#[test]
fn the_table_over_sockets_sequential() {
    assert_eq!(over_sockets(Sequential), Vec::<String>::new());
}

#[test]
fn the_table_over_sockets_threading() {
    assert_eq!(over_sockets(Threading::new()), Vec::<String>::new());
}

#[test]
fn the_table_over_sockets_pool() {
    assert_eq!(over_sockets(Pool::new(2)), Vec::<String>::new());
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// A schedule that replays `sizes` (and `interleave`) cyclically.
fn schedule(sizes: &[usize], interleave: &[bool]) -> impl FnMut(Step) -> usize {
    let (sizes, interleave) = (sizes.to_vec(), interleave.to_vec());
    let (mut i, mut j) = (0, 0);
    move |step| match step {
        Step::ReadWhileWriting => {
            j += 1;
            usize::from(interleave[j % interleave.len()])
        }
        _ => {
            i += 1;
            sizes[i % sizes.len()]
        }
    }
}

fn closing(w: Want) -> bool {
    matches!(w, Want::Drain | Want::Close)
}

/// Inserted bytes that matter to HTTP framing.
const NASTY: &[u8] = b"\r\n: \0;0\xff";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_case_gives_its_bytes_in_any_order_of_readiness(
        case in 0..CASES.len(),
        sizes in prop::collection::vec(1usize..64, 1..16),
        interleave in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        let case = CASES[case];
        let (out, end) = drive(&handler(), case.input, false, schedule(&sizes, &interleave));
        prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(case.output), "{}", case.name);
        prop_assert_eq!(closing(end), closing(case.end), "{}: {:?}", case.name, end);
    }

    #[test]
    fn mutated_inputs_give_the_same_bytes_split_or_whole(
        case in 0..CASES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<prop::sample::Index>()), 1..4),
        cut in any::<prop::sample::Index>(),
        sizes in prop::collection::vec(1usize..32, 1..16),
        interleave in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        let mut input = CASES[case].input.to_vec();
        for (at, op, byte) in edits {
            if input.is_empty() {
                break;
            }
            let at = at.index(input.len());
            let byte = NASTY[byte.index(NASTY.len())];
            match op {
                0 => input[at] = byte,
                1 => input.insert(at, byte),
                _ => { input.remove(at); }
            }
        }
        let keep = cut.index(input.len() + 1);
        input.truncate(keep.max(input.len() / 2));
        let h = handler();
        let whole = drive(&h, &input, false, |_| usize::MAX);
        let split = drive(&h, &input, false, schedule(&sizes, &interleave));
        prop_assert_eq!(String::from_utf8_lossy(&split.0), String::from_utf8_lossy(&whole.0));
        prop_assert_eq!(closing(split.1), closing(whole.1));
        // And the client closing its side always ends the connection, with the same bytes.
        let eof = drive(&h, &input, true, schedule(&sizes, &interleave));
        prop_assert_eq!(&eof.0, &whole.0);
        prop_assert_eq!(eof.1, Want::Close);
    }
}

// ---------------------------------------------------------------------------------------------
// The slow-client defences, through the blocking driver on real sockets.

use socketserver::http::{HttpHandler, Request, Response};
use std::time::Instant;

/// Serves `h` with `Sequential` on a thread; returns the address and a stopper.
fn serve(h: HttpHandler<fn(&Request) -> Response>) -> (SocketAddr, impl FnOnce()) {
    let mut server = Server::bind("127.0.0.1:0", Sequential, h).expect("bind");
    let addr = server.local_addr().as_inet().expect("a TCP server");
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || {
        server.serve_forever().expect("serve_forever");
        server.server_close();
    });
    (addr, move || {
        stop.shutdown().expect("shutdown");
        t.join().expect("server thread");
    })
}

/// 8 MiB for `/big`, more than any socket buffers take at once; `hello` otherwise.
fn big(req: &Request) -> Response {
    match req.path() {
        "/big" => Response::new(200).with_body(vec![b'x'; 8 << 20]),
        _ => Response::text(200, "hello"),
    }
}

fn quiet(h: HttpHandler<fn(&Request) -> Response>) -> HttpHandler<fn(&Request) -> Response> {
    h.log_requests(false).trace_headers(false)
}

/// Sends `bytes`, then reads until the server closes; returns what came and when it ended.
fn send_and_wait(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let t0 = Instant::now();
    s.write_all(bytes).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (out, t0.elapsed())
}

#[test]
fn a_head_that_does_not_finish_within_header_timeout_gets_408() {
    let h =
        quiet(HttpHandler::new(big as fn(&Request) -> Response)).header_timeout(Duration::from_millis(300));
    let (addr, stop) = serve(h);
    let (out, took) = send_and_wait(addr, b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaa");
    assert!(out.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&out));
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(10), "{took:?}");
    stop();
}

#[test]
fn a_body_below_the_minimum_rate_gets_408_before_the_read_timeout() {
    let h = quiet(HttpHandler::new(big as fn(&Request) -> Response))
        .min_body_rate(1000, Duration::from_millis(300))
        .read_timeout(Duration::from_secs(30));
    let (addr, stop) = serve(h);
    let (out, took) = send_and_wait(addr, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc");
    assert!(out.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&out));
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(10), "{took:?}");
    stop();
}

#[test]
fn a_reader_below_the_minimum_send_rate_is_let_go_before_the_write_timeout() {
    let h = quiet(HttpHandler::new(big as fn(&Request) -> Response))
        .write_timeout(Duration::from_secs(30))
        .min_send_rate(1 << 20, Duration::from_millis(300));
    let (addr, stop) = serve(h);
    // A small, fixed receive buffer (which turns off autotuning) and a client that reads
    // nothing until the server has given up: the server is cut loose by the rate alone.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    sock.connect(&addr.into()).expect("connect");
    let mut s: TcpStream = sock.into();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    // The server is Sequential: a probe is answered only once it let go of the slow reader.
    let t0 = Instant::now();
    let (probe, _) = send_and_wait(addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let took = t0.elapsed();
    assert!(probe.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&probe));
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(10), "{took:?}");
    // What the slow reader gets: part of the response, then the end of the connection.
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.starts_with(b"HTTP/1.1 200 ") && got.len() < (8 << 20), "got {} bytes", got.len());
    stop();
}
