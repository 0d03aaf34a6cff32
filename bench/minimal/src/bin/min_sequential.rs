//! The sequential model at its limit: one thread, a blocking accept loop, each connection
//! served to completion (all its keep-alive requests) before the next accept.
//!
//!     cargo run --release --bin min_sequential -- --port 0
//!
//! While one connection is open (even idle), every other client waits in the listen backlog:
//! that is the model, not a bug. See `lib.rs` for what is skipped.

use socketserver_minimal::{Buffers, args, bind, handle};

fn main() {
    let a = args("--threads", 1);
    let listener = bind(a.port);
    let mut bufs = Buffers::default(); // one pair of buffers for the life of the server
    // An accept error (EMFILE, ECONNABORTED) is skipped: the next accept may succeed.
    for stream in listener.incoming().flatten() {
        handle(stream, &mut bufs);
    }
}
