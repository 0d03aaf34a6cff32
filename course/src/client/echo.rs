//! The echo mode: the same volley as fire mode, of lines instead of HTTP requests, at the
//! server of Python's socketserver documentation, which answers each line upper-cased.
//!
//! ```text
//! cargo run --example echo_server -- --udp --threading
//! cargo run --example client -- --echo udp -n 5 127.0.0.1:9999
//! ```
//!
//! Request `i` sends `hello i\n` and expects `HELLO i` back (trailing whitespace and a newline
//! or not: Python's example strips the line and sends no newline back). Each request has its
//! own socket, as each of Python's example clients does:
//!
//! * **TCP and Unix stream**: its own connection, started before the barrier exactly as fire
//!   mode does; the answer ends at a newline or when the server closes the connection.
//! * **UDP**: its own socket, bound to an ephemeral port and `connect`ed to the server, so the
//!   kernel delivers only the server's datagrams to it, and an ICMP "port unreachable" comes
//!   back as a refused `recv` instead of silence.
//! * **Unix datagram**: its own socket, *bound to a path*: a Unix datagram socket that is not
//!   bound has no address, and the server's `sendto(reply, client_address)` would have nowhere
//!   to send the answer. The path is made in [`EchoConfig::bind_dir`] and removed when the
//!   request is over, answered or not.
//!
//! A datagram has no connection to lose, so a lost one (UDP may drop the request or the
//! answer, and says nothing) is only noticed by waiting: an answer that has not come within
//! [`EchoConfig::timeout`] is a failed request, "no reply after N s".
//!
//! The answer carries no `X-Pid`/`X-Tid`/`X-Start`, so the report's verdict comes from the
//! spacing of the answers on the client's clock, as fire mode's does against a server that
//! sends no timing headers; the server's own log lines say which pid and tid answered.

use std::fs;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket};

use super::connect;
use super::fire::{
    ECHOED, ErrorKind, Gate, Job, Reply, RequestError, Timed, connect_then, read_some, volley,
};
use super::fire_report::FireReport;

/// Time allowed for each line when `--timeout` is not given: 5 s. An echo server answers at
/// once; waiting fire mode's 70 s for a datagram UDP has lost would only make the run long.
pub const DEFAULT_ECHO_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Python's documentation example (and `examples/echo_server.rs`) listens.
pub const DEFAULT_ECHO_ADDRESS: &str = "127.0.0.1:9999";

/// Longest answer read: Python's `max_packet_size` for a datagram server, and plenty for a
/// line. Anything longer is a bad answer, not a line cut short in silence.
pub const MAX_ANSWER: usize = 8192;

/// Which echo server, over which transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EchoTarget {
    /// TCP to `HOST:PORT`.
    Tcp(String),
    /// UDP to `HOST:PORT`.
    Udp(String),
    /// A Unix stream socket at this path.
    Unix(PathBuf),
    /// A Unix datagram socket at this path.
    UnixDgram(PathBuf),
}

impl EchoTarget {
    /// The transport's name as `--echo` spells it: `tcp`, `udp`, `unix`, `unix-dgram`.
    pub fn transport(&self) -> &'static str {
        match self {
            EchoTarget::Tcp(_) => "tcp",
            EchoTarget::Udp(_) => "udp",
            EchoTarget::Unix(_) => "unix",
            EchoTarget::UnixDgram(_) => "unix-dgram",
        }
    }
}

impl std::fmt::Display for EchoTarget {
    /// `127.0.0.1:9999 (udp echo)`, `/tmp/echo.sock (unix echo)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EchoTarget::Tcp(a) | EchoTarget::Udp(a) => write!(f, "{a} ({} echo)", self.transport()),
            EchoTarget::Unix(p) | EchoTarget::UnixDgram(p) => {
                write!(f, "{} ({} echo)", p.display(), self.transport())
            }
        }
    }
}

/// What to fire at and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoConfig {
    /// Number of lines, each on its own connection or datagram socket.
    pub n: usize,
    /// The server.
    pub target: EchoTarget,
    /// Time allowed for each line, from the release to its answer, the connect included
    /// ([`DEFAULT_ECHO_TIMEOUT`]).
    pub timeout: Duration,
    /// Where a Unix datagram client binds the path the server answers to
    /// ([`std::env::temp_dir`] by default).
    pub bind_dir: PathBuf,
}

