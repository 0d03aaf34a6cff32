//! [`Sequential`]: inline on the accept thread. The trade-off is on the type's docs.

use super::{Concurrency, Dispatcher};
use crate::handler::{Connection, RequestHandler};

/// Handle requests one at a time on the accept thread (Python's `TCPServer`).
///
/// # The trade-off
/// Nothing is shared because nothing runs at the same time: no locks, no thread or process
/// start-up cost, the smallest memory use, and perfectly ordered logs. The price is that the
/// server is *deaf while busy*: while one handler sleeps for a second, new connections wait in
/// the kernel's backlog, and ten 1-second requests take ten seconds. A single slow or malicious
/// client (one that sends a byte a second) stalls everyone until its read timeout fires.
///
/// *When to pick it:* teaching, tests, strictly serial resources, handlers that take
/// microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl Sequential {
    /// The sequential strategy (it has nothing to configure).
    pub fn new() -> Sequential {
        Sequential
    }
}

impl Concurrency for Sequential {
    fn name(&self) -> &'static str {
        "sequential"
    }

    fn process_request<H: RequestHandler>(&mut self, conn: Connection, dispatcher: &Dispatcher<H>) {
        // The whole request runs here, before the loop can accept the next connection.
        dispatcher.run(conn);
    }
}
