//! hyper on tokio: what a Rust user would pick instead of writing an event loop (or using
//! socketserver's). Not a model's limit like the other binaries here, a peer: tokio's
//! multi-threaded runtime with `--threads N` workers (each an epoll loop that also steals
//! tasks from the others), one task per connection, hyper's HTTP/1.1 (keep-alive, pipelining,
//! its own validation and `Date`).
//!
//!     cargo run --release --features hyper --bin hyper_hello -- --port 0 --threads 2
//!
//! `/hello` answers with the headers socketserver sends (`Content-Type`, `Server`, the trace
//! headers; hyper writes `Date` and `Content-Length` itself, lower-cased names are hyper's
//! choice on the wire), so the responses are about the same size. Anything else is a 404.
//! No graceful shutdown (SIGTERM kills it), no timeouts: see `lib.rs`.

use std::convert::Infallible;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use socketserver_minimal::{SERVER, args, bind, offset, tid};

fn main() {
    let a = args("--threads", 1);
    let listener = bind(a.port);
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("listener: {e}");
        std::process::exit(1)
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(a.count).enable_io().build();
    let rt = rt.unwrap_or_else(|e| {
        eprintln!("tokio runtime: {e}");
        std::process::exit(1)
    });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| {
            eprintln!("listener: {e}");
            std::process::exit(1)
        });
        loop {
            // ECONNABORTED, EMFILE: next (hyper's own examples do the same).
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(hello)).await;
            });
        }
    })
}

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let (status, body): (u16, &'static [u8]) =
        if req.uri().path() == "/hello" { (200, b"Hello, world!\n") } else { (404, b"not found\n") };
    let response = Response::builder()
        .status(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Server", SERVER)
        .header("X-Pid", std::process::id())
        .header("X-Tid", tid())
        .header("X-Start", format!("{:.6}", offset(started)))
        .header("X-Elapsed", format!("{:.6}", started.elapsed().as_secs_f64()))
        .body(Full::new(Bytes::from_static(body)));
    // The builder fails only on an invalid header, and these are all valid.
    Ok(response.unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"")))))
}
