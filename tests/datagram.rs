//! Datagram servers (UDP and Unix datagram) in-process, for the strategies that do not fork:
//! every datagram is a request, answered on the server's socket; oversized ones are reported
//! as truncated; empty ones are requests too; an unnamed Unix sender cannot be answered and
//! that is an error for `handle_error`, not a crash. (Forking datagram servers run as child
//! processes in tests/echo.rs: never fork inside this harness.)

mod common;

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::TempDir;
use socketserver::{
    Addr, Concurrency, Datagram, DatagramHandler, Error, EventLoop, HandlerError, Pool, Sequential, Server,
    ServerBuilder, Threading, datagram_fn,
};

/// Upper-cases the datagram and says how long it was and whether it was cut.
fn upper() -> impl DatagramHandler {
    datagram_fn(|d: &mut Datagram| {
        let reply = format!(
            "{} {} {}",
            String::from_utf8_lossy(d.packet()).to_uppercase(),
            d.original_len(),
            d.truncated()
        );
        d.send(reply.as_bytes())?;
        Ok(())
    })
}

fn serve<C: Concurrency + Send + 'static, H: socketserver::RequestHandler>(
    mut server: Server<C, H>,
) -> (socketserver::ShutdownHandle, thread::JoinHandle<()>) {
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || {
        server.serve_forever().unwrap();
        server.server_close();
    });
    (stop, t)
}

fn ask_udp(addr: std::net::SocketAddr, msg: &[u8]) -> String {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.send_to(msg, addr).unwrap();
    let mut buf = [0u8; 70_000];
    let n = c.recv(&mut buf).expect("an answer");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn a_udp_server_answers_every_datagram_on_every_non_forking_strategy() {
    fn check<C: Concurrency + Send + 'static>(c: C) {
        let server = Server::bind_udp("127.0.0.1:0", c, upper()).unwrap();
        let addr = server.local_addr().as_inet().unwrap();
        let (stop, t) = serve(server);
        assert_eq!(ask_udp(addr, b"hello"), "HELLO 5 false");
        assert_eq!(ask_udp(addr, b""), " 0 false", "an empty datagram is a request too");
        // 20 clients at once: all answered.
        let clients: Vec<_> =
            (0..20).map(|i| thread::spawn(move || ask_udp(addr, format!("c{i}").as_bytes()))).collect();
        for (i, c) in clients.into_iter().enumerate() {
            assert_eq!(c.join().unwrap(), format!("C{i} {} false", format!("c{i}").len()));
        }
        stop.shutdown().unwrap();
        t.join().unwrap();
    }
    check(Sequential);
    check(Threading::new());
    check(Pool::new(2));
}

#[test]
fn an_oversized_datagram_is_reported_truncated_not_silently_cut() {
    let server =
        ServerBuilder::new().max_packet_size(8192).bind_udp("127.0.0.1:0", Sequential, upper()).unwrap();
    let addr = server.local_addr().as_inet().unwrap();
    let (stop, t) = serve(server);
    let reply = ask_udp(addr, &[b'x'; 9000]);
    assert!(reply.ends_with(" 9000 true"), "{}", &reply[reply.len() - 20..]);
    assert_eq!(reply.len(), 8192 + " 9000 true".len(), "the packet kept is max_packet_size bytes");
    stop.shutdown().unwrap();
    t.join().unwrap();
}

#[test]
fn the_written_reply_is_sent_after_finish_and_not_after_a_failure() {
    use std::io::Write;
    let reply_by_write = datagram_fn(|d: &mut Datagram| {
        if d.packet() == b"fail" {
            d.write_all(b"half a reply")?;
            return Err("refused".into());
        }
        let up = d.packet().to_ascii_uppercase();
        d.write_all(&up)?;
        d.write_all(b"!")?;
        Ok(())
    });
    let server = Server::bind_udp("127.0.0.1:0", Threading::new(), reply_by_write).unwrap();
    let addr = server.local_addr().as_inet().unwrap();
    let (stop, t) = serve(server);
    assert_eq!(ask_udp(addr, b"wfile"), "WFILE!");
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    c.send_to(b"fail", addr).unwrap();
    let mut buf = [0u8; 64];
    assert!(c.recv(&mut buf).is_err(), "a failed handler sends no half reply");
    stop.shutdown().unwrap();
    t.join().unwrap();
}

#[test]
fn a_client_that_vanishes_before_the_reply_leaves_the_server_serving() {
    let slow = datagram_fn(|d: &mut Datagram| {
        thread::sleep(Duration::from_millis(100));
        d.send(b"late")?;
        Ok(())
    });
    let server = Server::bind_udp("127.0.0.1:0", Threading::new(), slow).unwrap();
    let addr = server.local_addr().as_inet().unwrap();
    let (stop, t) = serve(server);
    {
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        gone.send_to(b"bye", addr).unwrap();
    } // closed before the answer: the kernel answers "port unreachable"
    thread::sleep(Duration::from_millis(300));
    assert_eq!(ask_udp(addr, b"still there?"), "late");
    stop.shutdown().unwrap();
    t.join().unwrap();
}

/// Counts `handle_error` calls.
struct Counting(Arc<AtomicUsize>);
impl DatagramHandler for Counting {
    fn handle(&self, d: &mut Datagram) -> Result<(), HandlerError> {
        d.send(&d.packet().to_ascii_uppercase())?;
        Ok(())
    }
    fn handle_error(&self, peer: &Addr, error: &HandlerError) {
        assert_eq!(*peer, Addr::Unnamed);
        assert!(error.to_string().contains("has no name"), "{error}");
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_unix_datagram_server_answers_named_clients_and_reports_unnamed_ones() {
    let dir = TempDir::new("dgram-unix");
    let path = dir.join("echo.sock");
    let errors = Arc::new(AtomicUsize::new(0));
    let server = Server::bind_unix_datagram(&path, Threading::new(), Counting(Arc::clone(&errors))).unwrap();
    assert_eq!(server.local_addr(), Addr::Unix(path.clone()));
    let (stop, t) = serve(server);
    let client = UnixDatagram::bind(dir.join("client.sock")).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client.send_to(b"hello", &path).unwrap();
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"HELLO");
    let unnamed = UnixDatagram::unbound().unwrap();
    unnamed.send_to(b"who am i", &path).unwrap();
    assert!(common::eventually(Duration::from_secs(10), || errors.load(Ordering::SeqCst) == 1));
    stop.shutdown().unwrap();
    t.join().unwrap();
    assert!(!path.exists(), "the socket file is removed on close");
}

#[test]
fn datagram_servers_refuse_what_cannot_work() {
    let e = Server::bind_udp("127.0.0.1:0", EventLoop::new(), upper()).map(|_| ()).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
    let e = ServerBuilder::new()
        .max_packet_size(0)
        .bind_udp("127.0.0.1:0", Sequential, upper())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
    // A UDP port in use.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = Server::bind_udp(taken.local_addr().unwrap(), Sequential, upper()).map(|_| ()).unwrap_err();
    assert!(matches!(e, Error::Bind { .. }), "{e}");
    // A directory at the Unix datagram path is refused and kept.
    let dir = TempDir::new("dgram-refuse");
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let e = Server::bind_unix_datagram(&sub, Sequential, upper()).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("a directory is at this path"), "{e}");
    assert!(sub.is_dir());
}
