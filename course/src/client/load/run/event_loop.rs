//! The multiplexed load generator: one thread drives many connections with `epoll`.
//!
//! Each connection is a small state machine ([`Phase`]); the thread waits in `epoll_wait` for
//! any of its connections to become readable or writable and moves that one along. Like `wrk`,
//! every connection has at most one request outstanding, so the load is still a closed loop of
//! `c` requests in flight; only the number of threads changes.
//!
//! # Why edge-triggered, registered once
//!
//! Each socket is added to the epoll set once, right after `socket()`, with
//! `EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`, and never modified. A level-triggered
//! `EPOLLOUT` would fire on every wake-up while the send buffer has room (always, here), so a
//! level-triggered design has to switch write interest on and off with two `epoll_ctl` calls per
//! request; that is what `wrk` does. Edge-triggered, a request costs one `write` and one `read`
//! plus its share of an `epoll_wait` that usually returns several ready connections at once.
//!
//! The price of edge triggering is one rule: an edge is reported once, so whatever it said must
//! be remembered until acted on. [`Slot::readable`] and [`Slot::writable`] are that memory. A
//! read that returns less than the buffer drained the socket (TCP hands over everything queued,
//! up to the length asked for), so it clears `readable` without the extra `read` that would only
//! return `EAGAIN`; any byte arriving later makes a new edge. The one exception is the peer's
//! FIN: it may have come with the last data, so once `EPOLLRDHUP` has been seen the socket stays
//! readable until a `read` returns 0.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use socket2::Socket;

use crate::client::connect::{self, Started};

use super::{
    CONNECT_PAUSE, Done, ErrorKind, MAX_HEADERS, READ_BUF, RequestError, STATUS_SLOTS, TICK, Worker,
    head_facts, lock,
};

/// Events fetched per `epoll_wait`: more than a thread's usual share of connections, so one
/// call usually collects every ready one.
const EVENTS: usize = 256;

/// Where one connection is in its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing to do: about to claim the next request.
    Idle,
    /// A connect failed; the next request is claimed at `until` (see [`CONNECT_PAUSE`]).
    Paused { until: Instant },
    /// A request is claimed and its connection is being opened to `addrs[addr]`.
    Connecting { since: Instant, addr: usize },
    /// A request is claimed, but the Unix socket `addrs[addr]`'s listener had no room in its
    /// queue (`EAGAIN`). Nothing is under way and no edge will come, so the connect is tried
    /// again on every wake-up (at least every [`CONNECT_PAUSE`]) until it lands or
    /// `connect_timeout` passes. The socket is registered with epoll only once connected.
    Backlogged { since: Instant, addr: usize },
    /// The request is partly written.
    Writing { written: usize },
    /// Waiting for (the rest of) the response head.
    Head,
    /// Skipping the body: `remaining` of `expected` bytes still to come.
    Body { remaining: u64, expected: u64 },
    /// A body without `Content-Length`: it ends when the server closes.
    ToEof,
    /// The response said `Connection: close`; waiting (at most a [`TICK`]) for the server's FIN
    /// before closing our end, for the reason [`Worker::finish_close`] gives.
    Closing { since: Instant },
    /// No more requests for this connection (the count is used up, or the time).
    Finished,
}

/// One connection and its request.
struct Slot {
    stream: Option<Socket>,
    /// Bumped whenever the socket changes, and carried in its epoll events, so an event queued
    /// for a socket already closed is recognised and ignored.
    generation: u32,
    phase: Phase,
    /// When the current request's first byte was written.
    sent: Instant,
    /// Received bytes not consumed yet: a partial head, or bytes after a response.
    carry: Vec<u8>,
    /// Responses read on this connection so far.
    used: u64,
    /// Whether any byte of the current response has arrived.
    got_bytes: bool,
    /// Whether the current request was already sent again on a fresh connection once.
    retried: bool,
    /// Edge memory (see the module docs).
    readable: bool,
    writable: bool,
    /// The peer has closed its side (`EPOLLRDHUP` seen): read until 0.
    peer_closed: bool,
    /// The current response: status, whether the server will close, bytes read for it.
    status: u16,
    close: bool,
    bytes: u64,
}

