//! [`Addr`]: one address type for every transport.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Where a socket is: an internet address (TCP, UDP), a Unix socket path, or an unnamed Unix
/// socket. What [`Server::local_addr`](crate::Server::local_addr),
/// [`Connection::peer_addr`](crate::Connection::peer_addr),
/// [`RequestHandler::verify_request`](crate::RequestHandler::verify_request) and the HTTP
/// layer's [`Request::peer_addr`](crate::http::Request::peer_addr) hand you.
///
/// Python uses whatever `accept()` returns: a `(host, port)` tuple for TCP, a path string for a
/// Unix socket, and `''` for a Unix client that never bound a name (most of them: a client's
/// `connect` does not need one). One enum says the same, with a variant for each.
///
/// `Addr` implements [`ToSocketAddrs`], so `TcpStream::connect(server.local_addr())` works for
/// a TCP server as it did with `std::net::SocketAddr`; for a Unix address it fails with
/// `InvalidInput` (connect with `std::os::unix::net::UnixStream` and
/// [`as_path`](Addr::as_path) instead).
///
/// ```
/// use socketserver::Addr;
/// let tcp = Addr::from("127.0.0.1:8000".parse::<std::net::SocketAddr>().unwrap());
/// assert_eq!(tcp.to_string(), "127.0.0.1:8000");
/// let unix = Addr::Unix("/run/app.sock".into());
/// assert_eq!(unix.to_string(), "unix:/run/app.sock");
/// assert_eq!(Addr::Unnamed.to_string(), "unix:(unnamed)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Addr {
    /// An IPv4 or IPv6 address and port: TCP and UDP.
    Inet(SocketAddr),
    /// A Unix socket bound to a path in the file system.
    Unix(PathBuf),
    /// A Unix socket with no name: the usual client of a Unix stream server, and a socket pair.
    /// A datagram sent from one cannot be answered.
    Unnamed,
}

impl Addr {
    /// The internet address, if this is one.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Addr::Inet(a) => Some(*a),
            _ => None,
        }
    }

    /// The Unix socket path, if this is one.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Addr::Unix(p) => Some(p),
            _ => None,
        }
    }

    /// Whether this is a Unix socket address, named or not.
    pub fn is_unix(&self) -> bool {
        matches!(self, Addr::Unix(_) | Addr::Unnamed)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(a) => a.fmt(f),
            // A prefix, so that a log line tells a relative path from a host name.
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Unnamed => f.write_str("unix:(unnamed)"),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr::Inet(a)
    }
}

impl From<std::os::unix::net::SocketAddr> for Addr {
    fn from(a: std::os::unix::net::SocketAddr) -> Addr {
        // Linux's abstract names (a leading NUL) have no path; nothing in this crate binds one,
        // so a peer that has one is reported like an unnamed one.
        match a.as_pathname() {
            Some(p) => Addr::Unix(p.to_path_buf()),
            None => Addr::Unnamed,
        }
    }
}

impl PartialEq<SocketAddr> for Addr {
    fn eq(&self, other: &SocketAddr) -> bool {
        self.as_inet() == Some(*other)
    }
}

impl ToSocketAddrs for Addr {
    type Iter = std::option::IntoIter<SocketAddr>;

    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        match self {
            Addr::Inet(a) => Ok(Some(*a).into_iter()),
            _ => {
                Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{self} is not an internet address")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inet_addr_connects_like_a_socket_addr() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let addr = Addr::from(a);
        assert_eq!(addr.to_socket_addrs().unwrap().collect::<Vec<_>>(), vec![a]);
        assert_eq!(addr, a);
        assert!(!addr.is_unix());
    }

    #[test]
    fn a_unix_addr_is_no_internet_address() {
        let addr = Addr::Unix("/tmp/x.sock".into());
        let err = addr.to_socket_addrs().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("unix:/tmp/x.sock"), "{err}");
        assert_eq!(addr.as_path(), Some(Path::new("/tmp/x.sock")));
        assert!(Addr::Unnamed.is_unix());
    }

    #[test]
    fn an_unnamed_unix_peer_has_no_path() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(Addr::from(a.peer_addr().unwrap()), Addr::Unnamed);
    }
}
