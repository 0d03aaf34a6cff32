//! Datagram servers' handlers: [`DatagramHandler`] (what you implement), [`Datagram`] (one
//! request), [`Datagrams`] (the [`RequestHandler`] a datagram server runs, which calls yours).

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use socket2::Socket;

use super::{Connection, RequestHandler, ServerContext};
use crate::error::HandlerError;
use crate::transport::{Addr, Received, send_datagram};

/// What one datagram does: Python's `DatagramRequestHandler` (and `BaseRequestHandler` on a
/// `UDPServer`). Implement [`handle`](DatagramHandler::handle); the rest have defaults.
///
/// A datagram server has no connections: every datagram is a request, handled by `setup`,
/// `handle`, `finish` in Python's order, on whatever thread or process the concurrency strategy
/// chooses. Reply with [`Datagram::send`] (Python's `socket.sendto(data, client_address)`), or
/// write into the [`Datagram`] (it is `Write`, Python's `wfile`): what was written is sent back
/// as one datagram after `finish`, if the handler succeeded.
///
/// Make a server with [`Server::bind_udp`](crate::Server::bind_udp) or
/// [`Server::bind_unix_datagram`](crate::Server::bind_unix_datagram); they wrap the handler in
/// [`Datagrams`], so a stream handler cannot end up on a datagram socket, nor this one on a
/// stream.
///
/// # Example: Python's upper-casing UDP server
/// ```no_run
/// use socketserver::{Server, Sequential, datagram_fn};
///
/// let upper = datagram_fn(|d| {
///     let reply = d.packet().to_ascii_uppercase();
///     d.send(&reply)?;
///     Ok(())
/// });
/// let mut server = Server::bind_udp("127.0.0.1:9999", Sequential, upper)?;
/// server.serve_forever()?;
/// # Ok::<(), socketserver::Error>(())
/// ```
pub trait DatagramHandler: Send + Sync + 'static {
    /// Called before [`handle`](DatagramHandler::handle). Default: nothing.
    fn setup(&self, datagram: &mut Datagram) -> Result<(), HandlerError> {
        let _ = datagram;
        Ok(())
    }

    /// Handles one datagram.
    fn handle(&self, datagram: &mut Datagram) -> Result<(), HandlerError>;

    /// Called after [`handle`](DatagramHandler::handle), even if it failed. Default: nothing.
    fn finish(&self, datagram: &mut Datagram) -> Result<(), HandlerError> {
        let _ = datagram;
        Ok(())
    }

    /// Python's `verify_request`: `false` drops the datagram unhandled. Runs on the server's
    /// thread before any thread or process is started. Default: accept everyone.
    fn verify_request(&self, peer_addr: &Addr) -> bool {
        let _ = peer_addr;
        true
    }

    /// Python's `handle_error`. Default: log it at error level with the sender's address.
    fn handle_error(&self, peer_addr: &Addr, error: &HandlerError) {
        log::error!("error while handling a datagram from {peer_addr}: {error}");
    }
}

/// One received datagram, with the way to answer it: Python's `(data, socket)` request and
/// `client_address`.
#[derive(Debug)]
pub struct Datagram {
    packet: Vec<u8>,
    real_len: usize,
    peer: Addr,
    socket: Arc<Socket>,
    reply: Vec<u8>,
    server: ServerContext,
}

impl Datagram {
    /// Wraps what the server received; `packet` holds the stored bytes.
    pub(crate) fn new(
        mut packet: Vec<u8>,
        got: Received,
        socket: Arc<Socket>,
        server: ServerContext,
    ) -> Datagram {
        packet.truncate(got.stored);
        Datagram { packet, real_len: got.real_len, peer: got.peer, socket, reply: Vec::new(), server }
    }

    /// The datagram's bytes (Python's `self.request[0]`, or `self.packet`). At most the server's
    /// [`max_packet_size`](crate::ServerBuilder::max_packet_size): see
    /// [`truncated`](Datagram::truncated).
    pub fn packet(&self) -> &[u8] {
        &self.packet
    }

    /// Whether the datagram was larger than the server's buffer and was cut to fit. Python
    /// cuts it silently; here the server also logs a warning, and the handler can refuse it.
    pub fn truncated(&self) -> bool {
        self.real_len > self.packet.len()
    }

