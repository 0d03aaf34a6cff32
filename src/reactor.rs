//! One reactor: a thread that sleeps until one of many sockets is ready, or a deadline comes,
//! or another thread wakes it — and then says which.
//!
//! ```text
//!            ┌──────────────────── Reactor<T> ─────────────────────┐
//!  insert ──▶│ slab: [ T gen 3 | free gen 1 | T gen 7 | ... ]       │
//!            │        ▲ Token {index, gen}: epoll's u64 of the fd  │
//!            │ epoll  (the kernel's set of fds we are interested in)│
//!            │ timers BTreeMap<(Instant, seq), Token>  (ordered)    │
//!            │ waker  eventfd: any thread's wake() ends the wait     │
//!            └───────────── react(timeout, &mut events) ───────────┘
//!         Event::Io(token, readiness) | Event::Timer(token) | Event::Woken | Event::Listener
//! ```
//!
//! This is the shape of `async-io`'s reactor (a slab of sources, timers in an ordered map, one
//! `react()` that waits and reports) with `mio`'s rules of use. The [`Pool`](crate::Pool) runs
//! one on its reactor thread: parked keep-alive connections wait here instead of on a worker.
//!
//! # How to read the events (the contract of `epoll`, as mio's `Poll` states it)
//! * **Readiness is a hint, not a promise.** "Readable" means a `read` *may* not block. It can
//!   still return `WouldBlock` (another thread read first, a checksum failed after the wake-up):
//!   a spurious wake-up. So a socket registered here is non-blocking, and every `read`/`write`
//!   handles `WouldBlock` by going back to waiting.
//! * **Level-triggered** (what this reactor uses): as long as a socket has unread data, every
//!   `react` reports it again. Forgiving — reading only part of what is there loses nothing —
//!   but a socket whose data you do not want yet *must* have its interest removed
//!   ([`Interest::NONE`]), or the reactor reports it in a busy loop. *Edge-triggered*
//!   (`EPOLLET`, mio's default) reports only changes: cheaper, but then you must drain the
//!   socket until `WouldBlock` every time, or you will never hear about the rest.
//! * **Hang-ups and errors are always reported** while a descriptor is registered, whatever the
//!   interest; they show as readable (a `read` returns 0 or the error), so "readable" covers
//!   EOF. That is why `Interest::NONE` *deregisters* the descriptor instead of registering it
//!   with no events: otherwise a peer that hangs up while we are not listening would be reported
//!   in a loop.
//! * **Tokens, not descriptors.** The kernel hands back the 64-bit value we registered, here a
//!   [`Token`]: a slot index and the slot's *generation*. A slot's generation goes up each time
//!   it is emptied, so an event (or a timer, or an answer from another thread) that names a
//!   closed connection's token never reaches whatever connection reuses the slot — even though
//!   the kernel reuses the descriptor number at once.
//! * **Timers are data, not system calls.** Deadlines sit in a `BTreeMap` ordered by
//!   `(Instant, sequence)`; `react` sleeps in `epoll_wait` no longer than until the first one
//!   and reports those due. Cancelling is a map removal. (One `timerfd` per deadline would
//!   cost a descriptor and two system calls each.)
//! * **Wake-ups are counted, not queued.** [`Waker::wake`] adds 1 to an `eventfd` counter; many
//!   wakes before the reactor looks make one readable event, and the reactor [drains](Waker::drain)
//!   it to 0. What woke it is for the caller to find out (a queue, a flag): the wake-up only says
//!   "look".

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// Wakes a thread that sleeps in a [`Reactor`]: the crate's one eventfd waker, from
/// [`sys`](crate::sys), which every other waiting thread (the accept loop, the pool's poller)
/// uses too.
pub(crate) use crate::sys::Waker;

/// Names one entry of a [`Reactor`]'s slab: its index and the generation of the slot when the
/// entry went in. `Copy`, cheap to send to another thread and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Token {
    index: u32,
    generation: u32,
}

impl Token {
    /// The 64 bits epoll carries for us.
    fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    fn from_u64(v: u64) -> Token {
        Token { index: v as u32, generation: (v >> 32) as u32 }
    }
}

/// epoll's data for the waker: no slab token has it (the index would be `u32::MAX`, and the
/// slab never grows that far: descriptors run out long before).
const WAKER_DATA: u64 = u64::MAX;

/// epoll's data for a listening socket (see [`Reactor::listen`]); no slab token has it either.
const LISTENER_DATA: u64 = u64::MAX - 1;

