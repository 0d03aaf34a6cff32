//! [`Stream`]: a connected stream socket, TCP or Unix.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::Addr;

/// One accepted connection's socket: TCP or a Unix stream socket. It reads and writes like a
/// [`TcpStream`] (`Read` and `Write` for `Stream` and for `&Stream`), and has the handful of
/// socket calls a handler needs.
///
/// Why an enum and not a trait object or a type parameter: the two kinds differ in two places
/// only (the address type and Nagle's algorithm, which Unix sockets do not have), a `match` is
/// all it takes, and every strategy, the HTTP layer and the reactor keep one concrete type.
/// The variants are public: a handler that needs a TCP-only option matches on
/// [`Stream::Tcp`].
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection (IPv4 or IPv6).
    Tcp(TcpStream),
    /// A Unix stream socket connection.
    Unix(UnixStream),
}

/// One expression for both variants: `each!(self, s => s.method())`.
macro_rules! each {
    ($stream:expr, $s:ident => $body:expr) => {
        match $stream {
            Stream::Tcp($s) => $body,
            Stream::Unix($s) => $body,
        }
    };
}

impl Stream {
    /// The address of the other end: an [`Addr::Inet`] for TCP; for Unix, the client's path if
    /// it bound one, else [`Addr::Unnamed`].
    pub fn peer_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(Addr::Inet),
            Stream::Unix(s) => s.peer_addr().map(Addr::from),
        }
    }

    /// The address of this end.
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(Addr::Inet),
            Stream::Unix(s) => s.local_addr().map(Addr::from),
        }
    }

    /// `shutdown(2)`: stop reading, writing or both (a half-close sends FIN after queued data).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        each!(self, s => s.shutdown(how))
    }

    /// `SO_RCVTIMEO`: a blocking read fails with `WouldBlock` after `timeout` (`None`: never).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, s => s.set_read_timeout(timeout))
    }

    /// `SO_SNDTIMEO`: a blocking write fails with `WouldBlock` after `timeout` (`None`: never).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, s => s.set_write_timeout(timeout))
    }

    /// The read timeout set with [`set_read_timeout`](Stream::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        each!(self, s => s.read_timeout())
    }

    /// `O_NONBLOCK` on or off.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        each!(self, s => s.set_nonblocking(on))
    }

    /// `TCP_NODELAY` (Python's `disable_nagle_algorithm`): send small writes at once instead of
    /// waiting to coalesce them. A Unix socket has no Nagle's algorithm, so there it does
    /// nothing and succeeds.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(on),
            Stream::Unix(_) => Ok(()),
        }
    }

    /// `TCP_NOTSENT_LOWAT`: the kernel takes a write only while less than `bytes` of what
    /// was written before is still waiting to be sent, and reports the socket writable only
    /// then. Data in flight (sent, not yet acknowledged) does not count, so a fast client on a
    /// long path is not slowed; what it bounds is the queue in front of a client that reads
    /// slowly or not at all, which without it grows with the send buffer (to 4 MiB by
    /// default on Linux). A Unix socket has no such queue limit: there it does nothing and
    /// succeeds.
    pub fn set_notsent_lowat(&self, bytes: u32) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => socket2::SockRef::from(s).set_tcp_notsent_lowat(bytes),
            Stream::Unix(_) => Ok(()),
        }
    }

    /// A second handle to the same socket (`dup(2)`).
    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    /// The TCP stream, if this is one.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(s) => Some(s),
            Stream::Unix(_) => None,
        }
    }

    /// The Unix stream, if this is one.
    pub fn as_unix(&self) -> Option<&UnixStream> {
        match self {
            Stream::Unix(s) => Some(s),
            Stream::Tcp(_) => None,
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Tcp(s)
    }
}

impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Stream {
        Stream::Unix(s)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        each!(self, s => s.read(buf))
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        each!(self, s => s.read_vectored(bufs))
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        each!(*self, s => (&*s).read(buf))
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        each!(*self, s => (&*s).read_vectored(bufs))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        each!(self, s => s.write(buf))
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        each!(self, s => s.write_vectored(bufs))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        each!(*self, s => (&*s).write(buf))
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        each!(*self, s => (&*s).write_vectored(bufs))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        each!(self, s => s.as_fd())
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        each!(self, s => s.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_pair_reads_and_writes_like_tcp() {
        let (a, b) = UnixStream::pair().unwrap();
        let (a, b) = (Stream::from(a), Stream::from(b));
        (&a).write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        (&b).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(b.peer_addr().unwrap(), Addr::Unnamed);
        a.set_nodelay(true).unwrap(); // no Nagle on Unix sockets: a no-op that succeeds
        a.set_notsent_lowat(1 << 17).unwrap(); // nor an unsent limit: the same
        a.shutdown(Shutdown::Write).unwrap();
        assert_eq!((&b).read(&mut buf).unwrap(), 0, "FIN after the half-close");
    }

    #[test]
    fn the_unsent_limit_is_set_on_a_tcp_stream() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let served = Stream::from(listener.accept().unwrap().0);
        served.set_notsent_lowat(128 * 1024).unwrap();
        assert_eq!(socket2::SockRef::from(served.as_tcp().unwrap()).tcp_notsent_lowat().unwrap(), 128 * 1024);
        drop(client);
    }
}
