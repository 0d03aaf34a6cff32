//! The echo example's command line, first line and log line (`examples/echo_server.rs`).
//!
//! Python's socketserver documentation teaches with one server: it answers what the client
//! sent, upper-cased, over TCP and again over UDP. `echo_server` is that server on all four of
//! Python's transports (TCP, UDP, Unix stream, Unix datagram) with each of its three server
//! kinds (sequential as `TCPServer`, `Threading*`, `Forking*`). The pieces the example and the
//! tests share live here: [`EchoArgs`] (the command line), [`banner`] and [`parse_banner`] (the
//! first line, which says where the server listens) and [`log_line`] (one line per request).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use socketserver::Addr;
use socketserver::trace::{self, Who};

/// Python's documentation example listens on `localhost:9999`; so does this one by default.
pub const DEFAULT_PORT: u16 = 9999;

/// Python's `DatagramRequestHandler` reads at most `max_packet_size = 8192` bytes of a datagram;
/// the stream transports use the same bound for one line, so that no client can make the
/// server buffer without limit.
pub const MAX_LINE: usize = 8192;

/// Bytes of a request shown in its log line; longer ones are cut there (and say how long they
/// were), so that a 8 KiB datagram does not make an 8 KiB log line.
pub const SHOWN_BYTES: usize = 64;

/// Which socket the echo server listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `--tcp` (the default): Python's `TCPServer`.
    Tcp,
    /// `--udp`: Python's `UDPServer`.
    Udp,
    /// `--unix PATH`: Python's `UnixStreamServer`.
    Unix(PathBuf),
    /// `--unix-dgram PATH`: Python's `UnixDatagramServer`.
    UnixDgram(PathBuf),
}

impl Transport {
    /// The word the banner uses: `tcp`, `udp`, `unix`, `unix-dgram`.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Unix(_) => "unix",
            Transport::UnixDgram(_) => "unix-dgram",
        }
    }

    /// Whether every request is a datagram (UDP, Unix datagram) rather than a line on a
    /// connection.
    pub fn is_datagram(&self) -> bool {
        matches!(self, Transport::Udp | Transport::UnixDgram(_))
    }
}

/// How the echo server runs its requests: Python's three server kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The default: one request at a time on the serving thread (`TCPServer`, `UDPServer`).
    Sequential,
    /// `--threading`: a thread per connection or datagram (`ThreadingMixIn`).
    Threading,
    /// `--forking`: a process per connection or datagram (`ForkingMixIn`).
    Forking,
}

/// The echo server's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoArgs {
    /// `--tcp`, `--udp`, `--unix PATH` or `--unix-dgram PATH` (default TCP).
    pub transport: Transport,
    /// `--threading`, `--forking` (default sequential).
    pub strategy: Strategy,
    /// `--host` (default `127.0.0.1`; TCP and UDP only).
    pub host: String,
    /// `--port` (default [`DEFAULT_PORT`]; 0 lets the kernel choose).
    pub port: u16,
    /// `--quiet`: no log line per request.
    pub quiet: bool,
}

impl Default for EchoArgs {
    fn default() -> Self {
        EchoArgs {
            transport: Transport::Tcp,
            strategy: Strategy::Sequential,
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            quiet: false,
        }
    }
}

/// The echo server's `--help`.
pub const USAGE: &str = "\
usage: cargo run --example echo_server -- [options]

Answers every line (stream transports) or datagram (datagram transports) upper-cased,
as the example in Python's socketserver documentation does.

transport (one of):
  --tcp               TCP on --host/--port (the default)
  --udp               UDP on --host/--port
  --unix PATH         a Unix stream socket at PATH (owner-only, removed on exit)
  --unix-dgram PATH   a Unix datagram socket at PATH (owner-only, removed on exit)