impl EchoConfig {
    /// `n` lines at `target` with the default timeout.
    pub fn new(n: usize, target: EchoTarget) -> EchoConfig {
        EchoConfig { n, target, timeout: DEFAULT_ECHO_TIMEOUT, bind_dir: std::env::temp_dir() }
    }
}

/// The line request `index` sends: `hello 3\n`.
pub fn line(index: usize) -> String {
    format!("hello {index}\n")
}

/// The answer request `index` expects: `HELLO 3`.
pub fn expected(index: usize) -> String {
    line(index).trim().to_uppercase()
}

/// Fires `cfg.n` lines at the echo server at the same instant, checks every answer, and
/// reports as [`fire`](super::fire()) does. Never panics because of anything the server does.
pub fn fire_echo(cfg: &EchoConfig) -> FireReport {
    let label = cfg.target.to_string();
    let timeout = cfg.timeout;
    match &cfg.target {
        EchoTarget::Tcp(address) => {
            let addrs = Arc::new(resolve(address).map(|v| v.into_iter().map(SockAddr::from).collect()));
            volley(cfg.n, label, |index| {
                let addrs = Arc::clone(&addrs);
                Box::new(move |gate: &Gate| stream_line(&addrs, index, timeout, gate)) as Job
            })
        }
        EchoTarget::Unix(path) => {
            let addrs = Arc::new(SockAddr::unix(path).map(|a| vec![a]).map_err(|e| bad_path(path, &e)));
            volley(cfg.n, label, |index| {
                let addrs = Arc::clone(&addrs);
                Box::new(move |gate: &Gate| stream_line(&addrs, index, timeout, gate)) as Job
            })
        }
        EchoTarget::Udp(address) => {
            let addrs = Arc::new(resolve(address));
            volley(cfg.n, label, |index| {
                let addrs = Arc::clone(&addrs);
                Box::new(move |gate: &Gate| udp_line(&addrs, index, timeout, gate)) as Job
            })
        }
        EchoTarget::UnixDgram(path) => {
            // One number per volley, so two volleys (or two tests) never bind the same path.
            static VOLLEY: AtomicU64 = AtomicU64::new(0);
            let volley_id = VOLLEY.fetch_add(1, Ordering::Relaxed);
            let pid = std::process::id();
            volley(cfg.n, label, |index| {
                let server = path.clone();
                let own = cfg.bind_dir.join(format!("echo-client-{pid}-{volley_id}-{index}.sock"));
                Box::new(move |gate: &Gate| unix_dgram_line(&server, own, index, timeout, gate)) as Job
            })
        }
    }
}

/// `HOST:PORT` to addresses, once, before the volley.
fn resolve(address: &str) -> Result<Vec<SocketAddr>, RequestError> {
    let addrs: Vec<SocketAddr> =
        address.to_socket_addrs().map_err(|e| RequestError::io("resolve", &e))?.collect();
    if addrs.is_empty() {
        return Err(RequestError::new(ErrorKind::Other, format!("resolve: {address} has no address")));
    }
    Ok(addrs)
}

fn bad_path(path: &Path, e: &io::Error) -> RequestError {
    RequestError::new(ErrorKind::Other, format!("{}: {e}", path.display()))
}

/// The error for an answer that did not come in time; over UDP the line or its answer may
/// simply have been lost (a Unix datagram is not: the kernel hands it over or says why not).
fn no_reply(timeout: Duration, udp: bool) -> RequestError {
    let why = if udp { " (UDP may lose datagrams)" } else { "" };
    RequestError::new(ErrorKind::Timeout, format!("no reply after {:.1} s{why}", timeout.as_secs_f64()))
}

/// Whether `answer` is request `index`'s line upper-cased.
fn check(index: usize, answer: &[u8]) -> Result<Reply, RequestError> {
    let want = expected(index);
    let text = String::from_utf8_lossy(answer);
    if text.trim() == want {
        return Ok(Reply {
            status: ECHOED,
            pid: None,
            tid: None,
            server_start: None,
            server_elapsed: None,
            body_len: answer.len(),
        });
    }
    let shown: String = text.trim_end().chars().take(40).collect();
    Err(RequestError::new(ErrorKind::BadResponse, format!("answer {shown:?}, not {want:?}")))
}

