//! Load mode: keep `c` connections busy for a while and measure throughput and latency.
//!
//! Where [`fire`](super::fire()) asks "how does the server handle n requests at once?", load
//! mode asks "how many requests a second does it answer, and how long does each take?", the
//! question `wrk` and `ab` answer. Each of `c` connections sends one `GET` after another
//! (HTTP/1.1 keep-alive), reading each response to its `Content-Length` before sending the
//! next: a *closed loop*, so there are never more than `c` requests in flight. With
//! [`LoadConfig::keep_alive`] off (`--close`) every request gets a fresh connection and says
//! `Connection: close`, which measures the server's accept path too.
//!
//! # Two threading models
//!
//! * **Event loops** ([`Threads::EventLoops`], `-t N`, the default with N = 2): `N` threads,
//!   each owning `c / N` of the connections (the first `c % N` threads one more), with
//!   non-blocking sockets and one `epoll` set per thread. This is `wrk -t N -c C`'s model, so
//!   the two can be compared on the same machine. How the loop works, and why it is
//!   edge-triggered, is in `course/src/client/load/run/event_loop.rs`.
//! * **A blocking thread per connection** ([`Threads::PerConnection`],
//!   `--thread-per-connection`): the simplest load generator there is, `read` and `write` in a
//!   loop, and the model socketserver's servers teach. It is `wrk -t C -c C`'s model. It is kept
//!   because it costs one `match` to keep and because comparing the two is itself a lesson:
//!   same requests, same server, different numbers (next section).
//!
//! Both keep the same counters and the same per-thread [`Histogram`](crate::client::Histogram), classify errors the same
//! way, stop at exactly `-n` requests (a shared atomic counter is claimed before each request),
//! stop at the deadline, and reconnect the same way (see [`LoadConfig::keep_alive`]).
//!
//! # Why the threading model changes the numbers
//!
//! On one machine the client and the server share the CPUs, so requests/s measures the *pair*,
//! not the server alone: every microsecond the client spends is one the server does not get.
//! The load generator's threading model moves the result in three ways:
//!
//! * **CPU share.** The scheduler shares a core between *runnable threads*, not processes. 32
//!   client threads next to a server with a handful get most of a contended core; 2 client
//!   threads get about what 2 server threads get. So with cores shared, the thread-per-connection
//!   model starves the server less or more depending on how many threads the server has, and
//!   `-t` is as much a knob on the *server's* CPU share as on the client's.
//! * **Context switches.** A blocking thread per connection sleeps in `read` after every
//!   request and is woken when its response arrives: one context switch per request, plus time
//!   waiting for its turn on the CPU, which is counted in its latency. An event loop is woken
//!   once and then handles every connection that became ready meanwhile, so under load it
//!   switches far less and spends its CPU on requests.
//! * **System calls per request.** Both models here make one `write` and one `read` per request
//!   (plus, for event loops, a share of one `epoll_wait`). `wrk` makes two more: it switches
//!   write interest on and off with `epoll_ctl` around every request. With cores shared, a
//!   cheaper client leaves more CPU to the server and so reports more requests/s.
//!
//! Coordinated omission is **not** corrected, in either model, as `wrk` does not (`wrk2 -R`
//! does): a closed loop sends the next request only after the previous response, so when the
//! server stalls the client stops sending, and the requests that *would* have been sent during
//! the stall and waited are never measured. Latencies here are service times under a closed
//! loop, not what users arriving at a fixed rate would see.
//!
//! # Bounded, always
//!
//! A run stops at its duration or its request count, whichever comes first; with neither it
//! runs [`DEFAULT_DURATION`]. Whatever the configuration says, a run is capped at
//! [`MAX_DURATION`], [`MAX_REQUESTS`] and [`MAX_CONNECTIONS`]. A request still in flight when
//! the time is up is abandoned and counted as `unfinished`, not as an error (as `wrk` does).
//!
//! # Measuring without disturbing
//!
//! The client competes with the server for the same CPUs (on loopback), so every cycle it spends
//! is one the server does not get. The hot loop therefore does as little as it can:
//!
//! * the request bytes are built once and sent with one `write` per request;
//! * each blocking connection, or each event-loop thread, reads into one buffer, allocated
//!   once; the head is parsed in place with httparse and the body is skipped by
//!   `Content-Length`, never copied anywhere (an event loop copies out only a head split
//!   across reads);
//! * an event loop registers each socket with `epoll` once and never changes it, so a request
//!   costs no `epoll_ctl`;
//! * latencies go into a per-thread [`Histogram`](crate::client::Histogram) (a fixed array of counters), merged once at
//!   the end; the only lock taken per request is the thread's own, which nobody else touches
//!   except the once-a-second progress reader;
//! * `TCP_NODELAY` is on, so a request is never held back by Nagle's algorithm.
//!
//! A request's latency runs from just before its `write` to the moment the last body byte has
//! been read. Connecting is not part of it (in `--close` mode, see `connections opened`).
//!
//! # Comparing with `wrk`: what a number on loopback means
//!
//! Compare like with like: same machine, same connection count, same thread count
//! (`client --load -t 2 -c 32` against `wrk -t2 -c32`, or `--thread-per-connection` against
//! `wrk -t32 -c32`), runs alternated, several of each, because other work on the machine moves
//! every number. Measured on a shared 2-core box, `/hello`, `-c 32`, `client --load -t 2`
//! against `wrk -t2 --latency` (and `--close` against `-H 'Connection: close'`):
//!
//! | server, mode (9 alternated pairs of 5 s) | req/s, this / `wrk` | p50, this / `wrk` |
//! |------------------------------------------|---------------------|-------------------|
//! | `threaded_server`, keep-alive            | 1.12 (0.88 - 1.27)  | 1.20 (0.64 - 1.46) |
//! | `threaded_server`, close                 | 1.03 (0.95 - 1.27)  | 0.91 (0.84 - 0.97) |
//! | `pool_server --threads 4`, keep-alive    | 1.06 (0.92 - 1.16)  | 1.02 (0.95 - 1.12) |
//! | `pool_server --threads 4`, close         | 1.25 (1.02 - 2.58)  | 0.76 (0.50 - 0.85) |
//!
//! (medians, ranges in brackets; the machine was shared with other builds, load average 15 to
//! 40, so single runs move by 20 % and more.) What is left of the gap is this client being
//! cheaper, not a different model: per keep-alive request it makes 2 system calls where `wrk`
//! makes about 4, and used about 5.4 us of CPU where `wrk` used 6.7; per `--close` request
//! (socket, setsockopt, connect, epoll_ctl, getsockopt, write, two reads, close) about 9 where
//! `wrk` makes about 14 (it adds two `fcntl` and six `epoll_ctl`). p50 against
//! `threaded_server` is bimodal (next paragraph) and moves either way between runs.
//!
//! `--close` against the pool server is the one case outside 10 %, and it is not explained by
//! system calls alone: CPU per request was about the same for both (17 us), but this client
//! kept its two threads busier (0.85 of a core against `wrk`'s 0.7), and `wrk`'s own rate
//! swung from 21,000 to 45,000 req/s between runs while this client's stayed near 50,000.
//! Where `wrk`'s threads spend the rest of the time was not pinned down.
//!
//! With a blocking thread per connection instead (3 pairs, `threaded_server`, keep-alive) this
//! client read 1.6 to 2.2 times `wrk -t2`'s requests/s: 32 threads' CPU share next to the server's, plus the cheaper
//! request. Pinned apart from the server (`taskset`), that model agrees with `wrk -t32 -c32`.
//!
//! The histogram often has **two humps** on a shared machine: one around 10-25 us (the server
//! thread ran at once, on the core the request was written from) and one around 150-300 us
//! (it waited its turn behind other runnable threads). When the two are about the same size
//! the median falls between them and moves a lot from run to run; the histogram shows why, a
//! single p50 cannot. Read p50 together with the mean (which Little's law ties to requests/s:
//! mean latency is about connections / throughput) and p90.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use course::client::{LoadConfig, Url, load};
//!
//! let url = Url::parse("http://127.0.0.1:8000/hello")?;
//! let cfg = LoadConfig { connections: 8, duration: Some(Duration::from_secs(2)), ..LoadConfig::new(url) };
//! let report = load(&cfg);
//! println!("{report}");
//! println!("{:.0} req/s, p99 {} ns", report.requests_per_sec(), report.latency.percentile(99.0));
//! # Ok::<(), course::client::UrlError>(())
//! ```
//!
//! # Where things are
//!
//! * `config.rs`: [`LoadConfig`], its defaults and caps, [`Threads`];
//! * `run.rs`: [`load`] itself, the blocking thread per connection and the tallies every thread
//!   counts into; `run/event_loop.rs`: the epoll event-loop threads, which share them;
//! * `render.rs`: [`LoadReport`] (what a run measured and how it is printed) and [`Progress`];
//! * `series.rs`: [`Throughput`], the responses per interval, for requests/s over time.

mod config;
mod render;
mod run;
mod series;

pub use config::{
    DEFAULT_CONNECTIONS, DEFAULT_DURATION, DEFAULT_THREADS, LoadConfig, MAX_CONNECTIONS, MAX_DURATION,
    MAX_REQUESTS, PROGRESS_INTERVAL, Threads,
};
pub use render::{LoadReport, Progress};
pub use run::{load, load_with_progress};
pub use series::{MAX_SAMPLES, SAMPLE_INTERVAL, Throughput};
