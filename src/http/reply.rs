//! [`Reply`]: a service's answer now, or a promise of one later — after a delay, or from an
//! offload worker — so that one service runs unchanged on every strategy.
//!
//! On the [`EventLoop`](crate::EventLoop) a later reply is what keeps the loop free: a delay is
//! a timer of the loop (Python's `await asyncio.sleep(1)`), offloaded work runs on one of
//! [`EventLoop::offload`](crate::EventLoop::offload)'s workers (asyncio's `run_in_executor`),
//! and meanwhile the loop serves everybody else. On every other strategy the thread that runs
//! the service simply waits for it ([`Reply::wait`]): it sleeps, or runs the work inline. It
//! holds that thread either way, which is what those strategies are built for.

use std::time::{Duration, Instant};

use super::response::Response;

/// Work that makes an answer later.
#[doc(hidden)]
pub type Work<A> = Box<dyn FnOnce() -> A + Send>;

/// An answer now, or the work that makes it later: a [`Reply`]'s inside, and what the
/// non-blocking drivers take (with an HTTP `Answer` in it). Hidden: only the crate's drivers
/// use it.
#[doc(hidden)]
pub enum Later<A> {
    /// The answer.
    Now(A),
    /// Run this at that instant ([`Reply::after`]): on the event loop, a reactor timer.
    At(Instant, Work<A>),
    /// Run this off the loop ([`Reply::offload`]): on the event loop, an offload worker.
    Offload(Work<A>),
}

impl<A> Later<A> {
    /// The answer, on the calling thread, which waits for it: sleeps until the timer's
    /// instant, or runs the offloaded work itself. What a pool worker and every blocking
    /// driver do, so one service runs unchanged on every strategy.
    pub fn wait(self) -> A {
        match self {
            Later::Now(answer) => answer,
            Later::At(at, work) => {
                // A plain sleep: this thread has nothing else to do (it is the request's).
                let left = at.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    std::thread::sleep(left);
                }
                work()
            }
            Later::Offload(work) => work(),
        }
    }
}

impl<A> std::fmt::Debug for Later<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Later::Now(_) => f.write_str("Now"),
            Later::At(at, _) => f.debug_tuple("At").field(at).finish(),
            Later::Offload(_) => f.write_str("Offload"),
        }
    }
}

/// A service's answer: a [`Response`] now, or one made later. Any `Response` converts into it,
/// so `Fn(&Request) -> Response` closures are services as they always were.
///
/// ```
/// use std::time::Duration;
/// use socketserver::http::{HttpHandler, Reply, Request, Response};
///
/// let handler = HttpHandler::new(|req: &Request| match req.path() {
///     // On the event loop: a timer, and the loop serves others for that second.
///     "/later" => Reply::after(Duration::from_secs(1), || Response::text(200, "a second later\n")),
///     // On the event loop: a worker of EventLoop::offload computes it.
///     "/sum" => Reply::offload(|| Response::text(200, format!("{}\n", (0..10_000_000u64).sum::<u64>()))),
///     _ => Reply::now(Response::text(200, "now\n")),
/// });
/// # let _ = handler;
/// ```
///
/// A panic inside a later closure is caught like one in the service: the client gets a 500.
#[derive(Debug)]
pub struct Reply {
    inner: Later<Response>,
}

impl Reply {
    /// This response, now.
    pub fn now(response: Response) -> Reply {
        Reply { inner: Later::Now(response) }
    }

    /// The response `make` returns, called once `delay` has passed (counted from now). On the
    /// event loop a timer of the loop (the loop serves other clients meanwhile, and `make`
    /// runs on it); elsewhere the serving thread sleeps, then calls `make`.
    pub fn after(delay: Duration, make: impl FnOnce() -> Response + Send + 'static) -> Reply {
        Reply { inner: Later::At(Instant::now() + delay, Box::new(make)) }
    }

    /// The response `work` returns, computed off the event loop: on a worker of
    /// [`EventLoop::offload`](crate::EventLoop::offload) (on the loop itself if it has none).
    /// Elsewhere the serving thread runs `work` itself.
    pub fn offload(work: impl FnOnce() -> Response + Send + 'static) -> Reply {
        Reply { inner: Later::Offload(Box::new(work)) }
    }

    /// The response, made on this thread, which waits for it: sleeps out a delay, runs
    /// offloaded work inline. What every strategy but the event loop does.
    pub fn wait(self) -> Response {
        self.inner.wait()
    }

    /// Taken apart, for a non-blocking driver.
    pub(crate) fn into_later(self) -> Later<Response> {
        self.inner
    }
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply::now(response)
    }
}
