//! The master: forks the workers and supervises them from one thread, reading its signals from
//! a `signalfd` (see [`Prefork`](crate::Prefork), "The master").

use crate::transport::Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpid};

use super::worker::{self, WorkerSetup};
use super::{Held, Prefork, PreforkServer, STARTUP_WINDOW};
use crate::error::{Error, Result};
use crate::handler::RequestHandler;
use crate::sys;
use crate::trace::Who;

impl PreforkServer {
    /// Becomes the master: forks the workers, each serving `handler`, and supervises them
    /// until SIGTERM or SIGINT (see [`Prefork`](crate::Prefork), "The master", for every signal). Returns in the
    /// master only, with `Ok(())` once every worker has exited and been reaped; a worker never
    /// returns from here (it `_exit`s).
    ///
    /// Call it from a **single-threaded** process (no signal thread, no thread pool yet): the
    /// master forks, and receives its signals by blocking them in the calling thread. On return
    /// the calling thread's signal mask is restored.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the process has other threads; [`Error::Io`] if the signal
    /// machinery fails. On every error path the workers are killed and reaped first.
    pub fn run<H: RequestHandler>(self, handler: H) -> Result<()> {
        if sys::thread_count() > 1 {
            return Err(Error::InvalidConfig(
                "Prefork::run needs a single-threaded process: it forks, and it reads its signals \
                 by blocking them in the calling thread",
            ));
        }
        // A parent that ignores SIGCHLD (SIG_IGN) makes the kernel reap our workers itself: we
        // would never learn that one died. Put back the default, which does not auto-reap.
        // The process is single-threaded (checked above), so nothing races the change.
        sys::default_signal(Signal::SIGCHLD)?;

        let mut master_signals = SigSet::empty();
        for s in MASTER_SIGNALS {
            master_signals.add(s);
        }
        // Blocked signals stay pending instead of running a default action or a handler; the
        // signalfd then hands them to us as data, in the main loop, where any code is allowed.
        let saved_mask = master_signals.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        // Non-blocking: the loop drains it until EAGAIN. CLOEXEC: no exec'd program inherits it.
        let signals =
            match SignalFd::with_flags(&master_signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
                Ok(fd) => fd,
                Err(e) => {
                    let _ = saved_mask.thread_set_mask();
                    return Err(e.into());
                }
            };
        let target = self.config.workers;
        log::info!(
            "master {}: {} workers × {}, {}; TTIN/TTOU add/remove one, TERM stops gracefully",
            Who::current(),
            target,
            match (self.config.event_loop, self.config.threads) {
                (Some(0), _) => "1 event loop".to_string(),
                (Some(n), _) => format!("1 event loop with {n} offload threads"),
                (None, None) => "1 request at a time".to_string(),
                (None, Some(m)) => format!("up to {m} threads"),
            },
            if self.config.reuse_port { "one SO_REUSEPORT socket each" } else { "one shared listener" },
        );
        let mut master = Master {
            config: self.config,
            addr: self.local_addr,
            held: Some(self.held),
            handler: Arc::new(handler),
            signals,
            saved_mask,
            pid: getpid(),
            workers: Vec::new(),
            target,
            stop: None,
            backoff: Duration::ZERO,
            respawn_at: Instant::now(),
            next_serial: 0,
        };
        // On an error (or a panic) `Master`'s Drop kills and reaps the workers and restores the
        // signal mask; on success there are no workers left and Drop only restores the mask.
        master.supervise()
    }
}

/// The signals the master blocks and reads from its signalfd.
const MASTER_SIGNALS: [Signal; 5] =
    [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGTTIN, Signal::SIGTTOU];

/// Which stop is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: `graceful_timeout`.
    Graceful,
    /// SIGINT: `quick_timeout`.
    Quick,
}

/// The master's record of one worker.
#[derive(Debug)]
struct Worker {
    pid: Pid,
    born: Instant,
    /// Order of birth, to pick the oldest for SIGTTOU.
    serial: u64,
    /// Sent SIGTERM (retired by SIGTTOU, or the master is stopping); SIGKILL at this instant.
    kill_at: Option<Instant>,
    /// Retired by SIGTTOU: its exit is expected and it is not replaced.
    retiring: bool,
    /// Sent SIGKILL already.
    killed: bool,
}

/// The master's state. Lives only in the master: a worker never returns into it.
struct Master<H> {
    config: Prefork,
    addr: Addr,
    /// `None` once a stop began: the master closes its copy of the listener then.
    held: Option<Held>,
    handler: Arc<H>,
    signals: SignalFd,
    saved_mask: SigSet,
    pid: Pid,
    workers: Vec<Worker>,
    /// How many non-retiring workers there should be (changed by SIGTTIN/SIGTTOU).
    target: usize,
    stop: Option<Stop>,
    /// Current start-up-failure delay; zero when workers are healthy.
    backoff: Duration,
    /// No worker is forked before this instant.
    respawn_at: Instant,
    next_serial: u64,
}