impl Slot {
    fn new(now: Instant) -> Slot {
        Slot {
            stream: None,
            generation: 0,
            phase: Phase::Idle,
            sent: now,
            carry: Vec::new(),
            used: 0,
            got_bytes: false,
            retried: false,
            readable: false,
            writable: false,
            peer_closed: false,
            status: 0,
            close: false,
            bytes: 0,
        }
    }

    /// Whether a request has been written (at least in part) and not yet answered.
    fn in_flight(&self) -> bool {
        matches!(self.phase, Phase::Writing { .. } | Phase::Head | Phase::Body { .. } | Phase::ToEof)
    }

    /// Closes the connection (which also takes it out of the epoll set).
    fn drop_connection(&mut self) {
        self.stream = None;
        self.carry.clear();
        self.generation = self.generation.wrapping_add(1);
        (self.readable, self.writable, self.peer_closed) = (false, false, false);
    }
}

/// One event-loop thread: its settings, its connections and its epoll instance.
pub(super) struct EventLoop {
    worker: Worker,
    epoll: Epoll,
    slots: Vec<Slot>,
    /// The thread's read buffer, shared by its connections: a read's bytes are consumed before
    /// the next read, and only a partial head is copied out (into [`Slot::carry`]).
    buf: Vec<u8>,
    /// Slots not yet [`Phase::Finished`].
    active: usize,
    /// Slots in [`Phase::Paused`] or [`Phase::Backlogged`]: while there are any, timers are
    /// checked every wake-up.
    paused: usize,
}