/// One line over a stream connection (TCP or Unix), connected as fire mode connects.
fn stream_line(
    addrs: &Result<Vec<SockAddr>, RequestError>,
    index: usize,
    timeout: Duration,
    gate: &Gate,
) -> Timed {
    connect_then(addrs, timeout, gate, |stream, deadline| stream_exchange(stream, index, deadline, timeout))
}

/// Writes the line and reads the answer: up to a newline, or to the end of the stream.
fn stream_exchange(
    mut stream: Socket,
    index: usize,
    deadline: Option<Instant>,
    timeout: Duration,
) -> Result<Reply, RequestError> {
    let timed_out = || no_reply(timeout, false);
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        // A zero write timeout means "block forever" to the OS.
        if left.is_zero() {
            return Err(timed_out());
        }
        stream.set_write_timeout(Some(left)).map_err(|e| RequestError::io("send", &e))?;
    }
    stream.write_all(line(index).as_bytes()).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
        _ => RequestError::io("send", &e),
    })?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let got = read_some(&mut stream, &mut chunk, deadline, &timed_out)?;
        if got == 0 {
            if answer.is_empty() {
                return Err(RequestError::new(ErrorKind::Closed, "connection closed before any answer"));
            }
            break;
        }
        answer.extend_from_slice(&chunk[..got]);
        if answer.contains(&b'\n') {
            break;
        }
        if answer.len() > MAX_ANSWER {
            return Err(RequestError::new(
                ErrorKind::BadResponse,
                format!("no newline in the first {MAX_ANSWER} bytes of the answer"),
            ));
        }
    }
    check(index, &answer)
}

/// What a datagram client's socket can do, UDP or Unix.
trait Datagram {
    fn send(&self, buf: &[u8]) -> io::Result<usize>;
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

macro_rules! datagram {
    ($t:ty) => {
        impl Datagram for $t {
            fn send(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::send(self, buf)
            }
            fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$t>::recv(self, buf)
            }
            fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                <$t>::set_read_timeout(self, t)
            }
            fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                <$t>::set_write_timeout(self, t)
            }
        }
    };
}
datagram!(UdpSocket);
datagram!(UnixDatagram);

/// One line over UDP.
fn udp_line(
    addrs: &Result<Vec<SocketAddr>, RequestError>,
    index: usize,
    timeout: Duration,
    gate: &Gate,
) -> Timed {
    // Bound and connected before the barrier, so the release only sends.
    let prepared = addrs.as_ref().map_err(Clone::clone).and_then(|addrs| {
        // A datagram has no handshake to fail over with: the first address is the server.
        let server = addrs[0];
        let any: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(any).map_err(|e| RequestError::io("bind", &e))?;
        socket.connect(server).map_err(|e| RequestError::io("connect", &e))?;
        Ok(socket)
    });
    datagram_line(prepared, index, timeout, true, gate, |e| {
        // A connected UDP socket hears the ICMP "port unreachable" as a refused receive.
        if e.kind() == io::ErrorKind::ConnectionRefused {
            RequestError::new(ErrorKind::Refused, "receive: port unreachable (nothing listens)")
        } else {
            RequestError::io("receive", e)
        }
    })
}