impl<H: RequestHandler> Master<H> {
    /// The master loop: reap, keep the worker count, enforce deadlines, sleep until a signal or
    /// the next deadline.
    fn supervise(&mut self) -> Result<()> {
        loop {
            self.reap();
            if self.stop.is_some() {
                if self.workers.is_empty() {
                    log::info!("master {}: stopped, every worker reaped", Who::current());
                    return Ok(());
                }
            } else {
                self.spawn_missing();
            }
            self.kill_overdue();

            let timeout = self.next_deadline().map(|at| at.saturating_duration_since(Instant::now()));
            // Sleep until a signal or the next deadline (sys rounds the timeout up, so the loop
            // never spins through the last fraction of a millisecond). Our signals are blocked,
            // so only one we do not handle (SIGSTOP/SIGCONT from a debugger) can interrupt the
            // wait; then the reads below find nothing and the loop goes round again.
            sys::wait_readable(self.signals.as_fd(), timeout)?;
            // Drain every pending signal: several may be waiting.
            while let Some(info) = self.signals.read_signal()? {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(signal) => self.on_signal(signal),
                    Err(_) => log::warn!("master: unexpected signal number {}", info.ssi_signo),
                }
            }
        }
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            // Nothing to do here: the loop reaps on every wake-up.
            Signal::SIGCHLD => {}
            Signal::SIGTERM | Signal::SIGINT if self.stop.is_some() => {
                log::warn!("master: {signal} again: killing every worker now");
                for w in self.workers.iter_mut().filter(|w| !w.killed) {
                    let _ = kill(w.pid, Signal::SIGKILL);
                    w.killed = true;
                }
            }
            Signal::SIGTERM | Signal::SIGINT => {
                let (stop, timeout) = if signal == Signal::SIGTERM {
                    (Stop::Graceful, self.config.graceful_timeout)
                } else {
                    (Stop::Quick, self.config.quick_timeout)
                };
                log::info!(
                    "master: {signal}: stopping: workers finish their requests in flight (up to {:.1} s), \
                     then exit (send it again to kill them now)",
                    timeout.as_secs_f64()
                );
                self.stop = Some(stop);
                // Close our copy of the listener: once the workers have closed theirs the port
                // is closed and clients are refused, instead of queueing in a backlog that
                // nobody will ever accept from.
                self.held = None;
                let deadline = Instant::now() + timeout;
                for w in &mut self.workers {
                    terminate(w, deadline);
                }
            }
            Signal::SIGTTIN if self.stop.is_none() => {
                self.target += 1;
                log::info!("master: SIGTTIN: {} workers", self.target);
            }
            Signal::SIGTTOU if self.stop.is_none() => {
                if self.target <= 1 {
                    log::info!("master: SIGTTOU: already at 1 worker, the minimum");
                    return;
                }
                self.target -= 1;
                // The oldest goes first, as in gunicorn: it has had the most time to grow.
                let deadline = Instant::now() + self.config.graceful_timeout;
                if let Some(w) = self
                    .workers
                    .iter_mut()
                    .filter(|w| !w.retiring && w.kill_at.is_none())
                    .min_by_key(|w| w.serial)
                {
                    w.retiring = true;
                    log::info!("master: SIGTTOU: {} workers; retiring worker {}", self.target, w.pid);
                    terminate(w, deadline);
                }
            }
            other => log::debug!("master: {other} ignored while stopping"),
        }
    }

    /// Collects every exited worker: `waitpid(-1, WNOHANG)` until nothing is left.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.on_exit(pid, status);
                    }
                }
                Err(Errno::EINTR) => continue,
                // No children at all: any we thought we had were reaped by someone else in this
                // process. Forget them rather than wait forever.
                Err(Errno::ECHILD) => {
                    if !self.workers.is_empty() {
                        log::error!("master: {} workers vanished (reaped elsewhere?)", self.workers.len());
                        self.workers.clear();
                    }
                    return;
                }
                Err(e) => {
                    log::error!("master: waitpid failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: Pid, status: WaitStatus) {
        let Some(i) = self.workers.iter().position(|w| w.pid == pid) else {
            log::debug!("master: reaped {pid}, not a worker: {}", describe(status));
            return;
        };
        let w = self.workers.swap_remove(i);
        let lived = w.born.elapsed();
        if self.stop.is_some() || w.retiring {
            log::info!(
                "master: worker {pid} exited ({}) after {:.1} s",
                describe(status),
                lived.as_secs_f64()
            );
        } else if lived < STARTUP_WINDOW {
            // Dying at start-up usually means it will die again: don't fork-bomb.
            self.backoff = next_backoff(self.backoff, self.config.backoff_initial, self.config.backoff_max);
            self.respawn_at = Instant::now() + self.backoff;
            log::warn!(
                "master: worker {pid} died at start-up ({}, {:.2} s after fork); next worker in {:.1} s",
                describe(status),
                lived.as_secs_f64(),
                self.backoff.as_secs_f64()
            );
        } else {
            self.backoff = Duration::ZERO;
            log::warn!(
                "master: worker {pid} died ({}) after {:.1} s; replacing it",
                describe(status),
                lived.as_secs_f64()
            );
        }
    }

    /// Forks workers until `target` non-retiring ones exist, unless a back-off is running.
    fn spawn_missing(&mut self) {
        while self.workers.iter().filter(|w| !w.retiring).count() < self.target {
            if Instant::now() < self.respawn_at {
                return;
            }
            if let Err(e) = self.spawn() {
                // EAGAIN (process limit) or ENOMEM: treat it like a start-up failure, back off.
                self.backoff =
                    next_backoff(self.backoff, self.config.backoff_initial, self.config.backoff_max);
                self.respawn_at = Instant::now() + self.backoff;
                log::error!("master: fork failed: {e}; retrying in {:.1} s", self.backoff.as_secs_f64());
                return;
            }
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let Some(held) = &self.held else { return Ok(()) };
        let setup = WorkerSetup {
            master: self.pid,
            addr: self.addr.clone(),
            listener_fd: match held {
                Held::Shared(_) => Some(held.raw_fd()),
                Held::Reserved(_) => None,
            },
            close_fds: match held {
                Held::Shared(_) => [self.signals.as_raw_fd(), -1],
                Held::Reserved(s) => [self.signals.as_raw_fd(), s.as_raw_fd()],
            },
            worker_mask: {
                // The caller's mask, with SIGTERM kept blocked (the worker's `signals` thread
                // waits for it) and SIGINT unblocked (it is ignored in the worker).
                let mut m = self.saved_mask;
                m.add(Signal::SIGTERM);
                m.remove(Signal::SIGINT);
                m
            },
            threads: self.config.threads,
            event_loop: self.config.event_loop,
            builder: self
                .config
                .builder
                .clone()
                .exclusive_wakeup(self.config.exclusive_wakeup && !self.config.reuse_port),
            reuse_port: self.config.reuse_port,
        };
        // The master is single-threaded (checked in `run`), so no lock can be held by a thread
        // that vanished: fork_child's contract. The worker's life is `worker::main`; fork_child
        // ends it in _exit and never returns into the master's loop or its destructors there.
        let handler = Arc::clone(&self.handler);
        let child = sys::fork_child(move || worker::main(setup, handler))?;
        self.next_serial += 1;
        self.workers.push(Worker {
            pid: child,
            born: Instant::now(),
            serial: self.next_serial,
            kill_at: None,
            retiring: false,
            killed: false,
        });
        log::info!("master: booted worker {child} ({} running)", self.workers.len());
        Ok(())
    }

    /// SIGKILLs every SIGTERM'd worker whose time is up.
    fn kill_overdue(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if !w.killed && w.kill_at.is_some_and(|at| at <= now) {
                log::warn!("master: worker {} did not finish in time: SIGKILL", w.pid);
                let _ = kill(w.pid, Signal::SIGKILL);
                w.killed = true;
            }
        }
    }

    /// The earliest instant the loop must wake without a signal: a kill deadline, or the end of
    /// a respawn back-off while workers are missing.
    fn next_deadline(&self) -> Option<Instant> {
        let kills = self.workers.iter().filter(|w| !w.killed).filter_map(|w| w.kill_at);
        let missing =
            self.stop.is_none() && self.workers.iter().filter(|w| !w.retiring).count() < self.target;
        kills.chain(missing.then_some(self.respawn_at)).min()
    }
}

