//! The fixed thread pool at its limit: the Rust Book's (ch. 21) pool, N workers taking
//! connections from an `Arc<Mutex<mpsc::Receiver>>`.
//!
//!     cargo run --release --bin min_pool -- --port 0 --threads 8
//!
//! This is the *naive* pool: a worker serves a keep-alive connection to completion, so N
//! open connections (even idle ones) occupy all N workers and every further connection waits
//! in the channel until one closes. With wrk's 32 keep-alive connections and 8 workers, 24
//! connections get nothing until the end. See `lib.rs` for what else is skipped.

use std::net::TcpStream;
use std::sync::{Arc, Mutex, mpsc};

use socketserver_minimal::{Buffers, args, bind, handle};

fn main() {
    let a = args("--threads", 8);
    let listener = bind(a.port);
    let (tx, rx) = mpsc::channel::<TcpStream>();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..a.count {
        let rx = Arc::clone(&rx);
        std::thread::spawn(move || {
            let mut bufs = Buffers::default(); // one pair of buffers per worker, reused
            loop {
                // The guard is a temporary of this statement: the lock is released before the
                // connection is served, so other workers can take the next one meanwhile.
                let next = rx.lock().map(|r| r.recv());
                match next {
                    Ok(Ok(stream)) => handle(stream, &mut bufs),
                    _ => return, // channel closed or a worker panicked holding the lock
                }
            }
        });
    }
    for stream in listener.incoming().flatten() {
        if tx.send(stream).is_err() {
            return;
        }
    }
}