/// Which readiness a source wants to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interest {
    /// Data (or EOF, or an error) to read.
    pub(crate) read: bool,
    /// Room in the send buffer.
    pub(crate) write: bool,
}

impl Interest {
    /// Nothing: the descriptor is taken out of epoll (see the module doc: hang-ups would be
    /// reported otherwise).
    pub(crate) const NONE: Interest = Interest { read: false, write: false };
    /// Readable.
    pub(crate) const READ: Interest = Interest { read: true, write: false };
    /// Writable.
    pub(crate) const WRITE: Interest = Interest { read: false, write: true };

    fn flags(self) -> EpollFlags {
        let mut f = EpollFlags::empty();
        if self.read {
            // EPOLLRDHUP: the peer's FIN is reported as readable too (it is anyway, as a read
            // of 0; asking for it is explicit).
            f |= EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        }
        if self.write {
            f |= EpollFlags::EPOLLOUT;
        }
        f
    }
}

/// What a ready source may do now without blocking (a hint: see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// A read may return data, EOF (0) or an error.
    pub(crate) readable: bool,
    /// A write may make progress (or return the error).
    pub(crate) writable: bool,
}

/// One thing [`Reactor::react`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A source is ready. Its token is alive (stale ones are dropped before they get here).
    Io(Token, Readiness),
    /// A timer of this (live) token is due; it is removed already.
    Timer(Token),
    /// The [`Waker`] was woken (and is drained already): look at what the wakers announce.
    Woken,
    /// The listening socket registered with [`Reactor::listen`] has connections to accept.
    Listener,
}

/// Identifies a timer, to [cancel](Reactor::cancel_timer) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey(Instant, u64);

struct Slot<T> {
    generation: u32,
    entry: Option<Entry<T>>,
}

struct Entry<T> {
    value: T,
    /// What epoll watches now (`NONE`: not registered at all).
    interest: Interest,
    /// The slot's own deadline (see [`Reactor::set_deadline`]), cancelled when it is removed.
    deadline: Option<TimerKey>,
}

/// An epoll set, a slab of sources `T` (each owns its descriptor: `T: AsFd`), their timers, and
/// a waker. Used from one thread; only the [`Waker`] is shared.
pub(crate) struct Reactor<T> {
    epoll: Epoll,
    slots: Vec<Slot<T>>,
    /// Indices of empty slots, reused last-in first-out.
    free: Vec<u32>,
    len: usize,
    timers: BTreeMap<TimerKey, Token>,
    /// Makes timer keys unique when two deadlines are the same `Instant`; also keeps timers of
    /// one instant in the order they were set.
    timer_seq: u64,
    waker: Arc<Waker>,
    buf: Vec<EpollEvent>,
}

impl<T> std::fmt::Debug for Reactor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").field("sources", &self.len).field("timers", &self.timers.len()).finish()
    }
}

/// How many events one `epoll_wait` returns at most; more ready sources are reported by the
/// next `react` (level-triggered, nothing is lost).
const EVENTS_PER_WAIT: usize = 256;

impl<T: AsFd> Reactor<T> {
    /// An empty reactor with a new waker registered.
    #[cfg(test)]
    pub(crate) fn new() -> io::Result<Reactor<T>> {
        Reactor::with_waker(Arc::new(Waker::new()?))
    }

