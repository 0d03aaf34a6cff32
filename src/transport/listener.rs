//! [`Listener`]: the server's socket, TCP, Unix stream, UDP or Unix datagram; Python's
//! `server_bind` + `server_activate`, with socket2.
//!
//! ## TCP
//! `std::net::TcpListener::bind` does socket + bind + listen in one call with a fixed backlog
//! of 128 and no way to set options *before* `bind`. Two options must be set before `bind` to
//! matter, so the socket is built step by step here:
//!
//! * `SO_REUSEADDR` (always on, as Python's `allow_reuse_address = True` for its HTTP servers):
//!   lets a restarted server bind its port while connections from the previous run are still in
//!   `TIME_WAIT`, instead of failing with "address already in use" for a minute.
//! * `SO_REUSEPORT` (off unless asked): lets several sockets, typically one per pre-forked
//!   worker, bind the *same* port; the kernel then spreads new connections across them.
//!
//! The backlog is the length of the queue of connections the kernel has completed but the
//! server has not yet `accept`ed. Python's default of 5 makes a burst of 100 simultaneous
//! clients see resets and retries; the default here is `SOMAXCONN` (4096 with glibc), and Linux
//! silently caps any value at `/proc/sys/net/core/somaxconn`.

//!
//! ## Unix stream sockets
//! A Unix socket's name is a file, and the file is the hard part:
//!
//! * **Permissions are the access control.** `connect(2)` needs write permission on the socket
//!   file, so its mode decides who may talk to the server. `bind` creates it with the process's
//!   umask applied, which differs between machines and users (002 makes it group-writable); the
//!   mode is therefore set explicitly, owner-only (`0o600`) unless the user asks for another
//!   ([`ServerBuilder::unix_mode`](crate::ServerBuilder::unix_mode)). It is set after `bind` and
//!   *before* `listen`: until `listen`, a `connect` is refused, so no client can slip in while the
//!   file still has the umask's mode.
//! * **A stale file blocks the next start.** A server that crashed (or was SIGKILLed) leaves its
//!   socket file behind, and `bind` then fails with "address in use" although nobody listens.
//!   Before binding, a socket found at the path is probed with a `connect`: refused means stale,
//!   and it is removed; accepted means another server is running there, and binding is refused.
//! * **Never delete what is not ours.** Anything at the path that is not a socket (a regular
//!   file, a directory, a typo'd path to a config file) is refused with an error, never removed.
//! * **Clean up.** The file is removed when the listener that created it is dropped, and only if
//!   it is still the same file (device and inode): a newer server may have replaced it. A forked
//!   child `_exit`s without running destructors, and a pre-forked worker does not own the file,
//!   so only the process that bound it removes it.
//!
//! The same rules hold for a Unix *datagram* socket's file; a datagram socket is bound but not
//! listened on (there is no connection to accept), so its mode is simply set right after `bind`:
//! until then no one knows the file is ours, and a datagram sent in that instant is merely one
//! the umask's mode would have allowed.
//!
//! ## Datagram sockets (UDP, Unix datagram)
//! No `listen`, no `accept`: the server's one socket receives every datagram with `recvmsg`,
//! which also says who sent it, and answers with `sendto` on the same socket. `recvmsg` is
//! called with `MSG_TRUNC`, so a datagram larger than the buffer is *reported* (Linux returns
//! its real length) instead of being silently cut; see [`Datagram`](crate::Datagram).
//!
//! * **`sun_path` holds 107 bytes** (108 with the terminating NUL): a longer path is refused
//!   with a message saying so, not the kernel's bare `EINVAL`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{Addr, Stream};
use crate::error::{Error, Result};

/// The default listen backlog: `SOMAXCONN`, Python's `request_queue_size` made large.
pub(crate) const DEFAULT_BACKLOG: i32 = libc::SOMAXCONN;

