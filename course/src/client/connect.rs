//! Where the client connects: TCP addresses resolved from the URL's host, or a Unix stream
//! socket's path (`--unix PATH`), and the connect itself, written once for fire mode, both of
//! load mode's threading models and the echo mode.
//!
//! Both kinds of address are a [`SockAddr`] and both kinds of connection a [`Socket`]: reads,
//! writes, timeouts and `SO_ERROR` are the same calls on either, so the HTTP code above does
//! not know which transport it is talking over. Two things differ, and are decided here:
//!
//! * **A full backlog.** A TCP server whose backlog is full drops the SYN and the client's
//!   kernel retries it (the connect is *in progress* meanwhile, `EINPROGRESS`). A Unix stream
//!   socket has no handshake: a connect either lands in the listener's queue at once or, the
//!   queue being full, fails with `EAGAIN` on a non-blocking socket (`Started::Backlogged`),
//!   and must be tried again. A blocking connect waits for room, up to `SO_SNDTIMEO`.
//! * **What a failure means.** `ECONNREFUSED` on TCP is "nothing listens on that port"; on a
//!   path it is that, or "that file is not a socket", and `ENOENT` and `EACCES` say the file is
//!   missing or out of reach. `explain` turns each into a short sentence (the
//!   report's heading names the path).

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Protocol, SockAddr, Socket, Type};

use super::fire::{ErrorKind, RequestError};
use super::url::Url;

/// The longest path a Unix socket address holds: `sun_path` is 108 bytes on Linux, one of
/// them the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// The addresses to connect to: the Unix socket at `unix` if given (the URL then only names
/// the path and the `Host` header), else every address the URL's host resolves to.
pub(crate) fn resolve(url: &Url, unix: Option<&Path>) -> Result<Vec<SockAddr>, RequestError> {
    match unix {
        Some(path) => SockAddr::unix(path)
            .map(|a| vec![a])
            .map_err(|e| RequestError::new(ErrorKind::Other, format!("{}: {e}", path.display()))),
        None => Ok(url
            .socket_addrs()
            .map_err(|e| RequestError::io("resolve", &e))?
            .into_iter()
            .map(SockAddr::from)
            .collect()),
    }
}

/// `url` as a report's heading names it: the URL, and the socket path when there is one.
pub(crate) fn target_text(url: &Url, unix: Option<&Path>) -> String {
    match unix {
        Some(path) => format!("{url} over {}", path.display()),
        None => url.to_string(),
    }
}

/// A new stream socket for `addr`, non-blocking or not; TCP ones with `TCP_NODELAY`, so a
/// request is never held back by Nagle's algorithm (a Unix socket has no such delay).
pub(crate) fn stream_socket(addr: &SockAddr, nonblocking: bool) -> io::Result<Socket> {
    let unix = addr.is_unix();
    let protocol = if unix { None } else { Some(Protocol::TCP) };
    // SOCK_NONBLOCK (and std's SOCK_CLOEXEC) at creation: no fcntl calls.
    let ty = if nonblocking { Type::STREAM.nonblocking() } else { Type::STREAM };
    let socket = Socket::new(addr.domain(), ty, protocol)?;
    if !unix {
        socket.set_tcp_nodelay(true)?;
    }
    Ok(socket)
}

/// A non-blocking connect that has begun.
pub(crate) enum Started {
    /// Connected, or (TCP) the handshake is under way: writability says when it is over, and
    /// `SO_ERROR` how it went.
    Pending(Socket),
    /// A Unix listener's queue is full (`EAGAIN`): nothing is under way; call
    /// [`retry`] on this socket until it connects.
    Backlogged(Socket),
}

/// Starts a non-blocking connect to `addr`.
pub(crate) fn start(addr: &SockAddr) -> Result<Started, RequestError> {
    let socket = stream_socket(addr, true).map_err(|e| RequestError::io("socket", &e))?;
    match retry(&socket, addr)? {
        true => Ok(Started::Pending(socket)),
        false => Ok(Started::Backlogged(socket)),
    }
}

/// One non-blocking connect attempt: `Ok(true)` connected or under way, `Ok(false)` a Unix
/// listener's queue is still full.
pub(crate) fn retry(socket: &Socket, addr: &SockAddr) -> Result<bool, RequestError> {
    loop {
        match socket.connect(addr) {
            Ok(()) => return Ok(true),
            // The TCP handshake is under way.
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => return Ok(true),
            // Only a Unix socket says this to connect: the listener's queue has no room.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && addr.is_unix() => return Ok(false),
            // A signal arrived mid-call; nothing was lost, try again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(explain(addr, &e)),
        }
    }
}

/// A blocking connect to `addr` within `timeout` (load mode's blocking threads).
pub(crate) fn blocking(addr: &SockAddr, timeout: Duration) -> Result<Socket, RequestError> {
    let socket = stream_socket(addr, false).map_err(|e| RequestError::io("socket", &e))?;
    if !addr.is_unix() {
        socket.connect_timeout(addr, timeout).map_err(|e| explain(addr, &e))?;
        return Ok(socket);
    }
    // A blocking Unix connect waits for room in the listener's queue for up to SO_SNDTIMEO,
    // then says EAGAIN: the same patience as a TCP connect timeout.
    socket.set_write_timeout(Some(timeout.max(Duration::from_millis(1)))).map_err(|e| explain(addr, &e))?;
    let until = Instant::now() + timeout;
    loop {
        match socket.connect(addr) {
            Ok(()) => return Ok(socket),
            // A signal cut the wait short; wait again for what is left.
            Err(e) if e.kind() == io::ErrorKind::Interrupted && Instant::now() < until => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Err(backlog_full(timeout)),
            Err(e) => return Err(explain(addr, &e)),
        }
    }
}

