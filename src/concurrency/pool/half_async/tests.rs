//! The driver end to end over real sockets, with a tiny protocol standing in for `HttpConn`: a
//! request is a line, the answer is the line upper-cased.

use super::*;
use crate::Pool;
use crate::concurrency::Concurrency;
use crate::handler::{Connection, ServerContext};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Longest line accepted; a longer one is refused with `ERR\n` and a close.
const MAX_LINE: usize = 4096;

struct LineConn {
    buf: Vec<u8>,
    filled: usize,
    out: Vec<u8>,
    out_pos: usize,
    out_now: bool,
    eof: bool,
    closing: bool,
    stopping: bool,
    idle: Duration,
    last: Instant,
    /// Counts the writes (`sent` calls) of every connection of its `Upper`.
    writes: Arc<AtomicUsize>,
}

impl ConnMachine for LineConn {
    type Request = Vec<u8>;
    type Answer = Vec<u8>;

    fn read_buf(&mut self) -> &mut [u8] {
        let want = (self.filled + 1024).min(MAX_LINE);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        &mut self.buf[self.filled..]
    }
    fn received(&mut self, n: usize, now: Instant) {
        self.last = now;
        if n == 0 {
            self.eof = true;
        }
        self.filled += n;
    }
    fn next_request(&mut self, _now: Instant) -> Option<Vec<u8>> {
        if self.out_now || self.closing {
            return None;
        }
        match self.buf[..self.filled].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = self.buf[..i].to_vec();
                self.buf.copy_within(i + 1..self.filled, 0);
                self.filled -= i + 1;
                self.out_now = true;
                Some(line)
            }
            None => {
                if self.filled >= MAX_LINE {
                    self.out.extend_from_slice(b"ERR\n");
                    self.closing = true;
                }
                None
            }
        }
    }
    fn respond(&mut self, _request: Vec<u8>, answer: Vec<u8>, now: Instant) {
        self.out.extend_from_slice(&answer);
        self.out.push(b'\n');
        self.out_now = false;
        self.last = now;
        if self.stopping {
            self.closing = true;
        }
    }
    fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }
    fn sent(&mut self, n: usize, now: Instant) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.out_pos += n;
        self.last = now;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }
    fn failed(&mut self) {
        self.closing = true;
        self.out.clear();
        self.out_pos = 0;
    }
    fn wants(&self) -> Want {
        if self.out_now {
            Want::Service
        } else if !self.output().is_empty() {
            Want::Write
        } else if self.closing || (self.eof && !self.buf[..self.filled].contains(&b'\n')) {
            Want::Drain
        } else {
            Want::Read
        }
    }
    fn deadline(&self) -> Option<Instant> {
        if self.out_now { None } else { Some(self.last + self.idle) }
    }
    fn timed_out(&mut self, _now: Instant) {
        self.closing = true;
    }
    fn stopping(&mut self, _now: Instant) {
        self.stopping = true;
        if self.filled == 0 && !self.out_now && self.output().is_empty() {
            self.closing = true;
        }
    }
}