/// The default mode of a Unix socket file: read and write for the owner only.
pub(crate) const DEFAULT_UNIX_MODE: u32 = 0o600;

/// The longest path `sun_path` holds, without its terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// Options for [`bind_tcp`], [`bind_unix`] and [`bind_datagram`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenOptions {
    /// Length of the accept queue (Python's `request_queue_size`). Default [`DEFAULT_BACKLOG`].
    pub(crate) backlog: i32,
    /// Set `SO_REUSEPORT` before binding (TCP only). Default `false`.
    pub(crate) reuse_port: bool,
    /// The Unix socket file's mode. Default [`DEFAULT_UNIX_MODE`].
    pub(crate) unix_mode: u32,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions { backlog: DEFAULT_BACKLOG, reuse_port: false, unix_mode: DEFAULT_UNIX_MODE }
    }
}

/// A server's socket: a listening TCP or Unix stream socket, or a bound UDP or Unix datagram
/// socket. A server is made on one with
/// [`ServerBuilder::from_listener`](crate::ServerBuilder::from_listener) (any
/// `std::net::TcpListener` or `std::os::unix::net::UnixListener` converts into it, e.g. one
/// inherited from systemd), or it is made for you by [`Server::bind`](crate::Server::bind),
/// [`Server::bind_unix`](crate::Server::bind_unix), [`Server::bind_udp`](crate::Server::bind_udp)
/// and [`Server::bind_unix_datagram`](crate::Server::bind_unix_datagram).
///
/// A `Listener` made by `bind_unix` owns its socket file and removes it when dropped (see the
/// module's docs in `src/transport/listener.rs` for the rules); one converted from a
/// `UnixListener` leaves the file alone, as it did not create it.
#[derive(Debug)]
pub struct Listener {
    /// Shared with the datagrams in flight, which answer on it from a thread or a child.
    socket: Arc<Socket>,
    /// Kept, not asked: `SO_DOMAIN` would be a system call per `accept`.
    kind: Kind,
    /// The socket file this listener created: held for its `Drop`, which removes the file.
    _file: Option<SocketFile>,
}