/// Removes a Unix datagram client's own socket file when the request is over.
struct Bound(PathBuf);

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// One line over a Unix datagram socket, from a socket bound at `own`.
fn unix_dgram_line(server: &Path, own: PathBuf, index: usize, timeout: Duration, gate: &Gate) -> Timed {
    // A socket file left at our own path by a crashed run with the same pid is ours to replace;
    // anything else there is not removed, and the bind below says why it failed.
    if fs::symlink_metadata(&own).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = fs::remove_file(&own);
    }
    let prepared = UnixDatagram::bind(&own)
        .map_err(|e| RequestError::new(ErrorKind::Other, format!("bind {}: {e}", own.display())))
        .map(|socket| (socket, Bound(own)))
        .and_then(|(socket, bound)| match socket.connect(server) {
            Ok(()) => Ok((socket, bound)),
            Err(e) => Err(match SockAddr::unix(server) {
                Ok(addr) => connect::explain(&addr, &e),
                Err(_) => bad_path(server, &e),
            }),
        });
    // Keep the path bound until the answer is in (or given up on), then remove it.
    let (socket, bound) = match prepared {
        Ok((socket, bound)) => (Ok(socket), Some(bound)),
        Err(e) => (Err(e), None),
    };
    let server_addr = SockAddr::unix(server).ok();
    let timed = datagram_line(socket, index, timeout, false, gate, |e| match &server_addr {
        Some(addr) if e.kind() != io::ErrorKind::WouldBlock => connect::explain(addr, e),
        _ => RequestError::io("receive", e),
    });
    drop(bound);
    timed
}