    /// An empty reactor woken by `waker`: a waker made before the reactor (and kept by the
    /// threads that wake it) survives a reactor that is replaced.
    pub(crate) fn with_waker(waker: Arc<Waker>) -> io::Result<Reactor<T>> {
        // Close-on-exec: the epoll set means nothing in an exec'd program.
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(waker.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKER_DATA))?;
        Ok(Reactor {
            epoll,
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            timers: BTreeMap::new(),
            timer_seq: 0,
            waker,
            buf: vec![EpollEvent::empty(); EVENTS_PER_WAIT],
        })
    }

    /// The waker that ends this reactor's wait, for other threads.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// How many sources are in the slab.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many timers are pending.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn timers(&self) -> usize {
        self.timers.len()
    }

    /// Puts `value` in the slab and registers its descriptor with `interest`. On an error
    /// (`ENOMEM`, `ENOSPC` at `max_user_watches`) the value is handed back with it.
    pub(crate) fn insert(&mut self, value: T, interest: Interest) -> Result<Token, (T, io::Error)> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let Ok(i) = u32::try_from(self.slots.len()) else {
                    return Err((value, io::Error::from(io::ErrorKind::OutOfMemory)));
                };
                if i == u32::MAX {
                    return Err((value, io::Error::from(io::ErrorKind::OutOfMemory)));
                }
                self.slots.push(Slot { generation: 0, entry: None });
                i
            }
        };
        let token = Token { index, generation: self.slots[index as usize].generation };
        if interest != Interest::NONE
            && let Err(e) = self.epoll.add(value.as_fd(), EpollEvent::new(interest.flags(), token.to_u64()))
        {
            self.free.push(index);
            return Err((value, e.into()));
        }
        self.slots[index as usize].entry = Some(Entry { value, interest, deadline: None });
        self.len += 1;
        Ok(token)
    }

    fn entry(&self, token: Token) -> Option<&Entry<T>> {
        let slot = self.slots.get(token.index as usize)?;
        if slot.generation != token.generation {
            return None;
        }
        slot.entry.as_ref()
    }

    fn entry_mut(&mut self, token: Token) -> Option<&mut Entry<T>> {
        let slot = self.slots.get_mut(token.index as usize)?;
        if slot.generation != token.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    /// The entry `token` names, if it is still there.
    pub(crate) fn get(&self, token: Token) -> Option<&T> {
        self.entry(token).map(|e| &e.value)
    }

    /// The entry `token` names, if it is still there.
    pub(crate) fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        self.entry_mut(token).map(|e| &mut e.value)
    }

    /// Changes what epoll watches for this entry (a no-op when unchanged: no system call).
    /// An error for a stale token is `NotFound`.
    pub(crate) fn set_interest(&mut self, token: Token, interest: Interest) -> io::Result<()> {
        let epoll = &self.epoll;
        let Some(entry) =
            self.slots.get_mut(token.index as usize).filter(|s| s.generation == token.generation)
        else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let Some(entry) = entry.entry.as_mut() else { return Err(io::ErrorKind::NotFound.into()) };
        if entry.interest == interest {
            return Ok(());
        }
        let fd = entry.value.as_fd();
        let mut ev = EpollEvent::new(interest.flags(), token.to_u64());
        match (entry.interest == Interest::NONE, interest == Interest::NONE) {
            (true, false) => epoll.add(fd, ev)?,
            (false, true) => epoll.delete(fd)?,
            (false, false) => epoll.modify(fd, &mut ev)?,
            (true, true) => {}
        }
        entry.interest = interest;
        Ok(())
    }

    /// Takes the entry out (deregistering it and cancelling its deadline); its slot's
    /// generation goes up, so `token` is stale from now on. `None` if it already was.
    pub(crate) fn remove(&mut self, token: Token) -> Option<T> {
        let slot = self.slots.get_mut(token.index as usize)?;
        if slot.generation != token.generation {
            return None;
        }
        let entry = slot.entry.take()?;
        // Wrapping: after 2^32 reuses of one slot a token could come back to life; a stale
        // token would have to survive four billion connections on one slot for that.
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(token.index);
        self.len -= 1;
        if entry.interest != Interest::NONE {
            // Closing the descriptor would deregister it too, but only once *every* duplicate
            // of it is closed; the value may outlive this call (the caller keeps it). So say it.
            // An error means it was not registered after all; nothing to undo.
            let _ = self.epoll.delete(entry.value.as_fd());
        }
        if let Some(key) = entry.deadline {
            self.timers.remove(&key);
        }
        Some(entry.value)
    }

    /// Adds a timer for `token` at `at`; [`react`](Reactor::react) reports it as
    /// [`Event::Timer`] once due (if the token is still alive then).
    pub(crate) fn add_timer(&mut self, at: Instant, token: Token) -> TimerKey {
        self.timer_seq += 1;
        let key = TimerKey(at, self.timer_seq);
        self.timers.insert(key, token);
        key
    }

    /// Cancels a timer; `false` if it had fired or was cancelled already.
    #[cfg_attr(not(test), allow(dead_code))] // API for users of one key per timer
    pub(crate) fn cancel_timer(&mut self, key: TimerKey) -> bool {
        self.timers.remove(&key).is_some()
    }

    /// The one deadline of an entry (replacing the one it had; `None`: no deadline). The
    /// common case — a connection has one deadline at a time — without keeping keys yourself;
    /// [`remove`](Reactor::remove) cancels it.
    pub(crate) fn set_deadline(&mut self, token: Token, at: Option<Instant>) {
        let Some(old) = self.entry(token).map(|e| e.deadline) else { return };
        if old.map(|k| k.0) == at {
            return;
        }
        if let Some(k) = old {
            self.timers.remove(&k);
        }
        let new = at.map(|at| self.add_timer(at, token));
        if let Some(e) = self.entry_mut(token) {
            e.deadline = new;
        }
    }

    /// Waits until a source is ready, a timer is due, the waker is woken, or `timeout` passes
    /// (`None`: no limit but the timers), and appends what happened to `events` (nothing on a
    /// plain timeout). `EINTR` returns with no events: the caller loops anyway.
    pub(crate) fn react(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> io::Result<()> {
        let now = Instant::now();
        let until_timer = self.timers.keys().next().map(|k| k.0.saturating_duration_since(now));
        let wait = match (timeout, until_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let ms = match wait {
            None => EpollTimeout::NONE,
            // Rounded up (sys::ceil_millis says why): late by < 1 ms, never early.
            Some(d) => EpollTimeout::try_from(crate::sys::ceil_millis(d)).unwrap_or(EpollTimeout::MAX),
        };
        let n = match self.epoll.wait(&mut self.buf, ms) {
            Ok(n) => n,
            // A signal arrived: nothing happened to the sources. The timers are looked at
            // below all the same.
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        for ev in &self.buf[..n] {
            if ev.data() == WAKER_DATA {
                // Drain first, report after: a wake that comes while the caller handles this
                // one makes the eventfd readable again, so it is not lost.
                self.waker.drain();
                events.push(Event::Woken);
                continue;
            }
            if ev.data() == LISTENER_DATA {
                events.push(Event::Listener);
                continue;
            }
            let token = Token::from_u64(ev.data());
            // Stale: the entry was removed (earlier in this batch, or by the caller between two
            // reacts) after the kernel queued the event. Drop it.
            if self.entry(token).is_none() {
                continue;
            }
            let f = ev.events();
            // Errors and hang-ups count as readable: a read then returns the error or 0, and
            // the protocol decides what that means.
            let readable = f.intersects(
                EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR,
            );
            let writable = f.intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP);
            events.push(Event::Io(token, Readiness { readable, writable }));
        }
        let now = Instant::now();
        while let Some((&key, &token)) = self.timers.first_key_value() {
            if key.0 > now {
                break;
            }
            self.timers.remove(&key);
            if let Some(e) = self.entry_mut(token) {
                if e.deadline == Some(key) {
                    e.deadline = None;
                }
                events.push(Event::Timer(token));
            }
        }
        Ok(())
    }

    /// Watches a listening socket (one at most), reported as [`Event::Listener`].
    ///
    /// `exclusive`: `EPOLLEXCLUSIVE`. When several threads (or processes) each have the same
    /// listener in their own epoll set, a new connection wakes every one of them that waits,
    /// and all but one find nothing to accept (the thundering herd). With the flag the kernel
    /// wakes one waiter (or a few), and only one that is actually blocked in `epoll_wait`: a
    /// thread busy elsewhere is skipped, so connections go to whoever is idle. The kernel
    /// refuses to *modify* such a registration (`EINVAL`), so pausing is
    /// [`unlisten`](Reactor::unlisten) and listening again.
    pub(crate) fn listen(&mut self, listener: BorrowedFd<'_>, exclusive: bool) -> io::Result<()> {
        let mut flags = EpollFlags::EPOLLIN;
        if exclusive {
            flags |= EpollFlags::EPOLLEXCLUSIVE;
        }
        self.epoll.add(listener, EpollEvent::new(flags, LISTENER_DATA))?;
        Ok(())
    }

    /// Stops watching the listening socket given to [`listen`](Reactor::listen). An error
    /// means it was not watched; nothing to undo.
    pub(crate) fn unlisten(&mut self, listener: BorrowedFd<'_>) {
        let _ = self.epoll.delete(listener);
    }

    /// Every live token, in slab order (for a sweep at close).
    pub(crate) fn tokens(&self) -> Vec<Token> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.entry.is_some())
            .map(|(i, s)| Token { index: i as u32, generation: s.generation })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (s, c)
    }

    fn react(r: &mut Reactor<TcpStream>, t: Option<Duration>) -> Vec<Event> {
        let mut ev = Vec::new();
        r.react(t, &mut ev).unwrap();
        ev
    }

    #[test]
    fn reports_readable_and_writable_sources_by_token() {
        let mut r = Reactor::new().unwrap();
        let (s1, mut c1) = pair();
        let (s2, _c2) = pair();
        let t1 = r.insert(s1, Interest::READ).map_err(|e| e.1).unwrap();
        let t2 = r.insert(s2, Interest::WRITE).map_err(|e| e.1).unwrap();
        assert_ne!(t1, t2);
        // s2 is writable at once; s1 has nothing to read yet.
        let ev = react(&mut r, Some(Duration::from_secs(5)));
        assert_eq!(ev, vec![Event::Io(t2, Readiness { readable: false, writable: true })]);
        // Nothing wanted from s2 now: the next wait hears of s1 only, once it has data.
        r.set_interest(t2, Interest::NONE).unwrap();
        c1.write_all(b"x").unwrap();
        let ev = react(&mut r, Some(Duration::from_secs(5)));
        assert_eq!(ev, vec![Event::Io(t1, Readiness { readable: true, writable: false })]);
        // Level-triggered: unread data is reported again.
        let ev = react(&mut r, Some(Duration::ZERO));
        assert_eq!(ev.len(), 1);
        // A hang-up shows as readable, and NONE silences even that (the source is out of epoll).
        drop(c1);
        r.set_interest(t1, Interest::NONE).unwrap();
        assert!(react(&mut r, Some(Duration::ZERO)).is_empty());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_waker_ends_the_wait_from_another_thread() {
        let mut r: Reactor<TcpStream> = Reactor::new().unwrap();
        let w = r.waker();
        let t = std::thread::spawn(move || w.wake());
        // No timeout, no timer: only the wake can end this wait.
        let ev = react(&mut r, None);
        assert_eq!(ev, vec![Event::Woken]);
        t.join().unwrap();
        // Drained: many wakes make one event, and then none.
        r.waker().wake();
        r.waker().wake();
        assert_eq!(react(&mut r, Some(Duration::ZERO)), vec![Event::Woken]);
        assert!(react(&mut r, Some(Duration::ZERO)).is_empty());
    }

    #[test]
    fn timers_fire_in_deadline_order_and_cancelled_ones_do_not() {
        let mut r = Reactor::new().unwrap();
        let mut tokens = Vec::new();
        for _ in 0..4 {
            let (s, c) = pair();
            std::mem::forget(c);
            tokens.push(r.insert(s, Interest::NONE).map_err(|e| e.1).unwrap());
        }
        let base = Instant::now();
        let ms = Duration::from_millis;
        r.add_timer(base + ms(30), tokens[0]);
        r.add_timer(base + ms(10), tokens[1]);
        let cancelled = r.add_timer(base + ms(20), tokens[2]);
        // Same instant as tokens[1]: fires after it, in the order set.
        r.add_timer(base + ms(10), tokens[3]);
        assert!(r.cancel_timer(cancelled));
        assert!(!r.cancel_timer(cancelled));
        let mut fired = Vec::new();
        while fired.len() < 3 {
            for e in react(&mut r, Some(Duration::from_secs(5))) {
                if let Event::Timer(t) = e {
                    fired.push(t);
                }
            }
        }
        assert_eq!(fired, vec![tokens[1], tokens[3], tokens[0]]);
        assert!(base.elapsed() >= ms(30), "no timer fires early");
        assert_eq!(r.timers(), 0);
        // A slot's own deadline: replaced, not added to; removed with the slot.
        r.set_deadline(tokens[0], Some(base + Duration::from_secs(60)));
        r.set_deadline(tokens[0], Some(base + Duration::from_secs(61)));
        assert_eq!(r.timers(), 1);
        r.remove(tokens[0]);
        assert_eq!(r.timers(), 0, "no timer left behind");
    }

    #[test]
    fn a_stale_token_never_reaches_the_slot_reused() {
        let mut r = Reactor::new().unwrap();
        let (s1, mut c1) = pair();
        let old = r.insert(s1, Interest::READ).map_err(|e| e.1).unwrap();
        c1.write_all(b"x").unwrap();
        // A timer for the old token, then the token dies and its slot is reused.
        r.add_timer(Instant::now(), old);
        let s1 = r.remove(old).unwrap();
        let (s2, mut c2) = pair();
        let new = r.insert(s2, Interest::READ).map_err(|e| e.1).unwrap();
        assert_eq!(new.index, old.index, "the slot is reused");
        assert_ne!(new, old);
        assert!(r.get(old).is_none() && r.get_mut(old).is_none() && r.remove(old).is_none());
        assert!(r.set_interest(old, Interest::WRITE).is_err());
        // The old timer fires for nobody; s1's data is not reported (it is out of epoll).
        assert!(react(&mut r, Some(Duration::ZERO)).is_empty());
        c2.write_all(b"y").unwrap();
        assert_eq!(
            react(&mut r, Some(Duration::from_secs(5))),
            vec![Event::Io(new, Readiness { readable: true, writable: false })]
        );
        drop(s1);
        assert_eq!(r.tokens(), vec![new]);
    }
}