impl Listener {
    /// Accepts one connection: the stream and the peer's address. Non-blocking listeners (a
    /// server's always are) return `WouldBlock` when none is waiting; a datagram socket fails
    /// with `InvalidInput` (there is nothing to accept).
    pub fn accept(&self) -> io::Result<(Stream, Addr)> {
        if self.is_datagram() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a datagram socket accepts no connections",
            ));
        }
        // accept4 with SOCK_CLOEXEC (socket2 does that on Linux): a program a handler exec's
        // must not inherit client sockets.
        let (socket, peer) = self.socket.accept()?;
        Ok(self.stream_of(socket, &peer))
    }

    /// [`accept`](Listener::accept), with the connection non-blocking already (`accept4`
    /// with `SOCK_NONBLOCK`): one system call per connection instead of two, for a reactor.
    pub(crate) fn accept_nonblocking(&self) -> io::Result<(Stream, Addr)> {
        if self.is_datagram() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a datagram socket accepts no connections",
            ));
        }
        let (socket, peer) = crate::sys::accept_nonblocking(&self.socket)?;
        Ok(self.stream_of(socket, &peer))
    }

    fn stream_of(&self, socket: Socket, peer: &SockAddr) -> (Stream, Addr) {
        let stream = match self.is_unix() {
            true => Stream::Unix(UnixStream::from(std::os::fd::OwnedFd::from(socket))),
            false => Stream::Tcp(socket.into()),
        };
        (stream, addr_of(peer))
    }

    /// The address it listens on (with port 0: the port the kernel chose).
    pub fn local_addr(&self) -> io::Result<Addr> {
        Ok(addr_of(&self.socket.local_addr()?))
    }

    /// `O_NONBLOCK` on or off.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.socket.set_nonblocking(on)
    }

    /// `TCP_NOTSENT_LOWAT` on a TCP listener, which every connection it accepts from then on
    /// inherits (Linux copies the listener's options into each accepted socket): the option
    /// set once instead of a `setsockopt` per connection (see
    /// [`Stream::set_notsent_lowat`](crate::transport::Stream::set_notsent_lowat)). On any
    /// other kind of socket it does nothing and succeeds.
    pub(crate) fn set_notsent_lowat(&self, bytes: u32) -> io::Result<()> {
        match self.kind {
            Kind::Tcp => self.socket.set_tcp_notsent_lowat(bytes),
            _ => Ok(()),
        }
    }

    /// Whether this is a Unix socket (stream or datagram).
    pub fn is_unix(&self) -> bool {
        matches!(self.kind, Kind::Unix | Kind::UnixDatagram)
    }

    /// Whether this is a datagram socket (UDP or Unix datagram).
    pub fn is_datagram(&self) -> bool {
        matches!(self.kind, Kind::Udp | Kind::UnixDatagram)
    }

    /// The transport's name, as the example servers' first line says it: `tcp`, `unix`,
    /// `udp`, `unix-dgram`.
    pub fn transport(&self) -> &'static str {
        match self.kind {
            Kind::Tcp => "tcp",
            Kind::Unix => "unix",
            Kind::Udp => "udp",
            Kind::UnixDatagram => "unix-dgram",
        }
    }

    /// Receives one datagram into `buf`: how many bytes were stored, the datagram's real
    /// length (larger when it did not fit), and its sender.
    pub(crate) fn recv_datagram(&self, buf: &mut [u8]) -> io::Result<Received> {
        let capacity = buf.len();
        let (real_len, from) = crate::sys::recv_datagram(&self.socket, buf)?;
        Ok(Received { stored: real_len.min(capacity), real_len, peer: addr_of(&from) })
    }

    /// The socket, shared, for a datagram that answers on it.
    pub(crate) fn shared_socket(&self) -> Arc<Socket> {
        Arc::clone(&self.socket)
    }

    /// A second handle to the same socket (`dup(2)`). It does not own the socket file: only the
    /// original removes it.
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(Listener { socket: Arc::new(self.socket.try_clone()?), kind: self.kind, _file: None })
    }
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Listener {
        Listener { socket: Arc::new(l.into()), kind: Kind::Tcp, _file: None }
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Listener {
        Listener { socket: Arc::new(std::os::fd::OwnedFd::from(l).into()), kind: Kind::Unix, _file: None }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// The crate's address for one the kernel gave: an internet address, a Unix path, or (a Unix
/// client that bound no name, the usual case, or an abstract one) unnamed.
fn addr_of(a: &SockAddr) -> Addr {
    match (a.as_socket(), a.as_pathname()) {
        (Some(inet), _) => Addr::Inet(inet),
        (None, Some(path)) => Addr::Unix(path.to_path_buf()),
        (None, None) => Addr::Unnamed,
    }
}

/// What a server's socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Unix,
    Udp,
    UnixDatagram,
}

/// One datagram as [`Listener::recv_datagram`] got it.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes stored in the buffer.
    pub(crate) stored: usize,
    /// The datagram's length on the wire; more than `stored` when it was cut.
    pub(crate) real_len: usize,
    /// The sender.
    pub(crate) peer: Addr,
}

/// Sends `bytes` as one datagram on `socket` to `to`.
///
/// # Errors
/// `NotConnected` for [`Addr::Unnamed`], which has no address to send to; the operating
/// system's error otherwise.
pub(crate) fn send_datagram(socket: &Socket, bytes: &[u8], to: &Addr) -> io::Result<usize> {
    let to = match to {
        Addr::Inet(a) => SockAddr::from(*a),
        Addr::Unix(p) => SockAddr::unix(p)?,
        Addr::Unnamed => {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("cannot answer {to}: the sender's socket has no name (a client must bind a path)"),
            ));
        }
    };
    socket.send_to(bytes, &to)
}

