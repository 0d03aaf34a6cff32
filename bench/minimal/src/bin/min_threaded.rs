//! The thread-per-connection model at its limit: accept, `std::thread::spawn`, repeat.
//!
//!     cargo run --release --bin min_threaded -- --port 0
//!
//! Threads are detached (never joined), and nothing caps how many exist: a burst of 10 000
//! connections makes 10 000 threads. See `lib.rs` for what is skipped.

use socketserver_minimal::{Buffers, args, bind, handle};

fn main() {
    let a = args("--threads", 1);
    let listener = bind(a.port);
    for stream in listener.incoming().flatten() {
        // A small stack: the handler needs a few KiB (its buffers are on the heap). Fewer
        // pages to map per thread is part of the model's best case.
        let spawned = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || handle(stream, &mut Buffers::default()));
        // Out of threads (EAGAIN): drop this connection (the stream was moved into the closure
        // and dropped with it) and keep accepting.
        drop(spawned);
    }
}
