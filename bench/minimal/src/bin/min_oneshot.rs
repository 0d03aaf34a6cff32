//! The pool without a reactor thread, at its limit: N threads share *one* epoll set; each
//! waits in `epoll_wait` for one event, reads that connection without blocking, answers every
//! complete request on its own thread (so a request may block it, as on a pool worker), writes,
//! and re-arms the connection. `EPOLLONESHOT` is what makes sharing safe: an event disarms the
//! connection, so no two threads ever hold it at once, until the holder re-arms it.
//!
//!     cargo run --release --bin min_oneshot -- --port 0 --threads 4
//!
//! No timers (an idle client is kept forever); see `lib.rs` for what else is skipped.

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Mutex;

use socketserver_minimal::{NbConn, args, bind, ctl, epoll_with_listener};

const LISTENER: u64 = u64::MAX;
/// Connection slots, by descriptor (a descriptor past this is refused).
const SLOTS: usize = 1 << 16;

fn main() {
    let a = args("--threads", 4);
    let listener = bind(a.port);
    let _ = listener.set_nonblocking(true);
    // The listener: level-triggered, exclusive: a new connection wakes one waiting thread.
    let ep = epoll_with_listener(&listener, LISTENER);
    // One slot per descriptor; the mutex is never contended (the one-shot event makes one
    // thread the holder), it only makes the sharing safe to write.
    let slots: &'static [Mutex<Option<NbConn>>] = Box::leak((0..SLOTS).map(|_| Mutex::new(None)).collect());
    let listener: &'static TcpListener = Box::leak(Box::new(listener));
    let threads: Vec<_> =
        (0..a.count).map(|_| std::thread::spawn(move || run(ep, listener, slots))).collect();
    for t in threads {
        let _ = t.join();
    }
}

const ONESHOT_IN: u32 = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
const ONESHOT_OUT: u32 = (libc::EPOLLOUT | libc::EPOLLONESHOT) as u32;

fn run(ep: RawFd, listener: &TcpListener, slots: &[Mutex<Option<NbConn>>]) {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    loop {
        // One event per wait: a thread that took several would serve them one after another,
        // behind a request that may block, while its siblings idle.
        // SAFETY: ev has room for one entry.
        let n = unsafe { libc::epoll_wait(ep, &mut ev, 1, -1) };
        if n <= 0 {
            continue;
        }
        if ev.u64 == LISTENER {
            accept_one(ep, listener, slots);
            continue;
        }
        let fd = ev.u64 as usize;
        let mut slot = slots[fd].lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = slot.as_mut() else { continue };
        let keep = ev.events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 && c.serve(true);
        let rearm = if c.wants_out() { ONESHOT_OUT } else { ONESHOT_IN };
        if !keep || ctl(ep, libc::EPOLL_CTL_MOD, fd as RawFd, rearm, fd as u64).is_err() {
            *slot = None; // closes it, and takes it out of the epoll set
        }
    }
}

fn accept_one(ep: RawFd, listener: &TcpListener, slots: &[Mutex<Option<NbConn>>]) {
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: a listening socket we own; null address pointers are allowed.
    let fd =
        unsafe { libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), flags) };
    if fd < 0 {
        return;
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    if fd as usize >= SLOTS {
        return;
    }
    let mut c = NbConn::new(stream);
    // The request is usually there already (the client sent it right after the handshake):
    // answer it now rather than after a trip through epoll.
    if !c.serve(true) {
        return;
    }
    let rearm = if c.wants_out() { ONESHOT_OUT } else { ONESHOT_IN };
    let mut slot = slots[fd as usize].lock().unwrap_or_else(|e| e.into_inner());
    *slot = Some(c);
    if ctl(ep, libc::EPOLL_CTL_ADD, fd, rearm, fd as u64).is_err() {
        *slot = None;
    }
}