/// The socket file a Unix listener created, identified by device and inode so that dropping an
/// old listener never removes a newer server's file.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    log::warn!("cannot remove the socket file {}: {e}", self.path.display());
                }
            }
            // Gone already, or replaced by someone else's: not ours to remove.
            _ => {}
        }
    }
}

/// Creates a TCP socket, sets its options, binds it to `addr` and starts listening.
///
/// The listener is returned in non-blocking mode: the server only calls `accept` after `poll`
/// said a connection is waiting, and with several processes or threads polling one listener
/// another may take that connection first; a blocking `accept` would then hang instead of
/// returning `WouldBlock`.
///
/// # Errors
/// [`Error::Bind`] with the address and the operating system's reason.
pub(crate) fn bind_tcp(addr: SocketAddr, options: ListenOptions) -> Result<Listener> {
    let fail = |source| Error::Bind { addr: Addr::Inet(addr), source };
    // socket2 creates the socket with SOCK_CLOEXEC on Linux, so a child started with exec never
    // inherits the listener by accident. (A *forked* child does; see concurrency::forking.)
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    if options.reuse_port {
        socket.set_reuse_port(true).map_err(fail)?;
    }
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(options.backlog).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(Listener { socket: Arc::new(socket), kind: Kind::Tcp, _file: None })
}

/// Creates a Unix stream socket at `path`, with the file rules of the module docs: a stale
/// socket replaced, a live one or a non-socket refused, the mode set before `listen`.
///
/// # Errors
/// [`Error::Bind`] with the path and the reason: too long for `sun_path`, not a socket, another
/// server listening there, or the operating system's (no such directory, permission denied).
pub(crate) fn bind_unix(path: &Path, options: ListenOptions) -> Result<Listener> {
    let fail = |source| Error::Bind { addr: Addr::Unix(path.to_path_buf()), source };
    let (socket, file) = bind_unix_path(path, Type::STREAM, options)?;
    // The mode before listen: until listen, connect is refused, so no client gets in under the
    // umask's mode (see the module docs).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(options.unix_mode)).map_err(fail)?;
    socket.listen(options.backlog).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(Listener { socket: Arc::new(socket), kind: Kind::Unix, _file: Some(file) })
}

/// Where a datagram server binds: an internet address (UDP) or a Unix socket path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DatagramAddr<'a> {
    Udp(SocketAddr),
    Unix(&'a Path),
}

/// Creates a UDP socket bound to `addr`, or a Unix datagram socket at a path (with the socket
/// file's rules), non-blocking. No `listen`: datagrams arrive without connections.
///
/// # Errors
/// [`Error::Bind`] with the address and the reason.
pub(crate) fn bind_datagram(addr: DatagramAddr<'_>, options: ListenOptions) -> Result<Listener> {
    match addr {
        DatagramAddr::Udp(addr) => {
            let fail = |source| Error::Bind { addr: Addr::Inet(addr), source };
            let socket =
                Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
            // Python's UDPServer sets SO_REUSEADDR only if asked (allow_reuse_address is False
            // there): UDP has no TIME_WAIT to wait out, and two UDP sockets on one port would
            // split the datagrams between them. SO_REUSEPORT only if asked, as for TCP.
            if options.reuse_port {
                socket.set_reuse_port(true).map_err(fail)?;
            }
            socket.bind(&addr.into()).map_err(fail)?;
            socket.set_nonblocking(true).map_err(fail)?;
            Ok(Listener { socket: Arc::new(socket), kind: Kind::Udp, _file: None })
        }
        DatagramAddr::Unix(path) => {
            let fail = |source| Error::Bind { addr: Addr::Unix(path.to_path_buf()), source };
            let (socket, file) = bind_unix_path(path, Type::DGRAM, options)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(options.unix_mode))
                .map_err(fail)?;
            socket.set_nonblocking(true).map_err(fail)?;
            Ok(Listener { socket: Arc::new(socket), kind: Kind::UnixDatagram, _file: Some(file) })
        }
    }
}

