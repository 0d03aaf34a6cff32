//! HTTP on the pool's reactor: [`HttpConn`] is the [`ConnMachine`] the half-sync/half-async
//! driver runs, and [`HttpMachines`] reaches the handler's service through its
//! [`sans_io`](crate::RequestHandler::sans_io) hook, without knowing the handler's type.
//!
//! Nothing here does I/O or keeps state of its own: the connection's behaviour is all in
//! `http::conn` (the same machine the blocking driver runs, so both answer byte for byte the
//! same), and the I/O is all in the driver (`half_async`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::half_async::{ConnMachine, Machines, Want};
use crate::error::Error;
use crate::handler::RequestHandler;
use crate::http::{Answer, ConnConfig, HttpConn, Later, Request, Response};
use crate::shutdown::HandlerScope;
use crate::trace;
use crate::transport::{Addr, Listener, Stream};

impl ConnMachine for HttpConn {
    type Request = Request;
    type Answer = Answer;

    fn read_buf(&mut self) -> &mut [u8] {
        HttpConn::read_buf(self)
    }

    fn received(&mut self, n: usize, now: Instant) {
        HttpConn::received(self, n, now);
    }

    fn next_request(&mut self, now: Instant) -> Option<Request> {
        HttpConn::next_request(self, now)
    }

    fn respond(&mut self, request: Request, answer: Answer, now: Instant) {
        HttpConn::respond(self, request, answer, now);
    }

    fn output(&self) -> &[u8] {
        HttpConn::output(self)
    }

    fn sent(&mut self, n: usize, now: Instant) {
        HttpConn::sent(self, n, now);
    }

    fn failed(&mut self) {
        HttpConn::failed(self);
    }

    fn wants(&self) -> Want {
        HttpConn::wants(self)
    }

    fn deadline(&self) -> Option<Instant> {
        HttpConn::deadline(self)
    }

    fn timed_out(&mut self, now: Instant) {
        HttpConn::timed_out(self, now);
    }

    fn stopping(&mut self, now: Instant) {
        HttpConn::stopping(self, now);
    }

    fn would_block(&mut self) {
        HttpConn::would_block(self);
    }

    fn closes_after_output(&self) -> bool {
        HttpConn::closes_after_output(self)
    }

    fn ends_after(&self, request: &Request) -> bool {
        HttpConn::ends_after(self, request)
    }
}

/// Makes HTTP connections with the handler's configuration and runs its service on a worker.
pub(crate) struct HttpMachines<H> {
    handler: Arc<H>,
    config: Arc<ConnConfig>,
    server_id: u64,
}

impl<H: RequestHandler> HttpMachines<H> {
    /// `None` if the handler has no sans-IO side (it is not an HTTP handler).
    pub(crate) fn new(handler: Arc<H>, server_id: u64) -> Option<HttpMachines<H>> {
        let config = Arc::clone(handler.sans_io()?.config());
        Some(HttpMachines { handler, config, server_id })
    }
}

impl<H: RequestHandler> Machines for HttpMachines<H> {
    type Conn = HttpConn;

    fn new_conn(&self, peer: Addr, now: Instant) -> HttpConn {
        HttpConn::new(&self.config, peer, now)
    }

    fn configure(&self, stream: &Stream) {
        // As the blocking driver does.
        crate::http::limit_unsent(&self.config, stream);
    }

    fn configure_listener(&self, listener: &Listener) -> bool {
        // Every accepted TCP socket inherits the listener's TCP_NOTSENT_LOWAT: one setsockopt
        // for the server's life instead of one per connection.
        self.config.unsent_limit == 0 || listener.set_notsent_lowat(self.config.unsent_limit).is_ok()
    }

    fn verify(&self, peer: &Addr) -> bool {
        self.handler.verify_request(peer)
    }

    fn call(&self, request: &Request) -> Later<Answer> {
        // As on every other strategy: a handler that calls `shutdown()` on its own server gets
        // an error instead of a deadlock, also on a pool worker or the loop.
        let _scope = HandlerScope::enter(self.server_id);
        let later = match self.handler.sans_io() {
            Some(service) => service.start(request),
            // A handler whose hook said Some when the pool started and None now: nothing to run.
            // Answer rather than leave the client waiting.
            None => Later::Now(Answer {
                response: Response::text(500, "500 Internal Server Error\n"),
                panicked: None,
                started: Instant::now(),
                elapsed: Duration::ZERO,
                who: trace::Who::cached(),
            }),
        };
        // A panic is reported when the answer is made: now, or in the later work.
        let report = self.reporter(request);
        match later {
            Later::Now(answer) => Later::Now(report.report(answer)),
            Later::At(at, work) => Later::At(at, Box::new(move || report.report(work()))),
            Later::Offload(work) => Later::Offload(Box::new(move || report.report(work()))),
        }
    }

    fn shed(&self, _request: &Request, retry_after: Duration) -> Answer {
        // Retry-After takes whole seconds (RFC 9110 §10.2.3): round up, so a client told to
        // wait never comes back before the server said.
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let response = Response::text(503, "503 Service Unavailable: every worker is busy\n")
            .with_header("Retry-After", secs.to_string())
            // Close after it: a client that is refused should not keep a connection (and its
            // slot on the reactor) while it waits to retry; respond() sees this and closes.
            .with_header("Connection", "close");
        // Made here on the reactor, by no service: X-Tid names the reactor thread, and the
        // log line shows the 503 as every other request's line shows its status.
        Answer {
            response,
            panicked: None,
            started: Instant::now(),
            elapsed: Duration::ZERO,
            who: trace::Who::cached(),
        }
    }

    fn call_and_wait(&self, request: &Request) -> Answer {
        let _scope = HandlerScope::enter(self.server_id);
        match self.handler.sans_io() {
            // The blocking call: its slow-request warning counts the whole wait, as on every
            // blocking strategy (a pool worker is one).
            Some(service) => self.reporter(request).report(service.call(request)),
            None => self.call(request).wait(),
        }
    }
}

impl<H: RequestHandler> HttpMachines<H> {
    fn reporter(&self, request: &Request) -> Reporter<H> {
        Reporter { handler: Arc::clone(&self.handler), peer: request.peer_addr().clone(), id: self.server_id }
    }
}

/// Reports a panicked service's answer to the handler's `handle_error`, on whichever thread
/// made the answer.
struct Reporter<H> {
    handler: Arc<H>,
    peer: Addr,
    id: u64,
}

impl<H: RequestHandler> Reporter<H> {
    fn report(&self, answer: Answer) -> Answer {
        if let Some(message) = &answer.panicked {
            let _scope = HandlerScope::enter(self.id);
            // The blocking driver returns the panic from `handle`, and the dispatcher reports
            // it; here the driver reports it the same way, to the same hook.
            let error: crate::HandlerError = Box::new(Error::HandlerPanicked(message.clone()));
            // handle_error is user code too: a panic in it must not take the thread down.
            let report = || self.handler.handle_error(&self.peer, &error);
            if catch_unwind(AssertUnwindSafe(report)).is_err() {
                log::error!("handle_error panicked while reporting: {error}");
            }
        }
        answer
    }
}