strategy (default: sequential, one request at a time, as Python's TCPServer):
  --threading         a thread per connection or datagram
  --forking           a process per connection or datagram
  --host HOST         address to listen on (default 127.0.0.1)
  --port PORT         port (default 9999; 0 picks a free one)
  --quiet             no log line per request
  -h, --help          this text
";

impl EchoArgs {
    /// Parses the arguments after the program name; `Ok(None)` for `--help`.
    ///
    /// # Errors
    /// A message naming the bad argument: an unknown one, a missing value, two transports or
    /// two strategies, `--host`/`--port` with a Unix transport.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<EchoArgs>, String> {
        use lexopt::Arg::{Long, Short, Value};
        let mut out = EchoArgs::default();
        let (mut transport, mut strategy, mut inet_flag) = (None::<String>, None::<String>, None::<String>);
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
            let name = match arg {
                Short(c) => format!("-{c}"),
                Long(l) => format!("--{l}"),
                Value(v) => return Err(format!("unknown argument {v:?}")),
            };
            let mut value = || match parser.value() {
                Ok(v) => Ok(v.to_string_lossy().into_owned()),
                Err(_) => Err(format!("{name} needs a value")),
            };
            let new_transport = match name.as_str() {
                "-h" | "--help" => return Ok(None),
                "--tcp" => Some(Transport::Tcp),
                "--udp" => Some(Transport::Udp),
                "--unix" => Some(Transport::Unix(value()?.into())),
                "--unix-dgram" => Some(Transport::UnixDgram(value()?.into())),
                "--threading" | "--forking" => {
                    if let Some(before) = strategy.replace(name.clone()) {
                        return Err(format!("{before} and {name}: choose one strategy"));
                    }
                    out.strategy =
                        if name == "--threading" { Strategy::Threading } else { Strategy::Forking };
                    None
                }
                "--host" => {
                    out.host = value()?;
                    inet_flag = Some(name.clone());
                    None
                }
                "--port" | "-p" => {
                    let v = value()?;
                    out.port = v.parse().map_err(|_| format!("--port {v}: not a port number"))?;
                    inet_flag = Some("--port".into());
                    None
                }
                "--quiet" | "-q" => {
                    out.quiet = true;
                    None
                }
                _ => return Err(format!("unknown argument {name:?}")),
            };
            if let Some(t) = new_transport {
                if let Some(before) = transport.replace(name.clone()) {
                    return Err(format!("{before} and {name}: choose one transport"));
                }
                out.transport = t;
            }
        }
        if let (Some(flag), Transport::Unix(_) | Transport::UnixDgram(_)) = (&inet_flag, &out.transport) {
            // Refused rather than ignored: someone who typed --port expects it to matter.
            return Err(format!("{flag} has no meaning on a Unix socket"));
        }
        Ok(Some(out))
    }
}

/// The first line the echo server prints, in the HTTP servers' shape:
/// `Serving ECHO on 127.0.0.1 port 9999 (tcp) ...` or `Serving ECHO on echo.sock (unix) ...`.
pub fn banner(transport: &Transport, addr: &Addr) -> String {
    let name = transport.name();
    match addr {
        Addr::Inet(a) => format!("Serving ECHO on {} port {} ({name}) ...", a.ip(), a.port()),
        other => {
            let path = other.as_path().map(|p| p.display().to_string()).unwrap_or_else(|| other.to_string());
            format!("Serving ECHO on {path} ({name}) ...")
        }
    }
}

/// Where a [`banner`] says the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listening {
    /// TCP or UDP (`datagram` says which) at this address.
    Inet {
        /// The address and port.
        addr: SocketAddr,
        /// UDP rather than TCP.
        datagram: bool,
    },
    /// A Unix stream or datagram socket at this path.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// A datagram socket rather than a stream one.
        datagram: bool,
    },
}

/// Reads a [`banner`] line back (the tests use it to learn a `--port 0` server's port).
pub fn parse_banner(line: &str) -> Option<Listening> {
    let rest = line.trim_end().strip_prefix("Serving ECHO on ")?.strip_suffix(" ...")?;
    let (place, kind) = rest.rsplit_once(" (")?;
    let kind = kind.strip_suffix(')')?;
    match kind {
        "tcp" | "udp" => {
            let (ip, port) = place.split_once(" port ")?;
            let ip: std::net::IpAddr = ip.parse().ok()?;
            Some(Listening::Inet { addr: SocketAddr::new(ip, port.parse().ok()?), datagram: kind == "udp" })
        }
        "unix" | "unix-dgram" => Some(Listening::Unix { path: place.into(), datagram: kind == "unix-dgram" }),
        _ => None,
    }
}

/// A request as its log line shows it: quoted and escaped (a client's bytes never break the
/// log into two lines), the first [`SHOWN_BYTES`] only, with the length if it was longer.
pub struct Shown<'a>(pub &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = &self.0[..self.0.len().min(SHOWN_BYTES)];
        write!(f, "{:?}", String::from_utf8_lossy(cut))?;
        if cut.len() < self.0.len() { write!(f, "... ({} bytes)", self.0.len()) } else { Ok(()) }
    }
}