/// Checks `path` by the module's rules (length, not a socket, a live server, a stale file),
/// then creates a Unix socket of type `ty` and binds it there. Returns it with the guard that
/// removes the file again.
fn bind_unix_path(path: &Path, ty: Type, options: ListenOptions) -> Result<(Socket, SocketFile)> {
    let fail = |source| Error::Bind { addr: Addr::Unix(path.to_path_buf()), source };
    let refuse = |kind, msg: String| fail(io::Error::new(kind, msg));
    if options.reuse_port {
        return Err(refuse(io::ErrorKind::InvalidInput, "SO_REUSEPORT applies to TCP and UDP only".into()));
    }
    if path.as_os_str().is_empty() {
        return Err(refuse(io::ErrorKind::InvalidInput, "an empty path".into()));
    }
    let len = path.as_os_str().len();
    if len > SUN_PATH_MAX {
        return Err(refuse(
            io::ErrorKind::InvalidInput,
            format!("the path is {len} bytes; a Unix socket path holds at most {SUN_PATH_MAX} (sun_path)"),
        ));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
        Ok(m) if !m.file_type().is_socket() => {
            let what = if m.is_dir() {
                "a directory"
            } else if m.is_file() {
                "a regular file"
            } else if m.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "something that is not a socket"
            };
            return Err(refuse(
                io::ErrorKind::AlreadyExists,
                format!("{what} is at this path, not a socket; refusing to replace it"),
            ));
        }
        // The probe is a stream connect whatever we are about to bind: it tells a live stream
        // server (accepted), a live datagram socket (EPROTOTYPE: wrong type) and a leftover
        // (refused: nobody is bound to the file) apart.
        Ok(_) => match UnixStream::connect(path) {
            // Someone accepted (or queued) the probe: a server is alive there. Ours goes away
            // at once, and the other server sees a connection close without a request.
            Ok(_) => {
                return Err(refuse(
                    io::ErrorKind::AddrInUse,
                    "another server is listening on this socket".into(),
                ));
            }
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                return Err(refuse(
                    io::ErrorKind::AddrInUse,
                    "another server's datagram socket is bound to this path".into(),
                ));
            }
            // Nobody listens: a crashed run's leftover. Replace it.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                log::info!("removing the stale socket file {}", path.display());
                std::fs::remove_file(path).map_err(fail)?;
            }
            Err(e) => return Err(fail(e)),
        },
    }
    let socket = Socket::new(Domain::UNIX, ty, None).map_err(fail)?;
    socket.bind(&SockAddr::unix(path).map_err(fail)?).map_err(fail)?;
    // From here the file exists and is ours: if a later step fails, the guard removes it.
    let meta = std::fs::symlink_metadata(path).map_err(fail)?;
    Ok((socket, SocketFile { path: path.to_path_buf(), dev: meta.dev(), ino: meta.ino() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(addr: &str, options: ListenOptions) -> Result<Listener> {
        bind_tcp(addr.parse().unwrap(), options)
    }

    #[test]
    fn accepted_connections_inherit_the_listeners_unsent_limit() {
        let l = tcp("127.0.0.1:0", ListenOptions::default()).unwrap();
        l.set_notsent_lowat(96 * 1024).unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (served, _) = l.accept().unwrap();
        let tcp = served.as_tcp().unwrap();
        assert_eq!(socket2::SockRef::from(tcp).tcp_notsent_lowat().unwrap(), 96 * 1024);
    }

    fn port(l: &Listener) -> SocketAddr {
        l.local_addr().unwrap().as_inet().unwrap()
    }

    #[test]
    fn binds_an_ephemeral_port_in_non_blocking_mode() {
        let l = tcp("127.0.0.1:0", ListenOptions::default()).unwrap();
        assert_ne!(port(&l).port(), 0);
        assert!(!l.is_unix());
        // Non-blocking: no client is waiting, so accept must not block.
        let err = l.accept().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_port_in_use_is_a_bind_error_naming_the_address() {
        let first = tcp("127.0.0.1:0", ListenOptions::default()).unwrap();
        let addr = port(&first);
        match bind_tcp(addr, ListenOptions::default()) {
            Err(Error::Bind { addr: a, source }) => {
                assert_eq!(a, addr);
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
    }

    #[test]
    fn reuse_port_lets_two_sockets_share_a_port() {
        let opts = ListenOptions { reuse_port: true, ..Default::default() };
        let first = tcp("127.0.0.1:0", opts).unwrap();
        let second = bind_tcp(port(&first), opts).unwrap();
        assert_eq!(port(&first), port(&second));
    }

    #[test]
    fn ipv6_loopback_binds_when_the_machine_has_it() {
        // Containers without IPv6 exist: only a successful bind is checked further.
        if let Ok(l) = tcp("[::1]:0", ListenOptions::default()) {
            assert!(port(&l).is_ipv6());
            let client = std::net::TcpStream::connect(port(&l)).unwrap();
            let (_, peer) = wait_accept(&l);
            assert_eq!(peer, client.local_addr().unwrap());
        }
    }

    /// A private temporary directory, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("socketserver-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            TempDir(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn wait_accept(l: &Listener) -> (Stream, Addr) {
        assert!(crate::sys::wait_readable(l.as_fd(), Some(std::time::Duration::from_secs(10))).unwrap());
        l.accept().unwrap()
    }

    fn bind_error(path: &Path, options: ListenOptions) -> io::Error {
        match bind_unix(path, options) {
            Err(Error::Bind { addr, source }) => {
                assert_eq!(addr, Addr::Unix(path.to_path_buf()));
                source
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
    }

    #[test]
    fn a_unix_socket_is_owner_only_serves_and_is_removed_on_drop() {
        let dir = TempDir::new("unix-basic");
        let path = dir.0.join("s.sock");
        let l = bind_unix(&path, ListenOptions::default()).unwrap();
        assert!(l.is_unix());
        assert_eq!(l.local_addr().unwrap(), Addr::Unix(path.clone()));
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let _client = UnixStream::connect(&path).unwrap();
        let (stream, peer) = wait_accept(&l);
        assert!(matches!(stream, Stream::Unix(_)));
        assert_eq!(peer, Addr::Unnamed);
        drop(l);
        assert!(!path.exists(), "the socket file is removed with its listener");
    }

    #[test]
    fn the_mode_is_the_users_choice() {
        let dir = TempDir::new("unix-mode");
        let path = dir.0.join("s.sock");
        let _l = bind_unix(&path, ListenOptions { unix_mode: 0o660, ..Default::default() }).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = TempDir::new("unix-stale");
        let path = dir.0.join("s.sock");
        // A crashed run: a bound socket file nobody listens on any more.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = bind_unix(&path, ListenOptions::default()).unwrap();
        // A second server on the same path while the first is alive.
        let e = bind_error(&path, ListenOptions::default());
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains("another server"), "{e}");
        drop(live);
    }

    #[test]
    fn a_file_or_directory_at_the_path_is_refused_and_kept() {
        let dir = TempDir::new("unix-notsock");
        let file = dir.0.join("config.toml");
        std::fs::write(&file, "keep me").unwrap();
        let e = bind_error(&file, ListenOptions::default());
        assert!(e.to_string().contains("a regular file is at this path"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        let sub = dir.0.join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = bind_error(&sub, ListenOptions::default());
        assert!(e.to_string().contains("a directory"), "{e}");
        assert!(sub.is_dir());
    }

    #[test]
    fn a_path_too_long_for_sun_path_is_refused_clearly() {
        let path = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
        let e = bind_error(&path, ListenOptions::default());
        assert!(e.to_string().contains("at most 107"), "{e}");
    }

    #[test]
    fn a_directory_without_write_permission_is_a_bind_error() {
        let dir = TempDir::new("unix-ro");
        let ro = dir.0.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        let path = ro.join("s.sock");
        // root (CAP_DAC_OVERRIDE) ignores directory permissions: then the bind simply works.
        let privileged = std::fs::write(ro.join("probe"), "").is_ok();
        let bound = bind_unix(&path, ListenOptions::default());
        // Writable again before any assertion can fail, so that TempDir can remove it.
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o700)).unwrap();
        match bound {
            Ok(_) => assert!(privileged, "bound in a directory we may not write"),
            Err(Error::Bind { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::PermissionDenied),
            Err(other) => panic!("expected a bind error, got {other:?}"),
        }
    }

    #[test]
    fn reuse_port_on_a_unix_socket_is_refused() {
        let dir = TempDir::new("unix-reuse");
        let e = bind_error(&dir.0.join("s.sock"), ListenOptions { reuse_port: true, ..Default::default() });
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_udp_socket_reports_a_truncated_datagram_and_its_sender() {
        let l = bind_datagram(DatagramAddr::Udp("127.0.0.1:0".parse().unwrap()), ListenOptions::default())
            .unwrap();
        assert!(l.is_datagram() && !l.is_unix());
        assert_eq!(l.transport(), "udp");
        assert_eq!(l.accept().unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(&[7u8; 100], port(&l)).unwrap();
        assert!(crate::sys::wait_readable(l.as_fd(), Some(std::time::Duration::from_secs(10))).unwrap());
        let mut buf = [0u8; 10];
        let got = l.recv_datagram(&mut buf).unwrap();
        assert_eq!((got.stored, got.real_len), (10, 100), "cut to the buffer, real length known");
        assert_eq!(got.peer, client.local_addr().unwrap());
        send_datagram(&l.shared_socket(), b"back", &got.peer).unwrap();
        let mut back = [0u8; 8];
        assert_eq!(client.recv(&mut back).unwrap(), 4);
        // Empty datagrams exist, and are not EOF.
        client.send_to(b"", port(&l)).unwrap();
        assert!(crate::sys::wait_readable(l.as_fd(), Some(std::time::Duration::from_secs(10))).unwrap());
        let got = l.recv_datagram(&mut buf).unwrap();
        assert_eq!((got.stored, got.real_len), (0, 0));
    }

    #[test]
    fn a_unix_datagram_socket_keeps_the_file_rules_and_names_its_peers() {
        let dir = TempDir::new("unix-dgram");
        let path = dir.0.join("d.sock");
        let l = bind_datagram(DatagramAddr::Unix(&path), ListenOptions::default()).unwrap();
        assert_eq!(l.transport(), "unix-dgram");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A second server on the live datagram socket is refused.
        let e = match bind_unix(&path, ListenOptions::default()) {
            Err(Error::Bind { source, .. }) => source,
            other => panic!("expected a bind error, got {other:?}"),
        };
        assert!(e.to_string().contains("datagram socket is bound"), "{e}");
        let named = std::os::unix::net::UnixDatagram::bind(dir.0.join("client.sock")).unwrap();
        named.send_to(b"hi", &path).unwrap();
        let unnamed = std::os::unix::net::UnixDatagram::unbound().unwrap();
        unnamed.send_to(b"yo", &path).unwrap();
        let mut buf = [0u8; 16];
        assert!(crate::sys::wait_readable(l.as_fd(), Some(std::time::Duration::from_secs(10))).unwrap());
        assert_eq!(l.recv_datagram(&mut buf).unwrap().peer, Addr::Unix(dir.0.join("client.sock")));
        assert_eq!(l.recv_datagram(&mut buf).unwrap().peer, Addr::Unnamed);
        drop(l);
        assert!(!path.exists());
    }
}
