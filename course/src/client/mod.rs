//! The bundled HTTP client: fire `n` requests at the same instant and *see* how the server
//! handled them.
//!
//! # The experiment
//!
//! Start a server, then fire at it:
//!
//! ```text
//! cargo run --example threaded_server
//! cargo run --example client -- -n 5 http://127.0.0.1:8000/delay?s=1
//! ```
//!
//! The client opens five connections, one thread each. Every thread connects and then waits at
//! a barrier; when the fifth arrives, all five send `GET /delay?s=1` together. Each handler
//! sleeps one second. What comes back tells the story:
//!
//! * a **sequential** server handles them one after another: the last answer comes after five
//!   seconds, and the timeline is a staircase under a single thread;
//! * a **threaded** (or pool) server handles them side by side: everything is back after about
//!   one second, and the timeline shows parallel bars under five thread ids of one process;
//! * a **forking** (or prefork) server does the same with five process ids.
//!
//! The server says who handled a request and when in response headers (`X-Pid`, `X-Tid`,
//! `X-Start`, `X-Elapsed`); the client uses them when present. Against any other HTTP/1.x
//! server (Python's `http.server`, Flask) it judges from what it sees on its own clock: every
//! request asks for the same URL, so answers that come back a whole request's time apart are
//! a staircase (one at a time), and answers that come back together overlapped on the
//! server. Too quick to tell apart, it says "cannot tell" rather than guess; the report's
//! `based on` line says which it did. Failed requests are in the table, the timeline and the
//! wall time, with when and how they failed; a connect that a full backlog delays is waited
//! for (the kernel retries the SYN after 1, 3, 7 s ...) up to `--timeout`.
//!
//! # Example: in code
//!
//! ```no_run
//! use course::client::{FireConfig, Url, fire};
//!
//! let url = Url::parse("http://127.0.0.1:8000/delay?s=1")?;
//! let report = fire(&FireConfig::new(5, url));
//! println!("{report}");
//! // Against the threaded server: "concurrently, by 5 threads of 1 process".
//! println!("{}", report.verdict());
//! # Ok::<(), course::client::UrlError>(())
//! ```
//!
//! # Where things are
//!
//! * [`url`]: the `http://host:port/path` parser;
//! * [`connect`]: TCP or a Unix stream socket (`--unix PATH`): the address, the connect, and
//!   what a failed connect to a path means;
//! * [`echo`]: the echo mode, the same volley of lines at a TCP, UDP or Unix echo server;
//! * [`fire`](mod@fire): the threads, the barrier and the HTTP exchange;
//! * [`load`](mod@load): load mode, many requests on `c` connections, throughput and latency;
//! * [`histogram`]: the latency histogram load mode records into;
//! * [`fire_report`]: the fire report: in-flight counting, verdict, the table and summary;
//! * [`timeline`]: the ASCII bars;
//! * [`svg`]: the same timeline, and load mode's charts, as SVG pictures (`--svg FILE`);
//! * [`cli`]: the example's command line.

pub mod cli;
pub mod connect;
pub mod echo;
pub mod fire;
pub mod fire_report;
pub mod histogram;
pub mod load;
pub mod svg;
#[cfg(test)]
pub(crate) mod testing;
pub mod timeline;
pub mod url;

pub use echo::{DEFAULT_ECHO_TIMEOUT, EchoConfig, EchoTarget, fire_echo};
pub use fire::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, ECHOED, ErrorKind, FireConfig, Outcome, Reply, RequestError,
    fire,
};
pub use fire_report::FireReport;
pub use histogram::Histogram;
pub use load::{LoadConfig, LoadReport, Progress, Threads, Throughput, load, load_with_progress};
pub use url::{Url, UrlError};
