//! The process-per-connection model at its limit: accept, `fork()`, the child serves the
//! connection and `_exit`s, the parent closes its copy and reaps what has finished.
//!
//!     cargo run --release --bin min_forking -- --port 0
//!
//! No cap on the number of children (Python's and socketserver's `max_children` default to
//! 40), and zombies of finished children linger until the next accept reaps them. See `lib.rs`
//! for what is skipped.

use std::os::fd::AsRawFd;

use socketserver_minimal::{Buffers, args, bind, handle};

fn main() {
    let a = args("--threads", 1);
    let listener = bind(a.port);
    for stream in listener.incoming().flatten() {
        // SAFETY: this process is single-threaded (no thread is ever spawned here), so the
        // child cannot inherit a lock held by a thread that does not exist in it: it may
        // allocate and do ordinary I/O. The child never returns into this loop: it closes its
        // copy of the listening socket, serves one connection and leaves with `_exit`, which
        // skips atexit handlers and stdio flushing that belong to the parent.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: the fd is ours; the child will not use the listener again.
                unsafe { libc::close(listener.as_raw_fd()) };
                handle(stream, &mut Buffers::default());
                // SAFETY: _exit is async-signal-safe and never returns.
                unsafe { libc::_exit(0) }
            }
            -1 => {}           // fork failed (EAGAIN, ENOMEM): drop the connection and keep accepting.
            _ => drop(stream), // the parent closes its copy; the child's keeps the connection
        }
        // Reap every child that has finished, without blocking. SAFETY: a null status
        // pointer is allowed; WNOHANG returns 0 at once when no child has exited.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
    }
}
