//! Creating the listening socket: Python's `server_bind` + `server_activate`, with socket2.
//!
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

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};

/// The default listen backlog: `SOMAXCONN`, Python's `request_queue_size` made large.
pub(crate) const DEFAULT_BACKLOG: i32 = libc::SOMAXCONN;

/// Options for [`bind`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenOptions {
    /// Length of the accept queue (Python's `request_queue_size`). Default [`DEFAULT_BACKLOG`].
    pub(crate) backlog: i32,
    /// Set `SO_REUSEPORT` before binding. Default `false`.
    pub(crate) reuse_port: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions { backlog: DEFAULT_BACKLOG, reuse_port: false }
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
pub(crate) fn bind(addr: SocketAddr, options: ListenOptions) -> Result<TcpListener> {
    let fail = |source| Error::Bind { addr, source };
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
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_ephemeral_port_in_non_blocking_mode() {
        let l = bind("127.0.0.1:0".parse().unwrap(), ListenOptions::default()).unwrap();
        let addr = l.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        // Non-blocking: no client is waiting, so accept must not block.
        let err = l.accept().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_port_in_use_is_a_bind_error_naming_the_address() {
        let first = bind("127.0.0.1:0".parse().unwrap(), ListenOptions::default()).unwrap();
        let addr = first.local_addr().unwrap();
        match bind(addr, ListenOptions::default()) {
            Err(Error::Bind { addr: a, source }) => {
                assert_eq!(a, addr);
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
    }

    #[test]
    fn reuse_port_lets_two_sockets_share_a_port() {
        let opts = ListenOptions { reuse_port: true, ..Default::default() };
        let first = bind("127.0.0.1:0".parse().unwrap(), opts).unwrap();
        let second = bind(first.local_addr().unwrap(), opts).unwrap();
        assert_eq!(first.local_addr().unwrap(), second.local_addr().unwrap());
    }
}
