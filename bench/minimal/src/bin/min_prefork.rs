//! The pre-forked model at its limit: bind once, fork N workers, each runs a blocking
//! accept loop on the shared listening socket and serves each connection to completion (as
//! Apache's prefork MPM and gunicorn's sync worker do). The kernel hands each connection to
//! one of the workers blocked in accept.
//!
//!     cargo run --release --bin min_prefork -- --port 0 --workers 4
//!
//! No respawn of dead workers; the parent just waits. A worker is told to die with its parent
//! (PR_SET_PDEATHSIG), so killing the parent does not leave orphans serving the port. See
//! `lib.rs` for what else is skipped.

use socketserver_minimal::{Buffers, args, bind, handle};

fn main() {
    let a = args("--workers", 4);
    let listener = bind(a.port);
    for _ in 0..a.count {
        // SAFETY: the parent is single-threaded (it never spawns a thread), so the child
        // inherits no lock held by a missing thread. The child never returns from worker().
        match unsafe { libc::fork() } {
            0 => worker(&listener),
            -1 => {
                eprintln!("fork: {}", std::io::Error::last_os_error());
                std::process::exit(1)
            }
            _ => {}
        }
    }
    // The parent serves nothing: it waits for its workers (blocking waitpid reaps each one).
    // SAFETY: a null status pointer is allowed.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {}
}

fn worker(listener: &std::net::TcpListener) -> ! {
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    let mut bufs = Buffers::default();
    for stream in listener.incoming().flatten() {
        handle(stream, &mut bufs);
    }
    // SAFETY: _exit never returns; the worker must not run the parent's exit path.
    unsafe { libc::_exit(0) }
}