impl EventLoop {
    /// A loop for `connections` connections.
    pub(super) fn new(worker: Worker, connections: usize) -> io::Result<EventLoop> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
        let now = Instant::now();
        Ok(EventLoop {
            worker,
            epoll,
            slots: (0..connections).map(|_| Slot::new(now)).collect(),
            buf: vec![0u8; READ_BUF],
            active: connections,
            paused: 0,
        })
    }

    /// Runs until the deadline or until no connection has a request left to send.
    pub(super) fn run(mut self) {
        for k in 0..self.slots.len() {
            self.next_request(k);
        }
        let mut events = vec![EpollEvent::empty(); EVENTS];
        // Timers (request timeouts, connect timeouts, pauses, FIN waits) are checked every
        // `check_every`, not per event: a scan is O(connections).
        let check_every = TICK.min(self.worker.timeout);
        let mut next_check = Instant::now() + check_every;
        loop {
            let now = Instant::now();
            if now >= self.worker.deadline || self.active == 0 {
                break;
            }
            if now >= next_check || self.paused > 0 {
                self.check_timers(now);
                next_check = now + check_every;
                if self.active == 0 {
                    break;
                }
            }
            let mut wait = self.worker.deadline.min(next_check).saturating_duration_since(now);
            if self.paused > 0 {
                wait = wait.min(CONNECT_PAUSE);
            }
            // Round up: a timeout rounded down to 0 ms would spin until the instant arrives.
            let ms = u16::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
            let ready = match self.epoll.wait(&mut events, ms) {
                Ok(n) => n,
                // A signal interrupted the wait; nothing was lost.
                Err(Errno::EINTR) => 0,
                Err(e) => {
                    // Cannot happen with a valid epoll fd and buffer; fail every request in
                    // flight rather than spin.
                    let e = RequestError::io("epoll_wait", &io::Error::from(e));
                    lock(&self.worker.tally).error(e);
                    break;
                }
            };
            for ev in &events[..ready] {
                let data = ev.data();
                let (k, generation) = ((data & 0xffff_ffff) as usize, (data >> 32) as u32);
                match self.slots.get_mut(k) {
                    Some(slot) if slot.generation == generation && slot.stream.is_some() => {
                        let flags = ev.events();
                        let hup = EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR;
                        slot.readable |= flags.intersects(EpollFlags::EPOLLIN | hup);
                        slot.writable |= flags.intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR);
                        slot.peer_closed |= flags.intersects(hup);
                    }
                    // An event for a socket closed earlier in this batch.
                    _ => continue,
                }
                self.drive(k);
            }
        }
        // Requests written but not answered when the time ran out: abandoned, as wrk does.
        let unfinished = self.slots.iter().filter(|s| s.in_flight()).count() as u64;
        lock(&self.worker.tally).unfinished += unfinished;
    }

    /// Moves slot `k` along as far as its remembered edges allow.
    fn drive(&mut self, k: usize) {
        match self.slots[k].phase {
            Phase::Connecting { addr, .. } if self.slots[k].writable => self.connected(k, addr),
            Phase::Writing { written } if self.slots[k].writable => self.write_request(k, written),
            Phase::Head | Phase::Body { .. } | Phase::ToEof | Phase::Closing { .. }
                if self.slots[k].readable =>
            {
                self.read_response(k);
            }
            _ => {}
        }
    }

    /// Timeouts, the end of pauses and of FIN waits.
    fn check_timers(&mut self, now: Instant) {
        for k in 0..self.slots.len() {
            let (phase, in_flight, sent) =
                (self.slots[k].phase, self.slots[k].in_flight(), self.slots[k].sent);
            match phase {
                Phase::Paused { until } if now >= until => {
                    self.paused -= 1;
                    self.slots[k].phase = Phase::Idle;
                    self.next_request(k);
                }
                Phase::Backlogged { since, addr } => self.retry_backlogged(k, since, addr, now),
                Phase::Connecting { since, .. }
                    if now.duration_since(since) >= self.worker.connect_timeout =>
                {
                    let e = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
                    self.connect_failed(k, RequestError::io("connect", &e));
                }
                _ if in_flight && now.duration_since(sent) >= self.worker.timeout => {
                    let e = RequestError::new(
                        ErrorKind::Timeout,
                        format!("no complete response within {:.1}s", self.worker.timeout.as_secs_f64()),
                    );
                    self.fail(k, e);
                }
                Phase::Closing { since } if now.duration_since(since) >= TICK => {
                    self.slots[k].drop_connection();
                    self.slots[k].phase = Phase::Idle;
                    self.next_request(k);
                }
                _ => {}
            }
        }
    }

    /// Claims the next request for slot `k` and starts it: on its open connection, or by
    /// opening one. Without a request left (count used up, or time), the slot is finished.
    fn next_request(&mut self, k: usize) {
        let now = Instant::now();
        if now >= self.worker.deadline || !self.worker.claim() {
            self.finish(k);
            return;
        }
        self.slots[k].retried = false;
        self.start(k, now);
    }

    /// Starts the claimed request on slot `k` (again, after a stale connection).
    fn start(&mut self, k: usize, now: Instant) {
        if self.slots[k].stream.is_some() {
            self.slots[k].sent = now;
            self.slots[k].got_bytes = !self.slots[k].carry.is_empty();
            self.write_request(k, 0);
        } else {
            self.connect(k, 0, now);
        }
    }

    fn finish(&mut self, k: usize) {
        let slot = &mut self.slots[k];
        if slot.phase != Phase::Finished {
            slot.drop_connection();
            slot.phase = Phase::Finished;
            self.active -= 1;
        }
    }

    /// Opens a non-blocking connection to `addrs[addr]` (or the next address that does not
    /// fail at once) and registers it.
    fn connect(&mut self, k: usize, first: usize, now: Instant) {
        let mut last = RequestError::new(ErrorKind::Other, "connect: no address to connect to");
        for addr in first..self.worker.addrs.len() {
            match self.open(k, addr) {
                Ok(true) => {
                    self.slots[k].phase = Phase::Connecting { since: now, addr };
                    // Loopback and Unix connects often complete at once; the EPOLLOUT edge is
                    // queued then too, so waiting for it costs nothing extra.
                    return;
                }
                Ok(false) => {
                    self.slots[k].phase = Phase::Backlogged { since: now, addr };
                    self.paused += 1;
                    return;
                }
                Err(e) => last = e,
            }
        }
        self.connect_failed(k, last);
    }

    /// Creates the socket and starts connecting: `Ok(true)` registered, the outcome to be
    /// reported by an `EPOLLOUT` edge; `Ok(false)` a Unix listener's queue was full, the socket
    /// kept unregistered for [`Phase::Backlogged`].
    fn open(&mut self, k: usize, addr: usize) -> Result<bool, RequestError> {
        self.slots[k].drop_connection();
        match connect::start(&self.worker.addrs[addr])? {
            Started::Pending(socket) => {
                self.register(k, socket).map_err(|e| RequestError::io("connect", &e))?;
                Ok(true)
            }
            Started::Backlogged(socket) => {
                self.slots[k].stream = Some(socket);
                Ok(false)
            }
        }
    }

    /// Adds `socket` to the epoll set as slot `k`'s connection, once and for good (see the
    /// module docs). A socket already connected is reported writable by an edge queued here.
    fn register(&mut self, k: usize, socket: Socket) -> io::Result<()> {
        let slot = &mut self.slots[k];
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET;
        let data = (u64::from(slot.generation) << 32) | k as u64;
        self.epoll.add(socket.as_fd(), EpollEvent::new(flags, data)).map_err(io::Error::from)?;
        slot.stream = Some(socket);
        Ok(())
    }

    /// Slot `k` waits for room in a Unix listener's queue since `since`: try once more, give up
    /// after `connect_timeout`.
    fn retry_backlogged(&mut self, k: usize, since: Instant, addr: usize, now: Instant) {
        let waited = now.duration_since(since);
        let outcome = match self.slots[k].stream.as_ref() {
            Some(socket) => connect::retry(socket, &self.worker.addrs[addr]),
            None => Err(RequestError::new(ErrorKind::Other, "connect: socket lost")),
        };
        match outcome {
            // Still full, and time left: the next wake-up tries again.
            Ok(false) if waited < self.worker.connect_timeout => {}
            Ok(false) => {
                self.paused -= 1;
                let e = connect::backlog_full(waited);
                self.connect_failed(k, e);
            }
            Ok(true) => {
                self.paused -= 1;
                let socket = self.slots[k].stream.take();
                let registered = match socket {
                    Some(socket) => self.register(k, socket).map_err(|e| RequestError::io("connect", &e)),
                    None => Err(RequestError::new(ErrorKind::Other, "connect: socket lost")),
                };
                match registered {
                    // Connected: the EPOLLOUT edge queued at registration moves it on.
                    Ok(()) => self.slots[k].phase = Phase::Connecting { since, addr },
                    Err(e) => self.connect_failed(k, e),
                }
            }
            Err(e) => {
                self.paused -= 1;
                self.connect_failed(k, e);
            }
        }
    }

    /// The connect of slot `k` to `addrs[addr]` has an outcome (an `EPOLLOUT` edge came).
    fn connected(&mut self, k: usize, addr: usize) {
        let outcome = match &self.slots[k].stream {
            Some(stream) => stream.take_error(),
            None => Ok(Some(io::Error::from(io::ErrorKind::NotConnected))),
        };
        match outcome {
            Ok(None) => {
                lock(&self.worker.tally).connects += 1;
                let now = Instant::now();
                if now >= self.worker.deadline {
                    // Connected too late to send; not in flight, so not unfinished.
                    self.finish(k);
                    return;
                }
                self.slots[k].phase = Phase::Idle;
                self.start(k, now);
            }
            Ok(Some(e)) | Err(e) => {
                let error = connect::explain(&self.worker.addrs[addr], &e);
                self.slots[k].drop_connection();
                if addr + 1 < self.worker.addrs.len() {
                    self.connect(k, addr + 1, Instant::now());
                } else {
                    self.connect_failed(k, error);
                }
            }
        }
    }

    /// A connect failed: count it, and pause before the next request so a server that is down
    /// is not hammered at full CPU speed.
    fn connect_failed(&mut self, k: usize, e: RequestError) {
        lock(&self.worker.tally).error(e);
        let slot = &mut self.slots[k];
        slot.drop_connection();
        slot.phase = Phase::Paused { until: Instant::now() + CONNECT_PAUSE };
        self.paused += 1;
    }

    /// Writes the request from byte `written` on; waits for `EPOLLOUT` if the socket is full.
    fn write_request(&mut self, k: usize, mut written: usize) {
        let request = &self.worker.request[..];
        let slot = &mut self.slots[k];
        let Some(stream) = slot.stream.as_mut() else { return };
        let failed = loop {
            if written == request.len() {
                break None;
            }
            match stream.write(&request[written..]) {
                Ok(0) => break Some(RequestError::new(ErrorKind::Closed, "send: connection closed")),
                Ok(n) => written += n,
                // A signal interrupted the call; nothing was lost.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The send buffer is full: the next EPOLLOUT edge continues from here.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    slot.writable = false;
                    slot.phase = Phase::Writing { written };
                    return;
                }
                Err(e) => break Some(RequestError::io("send", &e)),
            }
        };
        if let Some(e) = failed {
            return self.fail(k, e);
        }
        slot.phase = Phase::Head;
        (slot.status, slot.close, slot.bytes) = (0, false, 0);
        // Bytes already here (or a FIN) came with an edge that has been seen: use them now.
        // Otherwise wait; reading at once would only return EAGAIN.
        if !slot.carry.is_empty() {
            self.consume(k, 0);
        } else if slot.readable {
            self.read_response(k);
        }
    }

    /// Reads what slot `k`'s socket has and feeds it to the response parser.
    fn read_response(&mut self, k: usize) {
        loop {
            let slot = &mut self.slots[k];
            let Some(stream) = slot.stream.as_mut() else { return };
            match stream.read(&mut self.buf) {
                Ok(0) => return self.end_of_stream(k),
                Ok(n) => {
                    slot.got_bytes = true;
                    slot.bytes += n as u64;
                    // A short read drained the socket (see the module docs).
                    if n < self.buf.len() && !slot.peer_closed {
                        slot.readable = false;
                    }
                    let again = slot.readable;
                    if !self.consume(k, n) || !again {
                        return;
                    }
                }
                // A signal interrupted the call; nothing was lost.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Drained: the next edge brings more.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    slot.readable = false;
                    return;
                }
                Err(e) => return self.fail(k, RequestError::io("receive", &e)),
            }
        }
    }

    /// Parses `buf[..n]` (after any carried bytes) as far as it goes. Returns whether the slot
    /// still wants to read on the same request (false once the request ended or failed).
    fn consume(&mut self, k: usize, n: usize) -> bool {
        let slot = &mut self.slots[k];
        if let Phase::Closing { .. } = slot.phase {
            // Bytes after a `Connection: close` response: nothing to parse, keep waiting for FIN.
            return true;
        }
        let mut carry = std::mem::take(&mut slot.carry);
        let joined = !carry.is_empty();
        if joined {
            carry.extend_from_slice(&self.buf[..n]);
        }
        let data: &[u8] = if joined { &carry } else { &self.buf[..n] };
        let mut pos = 0;
        let outcome: Result<bool, RequestError> = loop {
            match slot.phase {
                Phase::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut resp = httparse::Response::new(&mut headers);
                    match resp.parse(&data[pos..]) {
                        Ok(httparse::Status::Complete(len)) => {
                            let status = resp.code.unwrap_or(0);
                            // A 1xx (not 101) is an interim head; the real one follows.
                            if (100..200).contains(&status) && status != 101 {
                                pos += len;
                                continue;
                            }
                            let (length, close) = match head_facts(&resp) {
                                Ok(facts) => facts,
                                Err(e) => break Err(e),
                            };
                            pos += len;
                            (slot.status, slot.close) = (status, close);
                            let expected = if matches!(status, 204 | 304) { Some(0) } else { length };
                            slot.phase = match expected {
                                Some(e) => Phase::Body { remaining: e, expected: e },
                                None => Phase::ToEof,
                            };
                        }
                        // Partial is a state, not an error: keep the bytes, read more.
                        Ok(httparse::Status::Partial) if data.len() - pos < READ_BUF => break Ok(false),
                        Ok(httparse::Status::Partial) => {
                            break Err(RequestError::new(
                                ErrorKind::BadResponse,
                                format!("response head longer than {READ_BUF} bytes"),
                            ));
                        }
                        Err(e) => {
                            break Err(RequestError::new(
                                ErrorKind::BadResponse,
                                format!("not an HTTP response ({e})"),
                            ));
                        }
                    }
                }
                Phase::Body { remaining, expected } => {
                    let take = remaining.min((data.len() - pos) as u64);
                    pos += take as usize;
                    if remaining == take {
                        break Ok(true);
                    }
                    slot.phase = Phase::Body { remaining: remaining - take, expected };
                    break Ok(false);
                }
                // No length: everything up to the server's FIN is body.
                _ => {
                    pos = data.len();
                    break Ok(false);
                }
            }
        };
        // Keep the unconsumed bytes (a partial head, or bytes after the response), reusing the
        // carry's allocation.
        if joined {
            carry.drain(..pos);
        } else {
            carry.clear();
            carry.extend_from_slice(&self.buf[pos..n]);
        }
        slot.carry = carry;
        match outcome {
            Ok(false) => true,
            Ok(true) => {
                let (status, bytes, close) = (slot.status, slot.bytes, slot.close);
                self.complete(k, Done { status, bytes, close });
                false
            }
            Err(e) => {
                self.fail(k, e);
                false
            }
        }
    }

    /// The server closed its end (`read` returned 0).
    fn end_of_stream(&mut self, k: usize) {
        let slot = &mut self.slots[k];
        let e = match slot.phase {
            Phase::ToEof => {
                let (status, bytes) = (slot.status, slot.bytes);
                return self.complete(k, Done { status, bytes, close: true });
            }
            Phase::Closing { .. } => {
                slot.drop_connection();
                slot.phase = Phase::Idle;
                return self.next_request(k);
            }
            Phase::Body { remaining, expected } => RequestError::new(
                ErrorKind::Closed,
                format!("connection closed after {} of {expected} body bytes", expected - remaining),
            ),
            _ if slot.got_bytes => RequestError::new(
                ErrorKind::Closed,
                format!("connection closed after {} bytes, inside the response head", slot.carry.len()),
            ),
            _ => RequestError::new(ErrorKind::Closed, "connection closed before any response"),
        };
        self.fail(k, e);
    }

    /// A whole response arrived on slot `k`: count it, then go on to the next request.
    fn complete(&mut self, k: usize, done: Done) {
        let now = Instant::now();
        let slot = &mut self.slots[k];
        let latency = now.duration_since(slot.sent);
        {
            let mut t = lock(&self.worker.tally);
            t.latency.record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
            t.statuses[usize::from(done.status).min(STATUS_SLOTS - 1)] += 1;
            t.bytes += done.bytes;
        }
        slot.used += 1;
        if done.close || !self.worker.keep_alive {
            // As the blocking mode does: if the server said it closes, let it close first.
            if done.close && slot.carry.is_empty() && slot.stream.is_some() {
                slot.phase = Phase::Closing { since: now };
                if slot.readable {
                    self.read_response(k);
                }
                return;
            }
            slot.drop_connection();
        }
        slot.phase = Phase::Idle;
        self.next_request(k);
    }

    /// The request on slot `k` failed. A kept-alive connection that the server closed while
    /// idle fails before any byte comes back: that is a race, not a fault, so the same request
    /// is sent once more on a new connection (a GET is safe to repeat), as the blocking mode
    /// does. Anything else is counted, and the next request gets a new connection.
    fn fail(&mut self, k: usize, e: RequestError) {
        let slot = &mut self.slots[k];
        let stale =
            slot.used > 0 && !slot.got_bytes && matches!(e.kind, ErrorKind::Closed | ErrorKind::Reset);
        slot.drop_connection();
        slot.used = 0;
        slot.phase = Phase::Idle;
        if stale && !slot.retried {
            slot.retried = true;
            return self.connect(k, 0, Instant::now());
        }
        lock(&self.worker.tally).error(e);
        self.next_request(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_slot_is_idle_and_not_in_flight() {
        let slot = Slot::new(Instant::now());
        assert_eq!(slot.phase, Phase::Idle);
        assert!(!slot.in_flight());
    }
}
