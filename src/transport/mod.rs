//! The transport axis: which kind of socket a server listens on.
//!
//! Python has a server class per transport (`TCPServer`, `UnixStreamServer`, `UDPServer`,
//! `UnixDatagramServer`) and combines each with each mixin. Here the transport is a *value*,
//! not a type parameter: [`Server::bind`](crate::Server::bind) listens on TCP (IPv4 or IPv6),
//! [`Server::bind_unix`](crate::Server::bind_unix) on a Unix stream socket, and both make the
//! same `Server<C, H>`, because nothing above the socket differs: every strategy, the HTTP
//! layer and the reactor see a [`Stream`] (an enum of the two) and an [`Addr`]. A type
//! parameter would multiply every strategy's and handler's signature by the transport for a
//! difference that is two `match`es deep.
//!
//! * [`Addr`]: an internet address, a Unix path, or an unnamed Unix peer.
//! * [`Stream`]: an accepted connection, TCP or Unix.
//! * [`Listener`]: a listening socket, TCP or Unix, with the Unix socket file's rules
//!   (owner-only mode, stale files replaced, non-sockets refused, removed on close).

mod addr;
mod listener;
mod stream;

pub use addr::Addr;
pub use listener::Listener;
pub(crate) use listener::{
    DatagramAddr, ListenOptions, Received, bind_datagram, bind_tcp, bind_unix, send_datagram,
};
pub use stream::Stream;

/// The first address `addr` resolves to (what every `bind` binds).
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if it does not resolve, or resolves to nothing.
pub(crate) fn first_addr(addr: impl std::net::ToSocketAddrs) -> crate::Result<std::net::SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        crate::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "address resolves to nothing"))
    })
}