    /// The datagram's length as sent (more than `packet().len()` when it was truncated).
    pub fn original_len(&self) -> usize {
        self.real_len
    }

    /// The sender (Python's `self.client_address`). A Unix datagram client that did not bind a
    /// path is [`Addr::Unnamed`] and cannot be answered.
    pub fn peer_addr(&self) -> &Addr {
        &self.peer
    }

    /// The server (Python's `self.server`).
    pub fn server(&self) -> &ServerContext {
        &self.server
    }

    /// Sends `bytes` to the sender now, as one datagram, on the server's own socket (Python's
    /// `socket.sendto(bytes, self.client_address)`).
    ///
    /// # Errors
    /// `NotConnected` if the sender is an unnamed Unix socket (there is no address to answer);
    /// the operating system's error otherwise (`EMSGSIZE` for a datagram too large, ...).
    pub fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        send_datagram(&self.socket, bytes, &self.peer)
    }

    /// The server socket's descriptor.
    pub(crate) fn socket_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Sends what was written into this datagram (Python's `DatagramRequestHandler.finish`),
    /// if anything was.
    fn send_reply(&mut self) -> io::Result<()> {
        if !self.reply.is_empty() {
            let reply = std::mem::take(&mut self.reply);
            self.send(&reply)?;
        }
        Ok(())
    }
}

/// Python's `wfile` of a `DatagramRequestHandler`: what is written is collected, and sent to
/// the sender as one datagram after `finish`.
impl Write for Datagram {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reply.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The [`RequestHandler`] of a datagram server: takes each datagram the server received and runs
/// your [`DatagramHandler`] on it (`setup`, `handle`, `finish`), then sends what it wrote.
/// [`Server::bind_udp`](crate::Server::bind_udp) and
/// [`Server::bind_unix_datagram`](crate::Server::bind_unix_datagram) make it; it cannot be made
/// otherwise, so it never meets a stream.
#[derive(Debug)]
pub struct Datagrams<D>(D);

impl<D: DatagramHandler> Datagrams<D> {
    /// Wraps `handler` (only the datagram binds do).
    pub(crate) fn new(handler: D) -> Datagrams<D> {
        Datagrams(handler)
    }

    /// Your handler.
    pub fn inner(&self) -> &D {
        &self.0
    }
}

impl<D: DatagramHandler> RequestHandler for Datagrams<D> {
    fn handle(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        let Some(d) = conn.datagram_mut() else {
            return Err("a datagram handler was given a stream connection".into());
        };
        if d.truncated() {
            log::warn!(
                "datagram from {} truncated: {} bytes sent, {} kept (max_packet_size)",
                d.peer_addr(),
                d.original_len(),
                d.packet().len()
            );
        }
        // As in Python: a failed setup skips handle and finish; finish runs after handle
        // whatever handle returned.
        self.0.setup(d)?;
        let handled = self.0.handle(d);
        let finished = self.0.finish(d);
        handled.and(finished)?;
        // Unlike Python's finish, a failed handler's half-written reply is not sent.
        d.send_reply()?;
        Ok(())
    }

    fn verify_request(&self, peer_addr: &Addr) -> bool {
        self.0.verify_request(peer_addr)
    }

    fn handle_error(&self, peer_addr: &Addr, error: &HandlerError) {
        self.0.handle_error(peer_addr, error)
    }
}

/// A [`DatagramHandler`] made from a closure; build it with [`datagram_fn`].
#[derive(Debug, Clone)]
pub struct FnDatagramHandler<F>(F);

/// Makes a datagram handler from a closure, for handlers that need only `handle`.
///
/// ```
/// use std::io::Write;
/// let upper = socketserver::datagram_fn(|d| {
///     let reply = d.packet().to_ascii_uppercase();
///     d.write_all(&reply)?; // sent as one datagram when the handler returns
///     Ok(())
/// });
/// # let _ = upper;
/// ```
pub fn datagram_fn<F>(f: F) -> FnDatagramHandler<F>
where
    F: Fn(&mut Datagram) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    FnDatagramHandler(f)
}

impl<F> DatagramHandler for FnDatagramHandler<F>
where
    F: Fn(&mut Datagram) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    fn handle(&self, datagram: &mut Datagram) -> Result<(), HandlerError> {
        (self.0)(datagram)
    }
}