/// One request's log line, in the HTTP servers' shape (`socketserver::http`'s request line):
/// who served it, the peer, what it sent, a note (such as `truncated`), when it started (seconds
/// since the server started) and how long it took:
/// `pid 4242 tid 4250 127.0.0.1:53712 "hello world" +1.204s 0.000s`.
pub fn log_line(
    who: Who,
    peer: &Addr,
    request: &[u8],
    note: Option<&str>,
    started: Instant,
    took: Duration,
) -> String {
    let note = note.map(|n| format!(" {n}")).unwrap_or_default();
    format!(
        "{who} {peer} {}{note} +{:.3}s {:.3}s",
        Shown(request),
        trace::offset(started),
        took.as_secs_f64()
    )
}

/// Python's answer: the request upper-cased (ASCII letters only, byte for byte, so a reply is
/// exactly as long as its request and any bytes pass through).
pub fn answer(request: &[u8]) -> Vec<u8> {
    request.to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Option<EchoArgs>, String> {
        EchoArgs::parse(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments_choose_one_transport_and_one_strategy() {
        assert_eq!(args(&[]).unwrap().unwrap(), EchoArgs::default());
        let a = args(&["--udp", "--forking", "--port", "0", "-q"]).unwrap().unwrap();
        assert_eq!((a.transport, a.strategy, a.port, a.quiet), (Transport::Udp, Strategy::Forking, 0, true));
        let u = args(&["--unix-dgram=e.sock", "--threading"]).unwrap().unwrap();
        assert_eq!(u.transport, Transport::UnixDgram("e.sock".into()));
        assert_eq!(args(&["--help"]), Ok(None));
        for bad in [
            &["--udp", "--tcp"][..],
            &["--threading", "--forking"],
            &["--unix"],
            &["--unix", "a.sock", "--port", "1"],
            &["--port", "70000"],
            &["--pool"],
            &["extra"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} was accepted");
        }
        for flag in
            ["--tcp", "--udp", "--unix", "--unix-dgram", "--threading", "--forking", "--host", "--port"]
        {
            assert!(USAGE.contains(flag), "{flag} missing from --help");
        }
    }

    #[test]
    fn banners_round_trip() {
        let a: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        assert_eq!(banner(&Transport::Tcp, &a.into()), "Serving ECHO on 127.0.0.1 port 9999 (tcp) ...");
        assert_eq!(
            parse_banner(&banner(&Transport::Udp, &a.into())),
            Some(Listening::Inet { addr: a, datagram: true })
        );
        let v6: SocketAddr = "[::1]:7".parse().unwrap();
        assert_eq!(
            parse_banner(&banner(&Transport::Tcp, &v6.into())),
            Some(Listening::Inet { addr: v6, datagram: false })
        );
        let t = Transport::UnixDgram("echo.sock".into());
        let line = banner(&t, &Addr::Unix("echo.sock".into()));
        assert_eq!(line, "Serving ECHO on echo.sock (unix-dgram) ...");
        assert_eq!(parse_banner(&line), Some(Listening::Unix { path: "echo.sock".into(), datagram: true }));
        assert_eq!(
            parse_banner("Serving ECHO on /tmp/a b (x).sock (unix) ..."),
            Some(Listening::Unix { path: "/tmp/a b (x).sock".into(), datagram: false })
        );
        assert_eq!(parse_banner("Serving HTTP on 127.0.0.1 port 8000 (http://127.0.0.1:8000/) ..."), None);
    }

    #[test]
    fn a_request_is_shown_escaped_and_cut() {
        assert_eq!(Shown(b"hello").to_string(), "\"hello\"");
        assert_eq!(Shown(b"a\nb\"").to_string(), "\"a\\nb\\\"\"");
        assert_eq!(Shown(b"").to_string(), "\"\"");
        let long = vec![b'x'; 9000];
        assert_eq!(Shown(&long).to_string(), format!("{:?}... (9000 bytes)", "x".repeat(SHOWN_BYTES)));
        assert_eq!(answer(b"hello, W\xffrld\n"), b"HELLO, W\xffRLD\n");
    }
}
