//! [`StreamRequestHandler`]: Python's `StreamRequestHandler`, a buffered reader and writer over
//! the connection, with a per-connection timeout and Nagle's algorithm switchable.

use std::io::{BufReader, BufWriter, Write};
use std::time::Duration;

use super::{Connection, RequestHandler, ServerContext};
use crate::error::HandlerError;
use crate::transport::{Addr, Stream};

/// Python's `StreamRequestHandler`: the closure gets a buffered reader (`rfile`) and writer
/// (`wfile`) over the connection, as Python's `handle()` gets `self.rfile` and `self.wfile`.
///
/// # Configure this (Python's class attributes)
/// * [`timeout`](StreamRequestHandler::timeout): Python's `timeout` (default `None`, wait
///   forever): a read or a write that waits longer fails with `WouldBlock`/`TimedOut`, and the
///   handler's error goes to `handle_error`. Set on the socket (`SO_RCVTIMEO`, `SO_SNDTIMEO`)
///   in `setup`, as Python's `settimeout`.
/// * [`disable_nagle_algorithm`](StreamRequestHandler::disable_nagle_algorithm): Python's
///   attribute of that name (default `false`): `TCP_NODELAY`, so a short reply is sent at once
///   rather than held back up to 40 ms for a delayed ACK. A Unix socket has no Nagle.
///
/// What the writer holds is flushed after the closure returns (Python's `finish`), also when it
/// failed, so that what was written is not lost; a flush error is reported like the handler's.
///
/// # Example: Python's upper-casing TCP server, as its documentation writes it
/// ```no_run
/// use std::io::{BufRead, Write};
/// use socketserver::{Server, Sequential, StreamRequestHandler};
///
/// let upper = StreamRequestHandler::new(|io| {
///     let mut line = String::new();
///     io.rfile.read_line(&mut line)?;
///     println!("{} wrote: {}", io.peer_addr(), line.trim_end());
///     io.wfile.write_all(line.to_uppercase().as_bytes())?;
///     Ok(())
/// });
/// let mut server = Server::bind("127.0.0.1:9999", Sequential, upper)?;
/// server.serve_forever()?;
/// # Ok::<(), socketserver::Error>(())
/// ```
pub struct StreamRequestHandler<F> {
    handle: F,
    timeout: Option<Duration>,
    nodelay: bool,
}

impl<F> std::fmt::Debug for StreamRequestHandler<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRequestHandler")
            .field("timeout", &self.timeout)
            .field("disable_nagle_algorithm", &self.nodelay)
            .finish_non_exhaustive()
    }
}

/// What a [`StreamRequestHandler`]'s closure gets: the buffered reader and writer over one
/// connection (Python's `self.rfile`, `self.wfile`), the peer and the server.
#[derive(Debug)]
pub struct StreamIo<'a> {
    /// The buffered reader over the connection (Python's `rfile`; `BufRead` gives `read_line`).
    pub rfile: BufReader<&'a Stream>,
    /// The buffered writer over the connection (Python's `wfile`), flushed when the handler
    /// returns.
    pub wfile: BufWriter<&'a Stream>,
    peer_addr: &'a Addr,
    server: &'a ServerContext,
}

impl StreamIo<'_> {
    /// The client's address (Python's `self.client_address`).
    pub fn peer_addr(&self) -> &Addr {
        self.peer_addr
    }

    /// The server (Python's `self.server`).
    pub fn server(&self) -> &ServerContext {
        self.server
    }
}

impl<F> StreamRequestHandler<F>
where
    F: Fn(&mut StreamIo<'_>) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    /// A handler that runs `handle` once per connection with its reader and writer; no timeout,
    /// Nagle's algorithm on (Python's defaults).
    pub fn new(handle: F) -> StreamRequestHandler<F> {
        StreamRequestHandler { handle, timeout: None, nodelay: false }
    }

    /// Python's `timeout`: how long one read or write may wait (`None`: forever).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Python's `disable_nagle_algorithm`: `TCP_NODELAY` on the connection.
    pub fn disable_nagle_algorithm(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }
}

impl<F> RequestHandler for StreamRequestHandler<F>
where
    F: Fn(&mut StreamIo<'_>) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    fn setup(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        let stream = conn.stream();
        // Python's setup: settimeout, then TCP_NODELAY if asked.
        if self.timeout.is_some() {
            stream.set_read_timeout(self.timeout)?;
            stream.set_write_timeout(self.timeout)?;
        }
        if self.nodelay {
            stream.set_nodelay(true)?;
        }
        Ok(())
    }

    fn handle(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        let (stream, peer_addr, server) = conn.stream_parts();
        let mut io =
            StreamIo { rfile: BufReader::new(stream), wfile: BufWriter::new(stream), peer_addr, server };
        let handled = (self.handle)(&mut io);
        // Python's finish: flush wfile, even after a failed handle.
        let flushed = io.wfile.flush();
        handled?;
        Ok(flushed?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Read};
    use std::os::unix::net::UnixStream;

    #[test]
    fn reads_a_line_writes_it_upper_cased_and_flushes() {
        let upper = StreamRequestHandler::new(|io: &mut StreamIo<'_>| {
            let mut line = String::new();
            io.rfile.read_line(&mut line)?;
            io.wfile.write_all(line.to_uppercase().as_bytes())?;
            Ok(())
        })
        .timeout(Some(Duration::from_secs(5)))
        .disable_nagle_algorithm(true);
        let (server_side, mut client) = UnixStream::pair().unwrap();
        let mut conn =
            Connection::new(server_side, Addr::Unnamed, ServerContext::standalone(Addr::Unnamed).unwrap());
        client.write_all(b"hello\n").unwrap();
        upper.setup(&mut conn).unwrap();
        upper.handle(&mut conn).unwrap();
        assert_eq!(conn.stream().read_timeout().unwrap(), Some(Duration::from_secs(5)));
        drop(conn);
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "HELLO\n");
    }

    #[test]
    fn a_timeout_turns_a_silent_client_into_an_error() {
        let wait = StreamRequestHandler::new(|io: &mut StreamIo<'_>| {
            let mut line = String::new();
            io.rfile.read_line(&mut line)?;
            Ok(())
        })
        .timeout(Some(Duration::from_millis(50)));
        let (server_side, _client) = UnixStream::pair().unwrap();
        let mut conn =
            Connection::new(server_side, Addr::Unnamed, ServerContext::standalone(Addr::Unnamed).unwrap());
        wait.setup(&mut conn).unwrap();
        let e = wait.handle(&mut conn).unwrap_err();
        let io = e.downcast_ref::<std::io::Error>().expect("an I/O error");
        assert!(matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{io}");
    }
}
