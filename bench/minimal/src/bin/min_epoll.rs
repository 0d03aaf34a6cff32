//! The event loop at its limit: N threads, each an epoll loop of its own over non-blocking
//! sockets, all waiting on the one shared listener with `EPOLLEXCLUSIVE` (nginx's default on
//! Linux: `worker_processes N`, no `accept_mutex`, no `reuseport`), the request answered on
//! the loop thread itself.
//!
//!     cargo run --release --bin min_epoll -- --port 0 --threads 2
//!
//! Level-triggered: a loop reads what a ready socket has (until `EAGAIN` or its buffer is
//! full), answers every complete request in it, writes; what it could not write waits for
//! `EPOLLOUT`. A connection's state is its input buffer, its pending output and whether to
//! close after it: the state machine of chapter 13 reduced to three fields. No timers at all:
//! `/delay` sleeps the loop thread (only `/hello` is benchmarked), and an idle client is kept
//! forever. See `lib.rs` for what else is skipped.

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use socketserver_minimal::{NbConn, args, bind, ctl, epoll_with_listener, fail};

/// The listener's token in the epoll set (a connection's token is its descriptor, never
/// `u64::MAX`).
const LISTENER: u64 = u64::MAX;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;

struct Conn {
    nb: NbConn,
    /// `EPOLLOUT` is in its interest set.
    wants_out: bool,
}

fn main() {
    let a = args("--threads", 1);
    let listener = bind(a.port);
    let _ = listener.set_nonblocking(true);
    let threads: Vec<_> = (0..a.count)
        .map(|_| {
            let l = listener.try_clone().unwrap_or_else(|e| fail("dup the listener", e));
            std::thread::spawn(move || event_loop(&l))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn event_loop(listener: &TcpListener) {
    // EPOLLEXCLUSIVE: a new connection wakes one of the loops waiting, not all of them.
    let ep = epoll_with_listener(listener, LISTENER);
    // Connections by descriptor: the kernel hands out the lowest free numbers, so this stays
    // dense (the slab of the library's reactor, without generations: a closed descriptor's
    // late event cannot arrive, because a connection is closed only after its events are done).
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    loop {
        // SAFETY: events has room for EVENTS entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), EVENTS as i32, -1) };
        if n < 0 {
            // EINTR: no signal handlers here, but a debugger may interrupt us; wait again.
            continue;
        }
        for ev in &events[..n as usize] {
            if ev.u64 == LISTENER {
                accept_all(ep, listener, &mut conns);
                continue;
            }
            let fd = ev.u64 as usize;
            let flags = ev.events;
            let Some(Some(c)) = conns.get_mut(fd) else { continue };
            let keep = if flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                false
            } else {
                c.nb.serve(flags & libc::EPOLLIN as u32 != 0)
            };
            if !keep {
                // Dropping the stream closes it, which also takes it out of the epoll set.
                conns[fd] = None;
                continue;
            }
            let want_out = c.nb.wants_out();
            if want_out != c.wants_out {
                c.wants_out = want_out;
                let interest = if want_out { libc::EPOLLOUT } else { libc::EPOLLIN } as u32;
                if ctl(ep, libc::EPOLL_CTL_MOD, fd as RawFd, interest, fd as u64).is_err() {
                    conns[fd] = None;
                }
            }
        }
    }
}

/// Accepts until the backlog is empty (another loop may have taken what is left: `EAGAIN`).
fn accept_all(ep: RawFd, listener: &TcpListener, conns: &mut Vec<Option<Conn>>) {
    loop {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: a listening socket we own; null address pointers are allowed.
        let fd =
            unsafe { libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), flags) };
        if fd < 0 {
            return; // EAGAIN (empty), ECONNABORTED, EMFILE: back to epoll_wait
        }
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        if ctl(ep, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, fd as u64).is_err() {
            continue; // dropped: closed
        }
        let i = fd as usize;
        if conns.len() <= i {
            conns.resize_with(i + 1, || None);
        }
        conns[i] = Some(Conn { nb: NbConn::new(stream), wants_out: false });
    }
}
