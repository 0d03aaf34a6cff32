//! Tiny in-test servers for the client's unit tests: an HTTP server on a Unix socket and the
//! upper-casing echo server over TCP, UDP, Unix stream and Unix datagram. Each runs on threads
//! of the test process (never a fork); they live until the test process ends.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;

/// A Unix stream listener at `path` with a queue of one (`listen(0)`: one connection may wait
/// unaccepted, the next connect finds it full), serving one connection at a time with
/// [`serve_http`] if `serves`, or never accepting at all.
pub(crate) fn unix_http_backlog_of_one(path: &Path, serves: bool) -> socket2::Socket {
    use socket2::{Domain, SockAddr, Socket, Type};
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
    listener.bind(&SockAddr::unix(path).expect("path")).expect("bind");
    listener.listen(0).expect("listen");
    if serves {
        let accepting = listener.try_clone().expect("dup");
        thread::spawn(move || {
            while let Ok((conn, _)) = accepting.accept() {
                serve_http(UnixStream::from(std::os::fd::OwnedFd::from(conn)));
            }
        });
    }
    listener
}

/// A fresh directory for one test's socket files, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("course-client-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Upper-cases the line (as Python's example does, stripped and without a newline), or
/// sends it back as it came when `upper` is false.
fn answer(line: &[u8], upper: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    if upper { text.trim().to_uppercase().into_bytes() } else { text.trim().as_bytes().to_vec() }
}

/// Python's `MyTCPHandler`: read one line, answer it, close.
fn serve_line<S: Read + Write>(stream: S, upper: bool) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).is_ok() {
        let _ = reader.get_mut().write_all(&answer(&line, upper));
    }
}

/// The echo server over TCP on 127.0.0.1:0, a thread per connection; `upper` false makes it
/// a broken one that does not upper-case.
pub(crate) fn tcp_echo(upper: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve_line(stream, upper));
        }
    });
    addr
}

/// The echo server over a Unix stream socket at `path`.
pub(crate) fn unix_echo(path: &Path) {
    let listener = UnixListener::bind(path).expect("bind");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve_line(stream, true));
        }
    });
}

/// The echo server over UDP on 127.0.0.1:0; with `answers` false it reads every datagram and
/// never answers (a reply lost every time).
pub(crate) fn udp_echo(answers: bool) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("local_addr");
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if answers {
                let _ = socket.send_to(&answer(&buf[..n], true), peer);
            }
        }
    });
    addr
}

/// The echo server over a Unix datagram socket at `path`: it answers to the sender's bound
/// path, as Python's `UnixDatagramServer` does.
pub(crate) fn unix_dgram_echo(path: &Path) {
    let socket = UnixDatagram::bind(path).expect("bind");
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if let Some(to) = peer.as_pathname() {
                let _ = socket.send_to(&answer(&buf[..n], true), to);
            }
        }
    });
}

/// A keep-alive HTTP/1.1 server on a Unix socket at `path`, a thread per connection: every
/// request gets `200 OK` with a 5-byte body, and the connection is closed after a request that
/// says `Connection: close`.
pub(crate) fn unix_http(path: &Path) {
    let listener = UnixListener::bind(path).expect("bind");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve_http(stream));
        }
    });
}

/// Serves HTTP requests on one connection until the client closes it or asks to.
pub(crate) fn serve_http(stream: UnixStream) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut close = false;
        let mut any = false;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            any = true;
            close |= line.to_ascii_lowercase().starts_with("connection: close");
        }
        if !any {
            return;
        }
        let pid = std::process::id();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Pid: {pid}\r\nX-Tid: {pid}\r\n{}\r\nhello",
            if close { "Connection: close\r\n" } else { "" }
        );
        if reader.get_mut().write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}