impl<H> Drop for Master<H> {
    /// The last line of defence on every exit path of the master, panics included: no worker
    /// outlives it, and the caller gets its signal mask back.
    fn drop(&mut self) {
        for w in &self.workers {
            log::warn!("master: killing worker {} on the way out", w.pid);
            let _ = kill(w.pid, Signal::SIGKILL);
        }
        for w in &self.workers {
            // SIGKILL cannot be caught, so this wait is short. EINTR: try again.
            while let Err(Errno::EINTR) = waitpid(w.pid, None) {}
        }
        self.workers.clear();
        // Drain what is pending, so that unblocking does not deliver a stale signal (a SIGINT
        // already acted on would otherwise kill the process with its default action).
        while let Ok(Some(_)) = self.signals.read_signal() {}
        let _ = self.saved_mask.thread_set_mask();
    }
}

/// SIGTERMs a worker (once) and sets when it will be SIGKILLed.
fn terminate(w: &mut Worker, deadline: Instant) {
    if w.killed {
        return;
    }
    if w.kill_at.is_none() {
        // ESRCH: it already exited and waits to be reaped; fine.
        let _ = kill(w.pid, Signal::SIGTERM);
    }
    w.kill_at = Some(w.kill_at.map_or(deadline, |at| at.min(deadline)));
}

/// The delay after one more start-up failure: `initial` the first time (`current` is zero), then
/// doubling, never above `max`.
fn next_backoff(current: Duration, initial: Duration, max: Duration) -> Duration {
    if current.is_zero() { initial } else { current.saturating_mul(2).min(max) }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            format!("killed by {sig}{}", if core { ", core dumped" } else { "" })
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX};
    use super::*;

    #[test]
    fn start_up_failures_back_off_from_a_tenth_of_a_second_doubling_to_five() {
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..9 {
            d = next_backoff(d, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX);
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }
}
