//! Micro-benchmarks of the HTTP layer: what one request costs in CPU, without the network.
//!
//!     cargo bench --bench http
//!
//! - `parse`: [`parse_request`] on a curl-like request (3 headers) and a browser-like one
//!   (10 headers), and the incremental [`RequestReader`] the connection loop really uses;
//! - `respond`: the example app's `/hello` service, and [`Response::write_wire`], the bytes the
//!   layer sends (status line, headers, `Date`, trace headers, body) -- then both together;
//! - `handler`: the whole [`HttpHandler`] on a real loopback connection, one request per round
//!   trip (dominated by the two system calls and the thread wake-ups on each side) and 64
//!   pipelined requests per write (closer to the layer's own cost per request).
//!
//! After criterion's report, a one-line-per-case summary prints nanoseconds per request.
//! The end-to-end numbers of whole servers are in docs/benchmarks.md (bench/run.sh).

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use socketserver::http::{HttpHandler, Limits, Parsed, Request, RequestReader, Response, parse_request};
use socketserver::{Connection, RequestHandler, ServerContext};

const CURL: &[u8] =
    b"GET /delay?s=0.5 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

const BROWSER: &[u8] = b"GET /hello?name=world&lang=en HTTP/1.1\r\n\
Host: 127.0.0.1:8000\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Cookie: session=0123456789abcdef; theme=dark\r\n\r\n";

const HELLO: &[u8] = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

fn parsed(buf: &[u8]) -> Request {
    match parse_request(buf, &Limits::default()) {
        Parsed::Complete { request, .. } => request,
        other => panic!("benchmark input does not parse: {other:?}"),
    }
}

/// A server-side `HttpHandler` on one end of a loopback connection, in its own thread; the
/// returned stream is the client end. The handler serves until the client closes.
fn loopback() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    let client = TcpStream::connect(addr).expect("connect");
    client.set_nodelay(true).expect("nodelay");
    let (server, peer) = listener.accept().expect("accept");
    std::thread::spawn(move || {
        // Criterion pauses between its phases, and other cases run before this one: an idle
        // timeout of an hour keeps the connection open for the whole run.
        let handler = HttpHandler::new(course::app::service)
            .log_requests(false)
            .idle_timeout(Duration::from_secs(3600));
        let ctx = ServerContext::standalone(addr).expect("server context");
        let mut conn = Connection::new(server, peer, ctx);
        let _ = handler.handle(&mut conn);
    });
    client
}

/// Sends `batch` (n requests for /hello) and reads until n responses have arrived (each ends
/// with the body `Hello, world!\n`).
fn round_trip(client: &mut TcpStream, batch: &[u8], n: usize, buf: &mut [u8]) {
    client.write_all(batch).expect("write");
    let mut seen = 0;
    let mut tail = Vec::new();
    while seen < n {
        let got = client.read(buf).expect("read");
        assert!(got > 0, "server closed the connection");
        tail.extend_from_slice(&buf[..got]);
        seen += tail.windows(14).filter(|w| *w == b"Hello, world!\n").count();
        // Keep the last 13 bytes: a body may straddle two reads.
        let keep = tail.len().saturating_sub(13);
        tail.drain(..keep);
    }
}

/// The cases, as (name, requests per iteration, the work). Shared by criterion and the summary.
type Case = (&'static str, u64, Box<dyn FnMut()>);

fn cases() -> Vec<Case> {
    let limits = Limits::default();
    let hello = parsed(HELLO);
    let response = Response::text(200, "Hello, world!\n");
    let mut out = Vec::with_capacity(512);
    let mut out2 = Vec::with_capacity(512);
    let mut reader = RequestReader::new(limits);

    // Connected on first use, so that a case list built and not run costs no threads.
    let mut one: Option<TcpStream> = None;
    let mut buf1 = vec![0u8; 64 * 1024];
    let mut pipe: Option<TcpStream> = None;
    let mut buf64 = vec![0u8; 64 * 1024];
    let batch64: Vec<u8> = HELLO.repeat(64);

    vec![
        (
            "parse/curl_like",
            1,
            Box::new(move || {
                black_box(parse_request(black_box(CURL), &limits));
            }),
        ),
        (
            "parse/browser_like",
            1,
            Box::new(move || {
                black_box(parse_request(black_box(BROWSER), &limits));
            }),
        ),
        (
            "parse/reader_advance_reset",
            1,
            Box::new(move || {
                black_box(reader.advance(black_box(BROWSER)));
                reader.reset();
            }),
        ),
        (
            "respond/service_hello",
            1,
            Box::new(move || {
                black_box(course::app::service(black_box(&hello)).wait());
            }),
        ),
        (
            "respond/write_wire_hello",
            1,
            Box::new(move || {
                response.write_wire(&mut out);
                black_box(&out);
            }),
        ),
        (
            "respond/parse_service_write",
            1,
            Box::new(move || {
                let request = parsed(black_box(HELLO));
                let r = course::app::service(&request).wait();
                r.write_wire(&mut out2);
                black_box(&out2);
            }),
        ),
        (
            "handler/loopback_round_trip",
            1,
            Box::new(move || round_trip(one.get_or_insert_with(loopback), HELLO, 1, &mut buf1)),
        ),
        (
            "handler/loopback_pipelined_64",
            64,
            Box::new(move || round_trip(pipe.get_or_insert_with(loopback), &batch64, 64, &mut buf64)),
        ),
    ]
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, n, mut work) in cases() {
        let (group, case) = name.split_once('/').unwrap_or(("http", name));
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(n));
        g.bench_function(case, |b| b.iter(&mut work));
        g.finish();
    }
    c.final_summary();

    // Criterion reports time per iteration; this is the number the docs quote, per request.
    // `cargo test` runs benches in test mode (one iteration each), where timing is pointless.
    if std::env::args().any(|a| a == "--bench") {
        println!("\nns per request (simple mean over ~0.5 s after criterion's runs):");
        for (name, n, mut work) in cases() {
            let start = Instant::now();
            let mut iters = 0u64;
            while start.elapsed() < Duration::from_millis(500) {
                work();
                iters += 1;
            }
            let ns = start.elapsed().as_nanos() as f64 / (iters * n) as f64;
            println!("  {name:32} {ns:>10.1} ns");
        }
    }
}