/// Waits at the gate, sends the line as one datagram and waits for one datagram back; `udp`
/// says whether a missing answer may have been lost.
fn datagram_line<D: Datagram>(
    prepared: Result<D, RequestError>,
    index: usize,
    timeout: Duration,
    udp: bool,
    gate: &Gate,
    receive_error: impl Fn(&io::Error) -> RequestError,
) -> Timed {
    let released = gate.wait();
    let socket = match prepared {
        Ok(s) => s,
        Err(e) => {
            return Timed { released, connected: None, sent: None, done: Instant::now(), result: Err(e) };
        }
    };
    let deadline = released.checked_add(timeout);
    let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)));
    // A Unix datagram send blocks while the server's queue is full; never past the deadline.
    let sent = socket.set_write_timeout(left()).and_then(|()| socket.send(line(index).as_bytes()));
    let sent_at = Instant::now();
    if let Err(e) = sent {
        let e = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => RequestError::new(
                ErrorKind::Timeout,
                format!("send: the server's queue stayed full for {:.1} s", timeout.as_secs_f64()),
            ),
            _ => receive_error(&e),
        };
        return Timed { released, connected: Some(released), sent: None, done: sent_at, result: Err(e) };
    }
    // One byte more than the largest answer read, so a longer one is seen, not cut.
    let mut buf = vec![0u8; MAX_ANSWER + 1];
    let result = loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break Err(no_reply(timeout, udp));
        }
        if let Err(e) = socket.set_read_timeout(left()) {
            break Err(RequestError::io("receive", &e));
        }
        match socket.recv(&mut buf) {
            Ok(n) if n > MAX_ANSWER => {
                break Err(RequestError::new(
                    ErrorKind::BadResponse,
                    format!("answer longer than {MAX_ANSWER} bytes"),
                ));
            }
            Ok(n) => break check(index, &buf[..n]),
            // A signal arrived mid-wait; nothing was lost, wait again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The read timeout: the loop sees the deadline passed.
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => break Err(receive_error(&e)),
        }
    };
    Timed { released, connected: Some(released), sent: Some(sent_at), done: Instant::now(), result }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::testing::{self, TempDir};

    fn assert_all_echoed(report: &FireReport, n: usize) {
        assert_eq!(report.outcomes.len(), n, "{report}");
        assert!(report.all_answered(), "{report}");
        for o in &report.outcomes {
            let reply = o.result.as_ref().unwrap();
            assert_eq!(reply.status, ECHOED);
        }
        let text = report.to_string();
        assert!(text.contains(" echoed "), "{text}");
        // A correct answer is drawn like a 2xx: no note after the bar.
        assert!(
            text.lines()
                .filter(|l| l.trim_start().starts_with('#') && l.contains('|'))
                .all(|l| l.ends_with('|')),
            "{text}"
        );
    }

    #[test]
    fn lines_and_answers() {
        assert_eq!((line(3), expected(3)), ("hello 3\n".to_string(), "HELLO 3".to_string()));
        assert!(check(3, b"HELLO 3").is_ok());
        assert!(check(3, b"HELLO 3\n").is_ok());
        let e = check(3, b"hello 3\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadResponse);
        assert_eq!(e.message, "answer \"hello 3\", not \"HELLO 3\"");
        assert_eq!(EchoTarget::Udp("127.0.0.1:9999".into()).to_string(), "127.0.0.1:9999 (udp echo)");
        let unix = EchoTarget::UnixDgram("/tmp/e.sock".into());
        assert_eq!(unix.to_string(), "/tmp/e.sock (unix-dgram echo)");
    }

    #[test]
    fn tcp_lines_are_answered_upper_cased() {
        let addr = testing::tcp_echo(true);
        let report = fire_echo(&EchoConfig::new(5, EchoTarget::Tcp(addr.to_string())));
        assert_all_echoed(&report, 5);
        assert!(report.to_string().starts_with(&format!("fired 5 requests at {addr} (tcp echo)")));
    }

    #[test]
    fn a_wrong_answer_is_a_bad_response() {
        let addr = testing::tcp_echo(false);
        let report = fire_echo(&EchoConfig::new(2, EchoTarget::Tcp(addr.to_string())));
        assert_eq!(report.error_counts(), vec![(ErrorKind::BadResponse, 2)], "{report}");
        assert!(report.to_string().contains("answer \"hello 1\", not \"HELLO 1\""), "{report}");
    }

    #[test]
    fn udp_lines_are_answered_and_silence_times_out() {
        let addr = testing::udp_echo(true);
        let report = fire_echo(&EchoConfig::new(5, EchoTarget::Udp(addr.to_string())));
        assert_all_echoed(&report, 5);

        // A server that reads every datagram and never answers: each line waits its timeout.
        let mute = testing::udp_echo(false);
        let cfg = EchoConfig {
            timeout: Duration::from_millis(200),
            ..EchoConfig::new(3, EchoTarget::Udp(mute.to_string()))
        };
        let began = Instant::now();
        let report = fire_echo(&cfg);
        assert_eq!(report.error_counts(), vec![(ErrorKind::Timeout, 3)], "{report}");
        assert!(report.to_string().contains("no reply after 0.2 s"), "{report}");
        assert!(began.elapsed() < Duration::from_secs(3), "{report}");
    }

    #[test]
    fn unix_stream_lines_are_answered() {
        let dir = TempDir::new("echo-unix");
        let path = dir.0.join("echo.sock");
        testing::unix_echo(&path);
        let report = fire_echo(&EchoConfig::new(4, EchoTarget::Unix(path.clone())));
        assert_all_echoed(&report, 4);
        // Nothing at the path: refused, with the path named.
        let report = fire_echo(&EchoConfig::new(2, EchoTarget::Unix(dir.0.join("none.sock"))));
        assert_eq!(report.error_counts(), vec![(ErrorKind::Refused, 2)], "{report}");
        assert!(report.to_string().contains("refused  connect: no such file (is the server"), "{report}");
    }

    #[test]
    fn unix_datagram_lines_are_answered_and_the_client_paths_removed() {
        let dir = TempDir::new("echo-dgram");
        let path = dir.0.join("echo.sock");
        testing::unix_dgram_echo(&path);
        let clients = dir.0.join("clients");
        fs::create_dir(&clients).unwrap();
        let cfg = EchoConfig { bind_dir: clients.clone(), ..EchoConfig::new(4, EchoTarget::UnixDgram(path)) };
        let report = fire_echo(&cfg);
        assert_all_echoed(&report, 4);
        assert_eq!(fs::read_dir(&clients).unwrap().count(), 0, "client sockets left behind");

        // No server: refused at connect, and still nothing left behind.
        let cfg = EchoConfig { target: EchoTarget::UnixDgram(dir.0.join("none.sock")), ..cfg };
        let report = fire_echo(&cfg);
        assert_eq!(report.error_counts(), vec![(ErrorKind::Refused, 4)], "{report}");
        assert_eq!(fs::read_dir(&clients).unwrap().count(), 0);
        // A bind directory that does not exist: a clear error per request.
        let cfg = EchoConfig { bind_dir: dir.0.join("missing"), ..cfg };
        let report = fire_echo(&cfg);
        assert_eq!(report.error_counts(), vec![(ErrorKind::Other, 4)], "{report}");
        assert!(report.to_string().contains("bind "), "{report}");
    }
}