/// A Unix connect that found no room in the listener's queue for `waited`.
pub(crate) fn backlog_full(waited: Duration) -> RequestError {
    RequestError::new(
        ErrorKind::Timeout,
        format!("connect: the backlog stayed full for {:.1} s", waited.as_secs_f64()),
    )
}

/// A connect error in words. For a TCP address, the step and the system's text
/// (`connect: Connection refused (os error 111)`). For a Unix path, what is wrong with it,
/// found by looking at it: no such file, not a socket, no permission, or a socket nobody
/// listens on (left behind by a server that did not remove it). All of them mean the request
/// never reached a server, so they count as [`ErrorKind::Refused`], as a refused TCP connect
/// does.
pub(crate) fn explain(addr: &SockAddr, e: &io::Error) -> RequestError {
    let Some(path) = addr.as_pathname() else { return RequestError::io("connect", e) };
    // The path is not repeated: the report's heading names it, and the table's rows are short.
    let refused = |what: String| RequestError::new(ErrorKind::Refused, format!("connect: {what}"));
    match e.raw_os_error() {
        Some(libc::ENOENT) => refused("no such file (is the server running?)".into()),
        Some(libc::ENOTDIR) => refused("a part of the path is not a directory".into()),
        Some(libc::EACCES | libc::EPERM) => refused("permission denied (socket or dir mode)".into()),
        Some(libc::ECONNREFUSED) => match fs::metadata(path) {
            Ok(m) if m.file_type().is_socket() => refused("nobody listens (a stale socket file?)".into()),
            Ok(m) => refused(format!("{}, not a socket", file_kind(&m.file_type()))),
            Err(_) => refused("connection refused".into()),
        },
        _ => RequestError::new(ErrorKind::from_io(e.kind()), format!("connect: {e}")),
    }
}

/// `a directory`, `a regular file`, ...: what sits at a path that should be a socket.
fn file_kind(t: &fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a device"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::testing::TempDir;
    use socket2::Domain;
    use std::os::unix::net::UnixListener;

    fn connect_error(path: &Path) -> RequestError {
        let addr = SockAddr::unix(path).unwrap();
        match blocking(&addr, Duration::from_secs(1)) {
            Ok(_) => panic!("{} connected", path.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn unix_connect_failures_name_the_path_and_the_problem() {
        let dir = TempDir::new("explain");
        let missing = dir.0.join("missing.sock");
        let e = connect_error(&missing);
        assert_eq!(e.kind, ErrorKind::Refused);
        assert_eq!(e.message, "connect: no such file (is the server running?)");

        let file = dir.0.join("plain.txt");
        fs::write(&file, "not a socket").unwrap();
        let e = connect_error(&file);
        assert_eq!(e.kind, ErrorKind::Refused);
        assert!(e.message.starts_with("connect: a regular file, not a socket"), "{e}");
        let e = connect_error(&dir.0);
        assert!(e.message.starts_with("connect: a directory, not a socket"), "{e}");
        let e = connect_error(&file.join("below.sock"));
        assert!(e.message.starts_with("connect: a part of the path is not a directory"), "{e}");

        // A socket file whose listener is gone: bound, then closed without removing the file.
        let stale = dir.0.join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        let e = connect_error(&stale);
        assert!(e.message.starts_with("connect: nobody listens (a stale socket file?)"), "{e}");

        // Permission denied cannot be provoked as root, so the classification is checked on
        // the error itself.
        let addr = SockAddr::unix(&stale).unwrap();
        let e = explain(&addr, &io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.kind, ErrorKind::Refused);
        assert!(e.message.starts_with("connect: permission denied (socket or dir mode)"), "{e}");
    }

    #[test]
    fn tcp_errors_keep_the_system_text() {
        let addr = SockAddr::from("127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap());
        let e = explain(&addr, &io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(e.kind, ErrorKind::Refused);
        assert!(e.message.starts_with("connect: Connection refused"), "{e}");
        assert!(!addr.is_unix());
    }

    #[test]
    fn resolving_a_path_checks_its_length() {
        let url = Url::parse("http://localhost/hello").unwrap();
        let ok = resolve(&url, Some(Path::new("/tmp/s.sock"))).unwrap();
        assert!(ok.len() == 1 && ok[0].is_unix());
        let long = "/tmp/".to_string() + &"x".repeat(MAX_UNIX_PATH);
        assert!(resolve(&url, Some(Path::new(&long))).is_err());
        assert_eq!(
            target_text(&url, Some(Path::new("/tmp/s.sock"))),
            "http://localhost:80/hello over /tmp/s.sock"
        );
    }

    #[test]
    fn a_full_unix_backlog_is_backlogged_not_failed() {
        let dir = TempDir::new("backlog");
        let path = dir.0.join("full.sock");
        // listen(0): the queue holds one connection that is never accepted.
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        listener.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        listener.listen(0).unwrap();
        let addr = SockAddr::unix(&path).unwrap();
        let mut backlogged = None;
        let mut kept = Vec::new();
        for _ in 0..8 {
            match start(&addr).unwrap() {
                Started::Pending(s) => kept.push(s),
                Started::Backlogged(s) => {
                    backlogged = Some(s);
                    break;
                }
            }
        }
        let socket = backlogged.expect("a listen(0) queue fills");
        assert!(!retry(&socket, &addr).unwrap(), "still full");
        let e = match blocking(&addr, Duration::from_millis(100)) {
            Ok(_) => panic!("connected past a full queue"),
            Err(e) => e,
        };
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.message.starts_with("connect: the backlog stayed full for 0.1 s"), "{e}");
        // Room made: the waiting socket connects on its next try.
        let (accepted, _) = listener.accept().unwrap();
        assert!(retry(&socket, &addr).unwrap());
        drop((accepted, kept));
    }
}