/// The service: upper-cases; waits at a gate while it is closed (the slow service).
struct Upper {
    idle: Duration,
    /// How long `new_conn` takes (0 but in one test): a reactor pass that accepts a few
    /// connections then takes longer than the sentry's tick.
    accept_nap: Duration,
    calls: AtomicUsize,
    writes: Arc<AtomicUsize>,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Upper {
    fn new(idle: Duration, open: bool) -> Arc<Upper> {
        Arc::new(Upper {
            idle,
            accept_nap: Duration::ZERO,
            calls: AtomicUsize::new(0),
            writes: Arc::new(AtomicUsize::new(0)),
            open: Mutex::new(open),
            opened: Condvar::new(),
        })
    }
    /// A gated service whose `new_conn` takes `nap`.
    fn slow_to_accept(nap: Duration) -> Arc<Upper> {
        let mut upper = Arc::into_inner(Upper::new(Duration::from_secs(30), false)).unwrap();
        upper.accept_nap = nap;
        Arc::new(upper)
    }
    fn open_gate(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
    fn close_gate(&self) {
        *self.open.lock().unwrap() = false;
    }
}

impl Machines for Upper {
    type Conn = LineConn;
    fn new_conn(&self, _peer: Addr, now: Instant) -> LineConn {
        if !self.accept_nap.is_zero() {
            std::thread::sleep(self.accept_nap);
        }
        LineConn {
            buf: Vec::new(),
            filled: 0,
            out: Vec::new(),
            out_pos: 0,
            out_now: false,
            eof: false,
            closing: false,
            stopping: false,
            idle: self.idle,
            last: now,
            writes: Arc::clone(&self.writes),
        }
    }
    fn call(&self, request: &Vec<u8>) -> Later<Vec<u8>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        // A line that starts with "now" is never held at the gate: the fast request beside a
        // slow one.
        while !*open && !request.starts_with(b"now") {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        // "nap": a service of a few milliseconds, for clients that keep the pool busy.
        if request.starts_with(b"nap") {
            std::thread::sleep(Duration::from_millis(5));
        }
        Later::Now(request.to_ascii_uppercase())
    }
    fn shed(&self, _request: &Vec<u8>, retry_after: Duration) -> Vec<u8> {
        format!("BUSY {}", retry_after.as_secs()).into_bytes()
    }
}

/// A pool serving `machines` on 127.0.0.1:0 through an accept loop that does what `Server`
/// does: accept only while `has_capacity`, else `wait_for_capacity`.
struct Served {
    addr: SocketAddr,
    pool: Arc<Mutex<Pool>>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Its service, whose gate a failing test leaves closed: `Drop` opens it, or the pool's
    /// own `Drop` would wait for ever for the workers held there (a failed assertion became
    /// a CI run that never ended).
    machines: Arc<Upper>,
}

fn serve(pool: Pool, machines: Arc<Upper>) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let pool = Arc::new(Mutex::new(pool));
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (p, s, a) = (Arc::clone(&pool), Arc::clone(&stop), Arc::clone(&accepted));
    let upper = Arc::clone(&machines);
    let thread = std::thread::spawn(move || {
        let ctx = ServerContext::standalone(addr).unwrap();
        while !s.load(Ordering::SeqCst) {
            {
                let mut pool = p.lock().unwrap();
                // As the server loop does, once per pass (it pre-starts the byte-stream workers,
                // which the first sans-IO connection stops again).
                pool.service_actions();
                if !pool.has_capacity() {
                    pool.wait_for_capacity(Duration::from_millis(20));
                    continue;
                }
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    a.fetch_add(1, Ordering::SeqCst);
                    let m = Arc::clone(&machines);
                    p.lock().unwrap().process_machine(Connection::new(stream, peer, ctx.clone()), || Some(m));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Wait for a connection (bounded, so `stop` is seen).
                    let fd = listener.as_raw_fd();
                    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                    // SAFETY: one valid pollfd on the stack, for the duration of the call.
                    unsafe { libc::poll(&mut pfd, 1, 20) };
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    Served { addr, pool, stop, accepted, thread: Some(thread), machines: upper }
}

/// A pool serving `machines` on 127.0.0.1:0 as `Server::serve_forever` runs it: the reactor
/// accepts from its own listener, and (unless `pool` says otherwise) the workers take turns at
/// it, leader/followers. No accept loop.
fn serve_lead(pool: Pool, machines: Arc<Upper>) -> Served {
    let listener = crate::transport::bind_tcp(
        "127.0.0.1:0".parse().unwrap(),
        crate::transport::ListenOptions::default(),
    )
    .unwrap();
    let addr = match listener.local_addr().unwrap() {
        Addr::Inet(a) => a,
        other => panic!("not TCP: {other}"),
    };
    let mut pool = pool;
    assert!(pool.start_half_async(Arc::clone(&machines), Some(listener)));
    pool.half_async.as_ref().unwrap().set_accepting(true);
    let pool = Arc::new(Mutex::new(pool));
    Served {
        addr,
        pool,
        stop: Arc::new(AtomicBool::new(false)),
        accepted: Arc::new(AtomicUsize::new(0)),
        thread: None,
        machines,
    }
}

/// Whether the pool runs leader/followers (no reactor thread of its own).
fn leads(served: &Served) -> bool {
    served.pool.lock().unwrap().half_async.as_ref().is_some_and(|h| h.reactor.is_none())
}

impl Served {
    fn stats(&self) -> Stats {
        self.pool.lock().unwrap().half_async.as_ref().map(|h| h.stats()).unwrap_or_default()
    }
    fn close(mut self) -> Pool {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let mut pool = self.pool.lock().unwrap();
        pool.server_close();
        std::mem::replace(&mut *pool, Pool::new(1))
    }
}

/// A test that fails before `close` still stops and joins its accept loop and lets its workers
/// out of the service's gate; the `Pool` is closed by its own `Drop` when the last share of it
/// goes.
impl Drop for Served {
    fn drop(&mut self) {
        self.machines.open_gate();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits (bounded) until `cond` holds.
fn until(mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if cond() {
            return true;
        }
        std::thread::yield_now();
    }
    cond()
}

fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// `n` clients, client `i` having sent the line `c{i}`.
fn clients_each_sending_a_line(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut clients: Vec<TcpStream> = (0..n).map(|_| client(addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("c{i}\n").as_bytes()).unwrap();
    }
    clients
}

/// Every client of `clients_each_sending_a_line` gets its answer, `C{i}`.
fn each_answered(clients: &mut [TcpStream]) {
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(read_lines(c, 1), vec![format!("C{i}")]);
    }
}

/// Reads `n` lines.
fn read_lines(s: &mut TcpStream, n: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    let mut lines = 0;
    while lines < n {
        let k = s.read(&mut buf).expect("read");
        assert!(k > 0, "EOF after {lines} lines");
        lines += buf[..k].iter().filter(|&&b| b == b'\n').count();
        all.extend_from_slice(&buf[..k]);
    }
    String::from_utf8(all).unwrap().lines().map(str::to_owned).collect()
}

fn pipelined_lines_are_answered_in_order_and_together_on(serve: fn(Pool, Arc<Upper>) -> Served) {
    let machines = Upper::new(Duration::from_secs(10), true);
    let writes = Arc::clone(&machines.writes);
    let served = serve(Pool::new(2), machines);
    let mut c = client(served.addr);
    let lines: Vec<String> = (0..200).map(|i| format!("line {i} abc")).collect();
    // All in one write: the reactor reads them at once, and hands them out one at a time, to
    // one worker, which answers every one it was given before it writes.
    c.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    let got = read_lines(&mut c, lines.len());
    let want: Vec<String> = lines.iter().map(|l| l.to_uppercase()).collect();
    assert_eq!(got, want);
    // One write per read that brought lines in (2.6 kB, usually one read), not one per line;
    // a generous bound, for reads the kernel splits.
    let w = writes.load(Ordering::SeqCst);
    assert!(w <= 20, "{w} writes for 200 pipelined lines");
    // The last worker counts itself idle just after it sent the last answer: wait for it.
    assert!(until(|| served.pool.lock().unwrap().busy() == 0));
    let pool = served.pool.lock().unwrap();
    // Two workers, the half-async ones: the byte-stream workers are gone, and nothing parked
    // with their poller.
    assert_eq!((pool.workers(), pool.busy()), (2, 0));
    assert!(pool.shared.is_none() && pool.poller.is_none());
    drop(pool);
    let pool = served.close();
    assert_eq!(pool.workers(), 0, "close joined the workers");
}

fn a_silent_client_holds_no_worker_and_is_closed_at_its_deadline_on(serve: fn(Pool, Arc<Upper>) -> Served) {
    // One worker: if the silent client held it, nobody else would be answered.
    let served = serve(Pool::new(1), Upper::new(Duration::from_millis(300), true));
    let mut silent = client(served.addr);
    assert!(until(|| served.stats().connections == 1), "{:?}", served.stats());
    let mut other = client(served.addr);
    other.write_all(b"hello\n").unwrap();
    assert_eq!(read_lines(&mut other, 1), vec!["HELLO"]);
    // The worker writes the answer itself, then counts itself idle: wait for that.
    assert!(until(|| served.pool.lock().unwrap().busy() == 0));
    // The silent one is closed at its idle deadline (EOF, not a reset), by a reactor timer.
    let t0 = Instant::now();
    let mut b = [0u8; 16];
    assert_eq!(silent.read(&mut b).expect("a clean close"), 0);
    assert!(t0.elapsed() < Duration::from_secs(5));
    served.close();
}

fn a_slow_reader_holds_no_worker_on(serve: fn(Pool, Arc<Upper>) -> Served) {
    let upper = Upper::new(Duration::from_secs(30), true);
    let served = serve(Pool::new(1), Arc::clone(&upper));
    // A client that sends 16 MB of lines and reads nothing: the answers fill the socket buffers
    // (its receive buffer is made small) and the reactor waits for writability, no worker held.
    let line = "x".repeat(999) + "\n";
    let n_lines = 16_000;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&served.addr.into()).unwrap();
    let mut slow: TcpStream = sock.into();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        for _ in 0..n_lines {
            if writer.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    });
    assert!(until(|| upper.calls.load(Ordering::SeqCst) >= 500));
    // The only worker is free for someone else while the slow reader's output waits.
    let mut other = client(served.addr);
    other.write_all(b"still served\n").unwrap();
    assert_eq!(read_lines(&mut other, 1), vec!["STILL SERVED"]);
    let calls = upper.calls.load(Ordering::SeqCst);
    assert!(calls < n_lines, "the slow reader's lines were not all served yet: {calls}");
    // Now it reads: everything arrives, in order.
    let got = read_lines(&mut slow, n_lines);
    assert!(got.iter().all(|l| l.len() == 999 && l.bytes().all(|b| b == b'X')));
    w.join().unwrap();
    served.close();
}

#[test]
fn a_full_queue_stops_reading_and_accepting_and_memory_stays_bounded() {
    let upper = Upper::new(Duration::from_secs(30), false);
    // One worker, room for two requests: at most three requests are out at a time.
    let served = serve(Pool::new(1).queue_size(2), Arc::clone(&upper));
    let n = 30;
    let mut clients = clients_each_sending_a_line(served.addr, n);
    // The worker is in the (closed) service, the queue is full.
    // (`in_service` is the reactor's count, published at the end of its pass: wait for it too,
    // and for every connection taken to have been read once: a request that arrived after its
    // connection was accepted is read on a later pass, which a loaded machine may delay.)
    assert!(until(|| {
        let s = served.stats();
        s.busy == 1 && s.queued == 2 && s.in_service == 3 && s.connections == s.in_service + s.stalled
    }));
    // Back-pressure: no room, so the server accepts no more; nothing beyond the bound queued.
    assert!(!served.pool.lock().unwrap().has_capacity());
    let s = served.stats();
    assert_eq!((s.busy, s.queued, s.in_service), (1, 2, 3), "{s:?}");
    assert_eq!(upper.calls.load(Ordering::SeqCst), 1);
    // Every other connection the reactor took is stalled (read at most once, not read again).
    assert_eq!(s.connections, s.in_service + s.stalled, "{s:?}");
    let accepted_while_full = served.accepted.load(Ordering::SeqCst);
    assert!(accepted_while_full <= n);
    // Open the gate: everyone is answered, the backlog accepted as room appears.
    upper.open_gate();
    each_answered(&mut clients);
    assert_eq!(served.accepted.load(Ordering::SeqCst), n);
    assert_eq!(upper.calls.load(Ordering::SeqCst), n);
    served.close();
}

#[test]
fn a_full_queue_stops_reading_and_accepting_leader_followers() {
    let upper = Upper::new(Duration::from_secs(30), false);
    // Two workers, room for two requests. A leader that finds the queue full stalls the rest
    // (which stay in epoll: a leader runs a job after every pass that leaves the queue full),
    // runs the first request and blocks; the other worker takes the reactor from it and runs
    // the next. Then every worker is busy and nobody reads or accepts: the clients wait,
    // stalled, in the queue or in the backlog (how many of each depends on how far the
    // reactor got before the workers were taken).
    let served = serve_lead(Pool::new(2).queue_size(2), Arc::clone(&upper));
    assert!(leads(&served));
    let n = 30;
    let mut clients = clients_each_sending_a_line(served.addr, n);
    assert!(
        until(|| upper.calls.load(Ordering::SeqCst) == 2 && served.stats().busy == 2),
        "{:?}",
        served.stats()
    );
    // Nothing moves now: no busy loop over the stalled connections' readiness (no thread is
    // left to run one), no more calls, no more accepts, nothing queued beyond the bound.
    let frozen = served.stats();
    std::thread::sleep(Duration::from_millis(50));
    let s = served.stats();
    assert_eq!(s, frozen);
    assert!(s.queued <= 2 && s.in_service == s.busy + s.queued, "{s:?}");
    assert_eq!(upper.calls.load(Ordering::SeqCst), 2);
    upper.open_gate();
    each_answered(&mut clients);
    assert_eq!(upper.calls.load(Ordering::SeqCst), n);
    served.close();
}

/// A leader whose pass runs longer than the sentry's tick before it queues its first request
/// (here each connection it accepts takes 3 ms; on a loaded machine, a leader preempted for a
/// moment) must still leave a sentry that watches the requests it queued. The sentry used to
/// take such a pass for a leader asleep in epoll_wait and sleep until the next pass; the leader
/// then ran the first request it had queued, which blocks here, and the second waited in the
/// queue beside the idle sentry for as long as the first took (for ever, at a closed gate).
#[test]
fn a_sentry_does_not_sleep_through_a_long_pass_that_queues_requests() {
    let upper = Upper::slow_to_accept(Duration::from_millis(3));
    let served = serve_lead(Pool::new(2).queue_size(2), Arc::clone(&upper));
    assert!(leads(&served));
    // A quiet server first: the sentry is in its deep sleep when the clients come.
    std::thread::sleep(Duration::from_millis(50));
    let mut clients = clients_each_sending_a_line(served.addr, 8);
    assert!(
        until(|| upper.calls.load(Ordering::SeqCst) == 2 && served.stats().busy == 2),
        "{:?}, {} calls",
        served.stats(),
        upper.calls.load(Ordering::SeqCst)
    );
    upper.open_gate();
    each_answered(&mut clients);
    served.close();
}

/// One request fills a queue of one: the pass that read it takes the listener out of epoll
/// (back-pressure). A worker then takes the request, which blocks, and the queue has room again
/// with nobody stalled: the reactor must put the listener back at once, not at its next timer
/// (the lent machine's check, 100 ms on), or a new client waits in the backlog beside an idle
/// worker. Seven rounds, of which six must be quick: with the delay, at least three of seven
/// waited the whole 100 ms (the others found a pass under way); without it, on one core beside
/// two busy loops, the slowest took 6 ms.
fn a_new_client_is_accepted_as_soon_as_a_full_queue_has_room_on(pool: Pool) {
    let upper = Upper::new(Duration::from_secs(30), false);
    let served = serve_lead(pool, Arc::clone(&upper));
    let mut slow = client(served.addr);
    let mut took = Vec::new();
    for round in 0..7 {
        let calls = upper.calls.load(Ordering::SeqCst);
        slow.write_all(format!("slow {round}\n").as_bytes()).unwrap();
        assert!(
            until(|| upper.calls.load(Ordering::SeqCst) == calls + 1 && served.stats().queued == 0),
            "{:?}",
            served.stats()
        );
        let t0 = Instant::now();
        let mut late = client(served.addr);
        late.write_all(b"now\n").unwrap();
        assert_eq!(read_lines(&mut late, 1), vec!["NOW"]);
        took.push(t0.elapsed());
        upper.open_gate();
        assert_eq!(read_lines(&mut slow, 1), vec![format!("SLOW {round}")]);
        upper.close_gate();
    }
    took.sort();
    assert!(took[5] < Duration::from_millis(50), "late clients took {took:?}");
    upper.open_gate();
    drop((slow, served.close()));
}

#[test]
fn a_new_client_is_accepted_as_soon_as_a_full_queue_has_room() {
    a_new_client_is_accepted_as_soon_as_a_full_queue_has_room_on(
        Pool::new(2).queue_size(1).leader_followers(false),
    );
}

#[test]
fn a_new_client_is_accepted_as_soon_as_a_full_queue_has_room_leader_followers() {
    a_new_client_is_accepted_as_soon_as_a_full_queue_has_room_on(Pool::new(2).queue_size(1));
}

/// Three kept-alive clients that always have a request ready keep a one-worker pool with room
/// for one more request full, so one of them is always stalled. A fourth client that connects
/// then must still be answered while they keep sending: it joins the line instead of waiting
/// in the backlog until nobody is stalled (which, while they send, is never).
fn a_new_client_is_not_starved_by_busy_kept_alive_ones_on(serve: fn(Pool, Arc<Upper>) -> Served, pool: Pool) {
    let upper = Upper::new(Duration::from_secs(30), true);
    let served = serve(pool, Arc::clone(&upper));
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..3)
        .map(|_| {
            let (addr, stop) = (served.addr, Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut c = client(addr);
                let mut n = 0;
                // Bounded: until told, or 2,000 requests (10 s of naps).
                while !stop.load(Ordering::SeqCst) && n < 2000 {
                    c.write_all(b"nap\n").unwrap();
                    assert_eq!(read_lines(&mut c, 1), vec!["NAP".to_string()]);
                    n += 1;
                }
                n
            })
        })
        .collect();
    // The hogs are served, so the pool is busy.
    assert!(until(|| upper.calls.load(Ordering::SeqCst) >= 30));
    let mut late = client(served.addr);
    late.write_all(b"nap late\n").unwrap();
    // read_lines fails after its 10 s read timeout; the hogs go on for up to 10 s.
    assert_eq!(read_lines(&mut late, 1), vec!["NAP LATE".to_string()]);
    let answered_while_busy = !hogs.iter().any(|h| h.is_finished());
    stop.store(true, Ordering::SeqCst);
    let served_by_hogs: Vec<usize> = hogs.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(answered_while_busy, "answered only once the hogs stopped: {served_by_hogs:?}");
    served.close();
}

#[test]
fn a_new_client_is_not_starved_by_busy_kept_alive_ones() {
    a_new_client_is_not_starved_by_busy_kept_alive_ones_on(serve, Pool::new(1).queue_size(1));
}

/// With the accept limit (prefork's workers): every thread has a request, so the accept loop
/// leaves connections to a sibling, but only for a grace; with no sibling, they come in.
#[test]
fn a_new_client_is_not_starved_by_busy_kept_alive_ones_with_an_accept_limit() {
    a_new_client_is_not_starved_by_busy_kept_alive_ones_on(serve, Pool::new(1).accept_only_when_idle(true));
}

#[test]
fn a_new_client_is_not_starved_by_busy_kept_alive_ones_leader_followers() {
    a_new_client_is_not_starved_by_busy_kept_alive_ones_on(serve_lead, Pool::new(1).queue_size(1));
}

#[test]
fn close_closes_idle_connections_and_finishes_the_one_in_progress() {
    close_closes_idle_connections_and_finishes_the_one_in_progress_on(serve, 1);
}

fn close_closes_idle_connections_and_finishes_the_one_in_progress_on(
    serve: fn(Pool, Arc<Upper>) -> Served,
    workers: usize,
) {
    let upper = Upper::new(Duration::from_secs(30), false);
    let served = serve(Pool::new(workers), Arc::clone(&upper));
    let mut idle = client(served.addr);
    let mut busy = client(served.addr);
    busy.write_all(b"last\n").unwrap();
    assert!(until(|| served.stats().busy == 1 && served.stats().connections == 2));
    let pool = Arc::clone(&served.pool);
    let closer = std::thread::spawn(move || served.close());
    // The idle one is closed at once; the request in progress is answered, then closed.
    let mut b = [0u8; 16];
    assert_eq!(idle.read(&mut b).expect("a clean close"), 0);
    upper.open_gate();
    assert_eq!(read_lines(&mut busy, 1), vec!["LAST"]);
    assert_eq!(busy.read(&mut b).expect("then a clean close"), 0);
    let pool_back = closer.join().unwrap();
    assert_eq!(pool_back.workers(), 0);
    drop(pool);
}

#[test]
fn shedding_answers_a_full_queue_at_once_and_keeps_accepting() {
    let upper = Upper::new(Duration::from_secs(30), false);
    // One worker, room for two requests: what does not fit is refused at once.
    let served = serve(Pool::new(1).queue_size(2).shed_when_full(Duration::from_secs(3)), Arc::clone(&upper));
    let n = 30;
    let mut clients = clients_each_sending_a_line(served.addr, n);
    // Every connection is accepted (no waiting in the backlog); two or three requests are out
    // (three if the worker took the first before the reactor read the third, two if not: the
    // bound counts queued requests) and the rest were refused without a worker, none stalled.
    assert!(
        until(|| {
            let s = served.stats();
            // `busy` counts the worker once it took the job, a moment before it calls the
            // service: wait for the call too.
            s.busy == 1 && s.in_service as u64 + s.shed == n as u64 && upper.calls.load(Ordering::SeqCst) == 1
        }),
        "{:?}",
        served.stats()
    );
    let s = served.stats();
    assert!(matches!((s.in_service, s.queued), (3, 2) | (2, 1)), "{s:?}");
    assert_eq!(s.stalled, 0, "{s:?}");
    let out = s.in_service;
    assert_eq!(served.accepted.load(Ordering::SeqCst), n);
    assert!(served.pool.lock().unwrap().has_capacity(), "a shedding pool keeps accepting");
    assert_eq!(served.pool.lock().unwrap().requests_shed(), (n - out) as u64);
    assert_eq!(upper.calls.load(Ordering::SeqCst), 1, "the refusals ran no service");
    upper.open_gate();
    let (mut served_ok, mut refused) = (0, 0);
    for (i, c) in clients.iter_mut().enumerate() {
        let line = read_lines(c, 1).remove(0);
        if line == format!("C{i}") {
            served_ok += 1;
        } else {
            assert_eq!(line, "BUSY 3");
            refused += 1;
        }
    }
    assert_eq!((served_ok, refused), (out, n - out));
    served.close();
}

fn a_kept_alive_client_silent_after_its_answer_is_still_closed_at_its_idle_deadline_on(
    serve: fn(Pool, Arc<Upper>) -> Served,
) {
    // The worker writes the answer and gives the machine back without waking the reactor
    // (`Driver::lend`); nothing else happens on this server afterwards. The reactor must still
    // take the machine back and arm its idle deadline (the check timer), or the silent
    // connection would stay open for ever.
    let served = serve(Pool::new(1), Upper::new(Duration::from_millis(200), true));
    let mut c = client(served.addr);
    c.write_all(b"once\n").unwrap();
    assert_eq!(read_lines(&mut c, 1), vec!["ONCE"]);
    let t0 = Instant::now();
    let mut b = [0u8; 16];
    assert_eq!(c.read(&mut b).expect("a clean close"), 0);
    assert!(t0.elapsed() < Duration::from_secs(5), "closed after {:?}", t0.elapsed());
    assert!(until(|| served.stats().connections == 0), "{:?}", served.stats());
    served.close();
}

#[test]
fn pipelined_lines_are_answered_in_order_and_together() {
    pipelined_lines_are_answered_in_order_and_together_on(serve);
}

#[test]
fn pipelined_lines_are_answered_in_order_and_together_leader_followers() {
    pipelined_lines_are_answered_in_order_and_together_on(serve_lead);
}

#[test]
fn a_silent_client_holds_no_worker_and_is_closed_at_its_deadline() {
    a_silent_client_holds_no_worker_and_is_closed_at_its_deadline_on(serve);
}

#[test]
fn a_silent_client_holds_no_worker_and_is_closed_at_its_deadline_leader_followers() {
    a_silent_client_holds_no_worker_and_is_closed_at_its_deadline_on(serve_lead);
}

#[test]
fn a_slow_reader_holds_no_worker() {
    a_slow_reader_holds_no_worker_on(serve);
}

#[test]
fn a_slow_reader_holds_no_worker_leader_followers() {
    a_slow_reader_holds_no_worker_on(serve_lead);
}

#[test]
fn a_kept_alive_client_silent_after_its_answer_is_still_closed_at_its_idle_deadline() {
    a_kept_alive_client_silent_after_its_answer_is_still_closed_at_its_idle_deadline_on(serve);
}

#[test]
fn a_kept_alive_client_silent_after_its_answer_is_still_closed_at_its_idle_deadline_leader_followers() {
    a_kept_alive_client_silent_after_its_answer_is_still_closed_at_its_idle_deadline_on(serve_lead);
}

#[test]
fn close_closes_idle_connections_and_finishes_the_one_in_progress_leader_followers() {
    // Two workers: the one that runs the slow request read it, and the other takes the reactor
    // from it (the sentry), so the stop still reaches the idle connection at once.
    close_closes_idle_connections_and_finishes_the_one_in_progress_on(serve_lead, 2);
}

#[test]
fn leader_followers_a_slow_request_has_the_reactor_taken_from_it() {
    let upper = Upper::new(Duration::from_secs(30), false);
    let served = serve_lead(Pool::new(2), Arc::clone(&upper));
    assert!(leads(&served));
    let mut slow = client(served.addr);
    slow.write_all(b"slow\n").unwrap();
    assert!(until(|| upper.calls.load(Ordering::SeqCst) == 1));
    // The thread that read "slow" runs it and waits at the gate; the other one takes the
    // reactor and serves the next client, many times over.
    let mut fast = client(served.addr);
    for i in 0..50 {
        fast.write_all(format!("now {i}\n").as_bytes()).unwrap();
        assert_eq!(read_lines(&mut fast, 1), vec![format!("NOW {i}")]);
    }
    upper.open_gate();
    assert_eq!(read_lines(&mut slow, 1), vec!["SLOW"]);
    served.close();
}

#[test]
fn leader_followers_requests_that_all_block_get_a_worker_each_then_wait() {
    let upper = Upper::new(Duration::from_secs(30), false);
    let served = serve_lead(Pool::new(3), Arc::clone(&upper));
    let mut clients = clients_each_sending_a_line(served.addr, 8);
    // Every worker runs one (the sentry hands the queued ones out, and takes the reactor from
    // the leader that runs one); the rest wait, none lost.
    assert!(
        until(|| upper.calls.load(Ordering::SeqCst) == 3 && served.stats().busy == 3),
        "{:?}",
        served.stats()
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(upper.calls.load(Ordering::SeqCst), 3, "three workers, three requests at a time");
    upper.open_gate();
    each_answered(&mut clients);
    assert!(until(|| served.stats().busy == 0 && served.stats().in_service == 0), "{:?}", served.stats());
    let pool = served.close();
    assert_eq!(pool.workers(), 0, "close joined the workers");
}

#[test]
fn leader_followers_is_not_used_where_a_reactor_must_answer_while_workers_are_busy() {
    let upper = Upper::new(Duration::from_secs(30), true);
    // Shedding answers while every worker is busy: the hand-off, a reactor thread.
    let shedding = serve_lead(Pool::new(2).shed_when_full(Duration::from_secs(1)), Arc::clone(&upper));
    assert!(!leads(&shedding));
    shedding.close();
    let off = serve_lead(Pool::new(2).leader_followers(false), Arc::clone(&upper));
    assert!(!leads(&off));
    let mut c = client(off.addr);
    c.write_all(b"hello\n").unwrap();
    assert_eq!(read_lines(&mut c, 1), vec!["HELLO"]);
    off.close();
    // And connections handed over by an accept loop (`handle_request`) go to a reactor thread.
    let handed = serve(Pool::new(2), upper);
    let mut c = client(handed.addr);
    c.write_all(b"hello\n").unwrap();
    assert_eq!(read_lines(&mut c, 1), vec!["HELLO"]);
    assert!(!leads(&handed));
    handed.close();
}
