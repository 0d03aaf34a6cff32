//! What a load run is asked to do: [`LoadConfig`], its defaults and its caps.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::fire::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
use crate::client::url::Url;

/// Connections when none are asked for: 32, a common `wrk -c` choice.
pub const DEFAULT_CONNECTIONS: usize = 32;
/// Event-loop threads when none are asked for: 2, `wrk`'s usual `-t2`.
pub const DEFAULT_THREADS: usize = 2;
/// How long a run lasts when neither a duration nor a request count is given: 10 s.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Most connections a run opens (and threads, with [`Threads::PerConnection`]): 10,000.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Longest a run lasts, whatever was asked: one hour (also the limit of a count-only run).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most requests a run sends: 10,000,000.
pub const MAX_REQUESTS: u64 = 10_000_000;
/// How often the progress callback is called: every second.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// How a run spreads its connections over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// This many event-loop threads (`-t N`, [`DEFAULT_THREADS`]), each multiplexing its share
    /// of the connections over non-blocking sockets with `epoll`, as `wrk -t N` does. More
    /// threads than connections are not started.
    EventLoops(usize),
    /// One thread per connection doing blocking I/O (`--thread-per-connection`), like
    /// `wrk -t C -c C`: the simplest client, and the model socketserver's servers teach.
    PerConnection,
}

/// What to load, how hard and for how long. Build it with [`LoadConfig::new`] and struct update
/// syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    /// Where to send the requests (`GET`).
    pub url: Url,
    /// Connections ([`DEFAULT_CONNECTIONS`]; at most [`MAX_CONNECTIONS`]).
    pub connections: usize,
    /// Threads that drive them ([`Threads::EventLoops`] of [`DEFAULT_THREADS`]).
    pub threads: Threads,
    /// Stop after this long (capped at [`MAX_DURATION`]).
    pub duration: Option<Duration>,
    /// Stop after this many requests (capped at [`MAX_REQUESTS`]). A request that failed
    /// counts: `requests` is what was attempted.
    pub requests: Option<u64>,
    /// `true` (the default): many requests per connection, reconnecting when the server closes.
    /// `false`: one request per connection, sent with `Connection: close`.
    pub keep_alive: bool,
    /// Time allowed for each TCP connect ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Time allowed for each request, from its write to the end of its response
    /// ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// Connect to the Unix stream socket at this path instead of the URL's host and port
    /// (`--unix PATH`); the URL still gives the path and the `Host` header. `None` by default.
    pub unix: Option<PathBuf>,
}

impl LoadConfig {
    /// [`DEFAULT_CONNECTIONS`] keep-alive connections to `url` for [`DEFAULT_DURATION`].
    pub fn new(url: Url) -> LoadConfig {
        LoadConfig {
            url,
            connections: DEFAULT_CONNECTIONS,
            threads: Threads::EventLoops(DEFAULT_THREADS),
            duration: None,
            requests: None,
            keep_alive: true,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            unix: None,
        }
    }

    /// How long the run may last: the duration asked for, or [`DEFAULT_DURATION`] if neither a
    /// duration nor a count was given, or [`MAX_DURATION`] for a count-only run; never more
    /// than [`MAX_DURATION`].
    pub fn time_limit(&self) -> Duration {
        match (self.duration, self.requests) {
            (Some(d), _) => d.min(MAX_DURATION),
            (None, None) => DEFAULT_DURATION,
            (None, Some(_)) => MAX_DURATION,
        }
    }

    /// How many requests the run may send, if limited: at most [`MAX_REQUESTS`].
    pub fn request_limit(&self) -> Option<u64> {
        self.requests.map(|n| n.min(MAX_REQUESTS))
    }

    /// Connections actually opened at once: between 1 and [`MAX_CONNECTIONS`], and no more than
    /// the request limit (a connection with nothing to send would only idle).
    pub fn connection_count(&self) -> usize {
        let c = self.connections.clamp(1, MAX_CONNECTIONS);
        match self.request_limit() {
            Some(n) => c.min(usize::try_from(n.max(1)).unwrap_or(usize::MAX)),
            None => c,
        }
    }

    /// Threads actually started: one per connection, or the event loops asked for, between 1
    /// and [`connection_count`](LoadConfig::connection_count).
    pub fn thread_count(&self) -> usize {
        let c = self.connection_count();
        match self.threads {
            Threads::EventLoops(t) => t.clamp(1, c),
            Threads::PerConnection => c,
        }
    }

    /// The limits in words: `10 s`, `500 requests`, `500 requests or 10 s`.
    pub(super) fn limits_text(&self) -> String {
        let secs = format!("{} s", trim_float(self.time_limit().as_secs_f64()));
        match (self.duration, self.request_limit()) {
            (Some(_), Some(n)) => format!("{n} requests or {secs}, whichever comes first"),
            (None, Some(n)) => format!("{n} requests"),
            _ => secs,
        }
    }
}

/// `2`, `0.5`, `1.25`: seconds without trailing zeros.
fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://127.0.0.1:8000/hello").unwrap()
    }

    #[test]
    fn limits_and_caps() {
        let base = LoadConfig::new(url());
        assert_eq!(base.time_limit(), DEFAULT_DURATION);
        assert_eq!((base.request_limit(), base.connection_count()), (None, DEFAULT_CONNECTIONS));
        assert_eq!(base.limits_text(), "10 s");
        let counted = LoadConfig { requests: Some(500), ..base.clone() };
        assert_eq!((counted.time_limit(), counted.limits_text().as_str()), (MAX_DURATION, "500 requests"));
        let both =
            LoadConfig { requests: Some(5), duration: Some(Duration::from_millis(1500)), ..base.clone() };
        assert_eq!(both.limits_text(), "5 requests or 1.5 s, whichever comes first");
        assert_eq!(both.connection_count(), 5, "no more connections than requests");
        let huge = LoadConfig {
            connections: usize::MAX,
            requests: Some(u64::MAX),
            duration: Some(Duration::from_secs(1 << 40)),
            ..base.clone()
        };
        assert_eq!(huge.time_limit(), MAX_DURATION);
        assert_eq!(huge.request_limit(), Some(MAX_REQUESTS));
        assert_eq!(huge.connection_count(), MAX_CONNECTIONS);
        assert_eq!(LoadConfig { connections: 0, ..base }.connection_count(), 1);
    }
}
