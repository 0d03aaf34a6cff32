//! The crate's one error type, in the style of walkdir: a single [`Error`] enum that says what
//! went wrong, keeps the underlying cause reachable through [`std::error::Error::source`], and a
//! [`Result`] alias.

use std::fmt;
use std::io;

use crate::transport::Addr;

/// What a handler returns when it fails: any error type, boxed.
///
/// A [`RequestHandler`](crate::RequestHandler) returns this from `setup`, `handle` and `finish`;
/// the server passes it to [`RequestHandler::handle_error`](crate::RequestHandler::handle_error)
/// (Python's `BaseServer.handle_error`) and goes on serving.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, socketserver::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the server machinery itself.
///
/// Errors *inside* one request never reach this type through `serve_forever`: they are given to
/// the handler's `handle_error` hook and the server goes on, as in Python.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Creating, binding or listening on the server socket failed (address in use, permission
    /// denied for a port below 1024; for a Unix socket also: a path too long, something that is
    /// not a socket at the path, another server listening there, a directory we may not write).
    Bind {
        /// The address we tried to bind: an internet address, or a Unix socket path.
        addr: Addr,
        /// The operating system's reason.
        source: io::Error,
    },
    /// Any other I/O error from the operating system (poll, fork, waitpid, pipe, ...).
    Io(io::Error),
    /// `shutdown()` was called from inside a request handler of the same server.
    ///
    /// Python's `shutdown()` deadlocks here: it waits for `serve_forever` to return, and
    /// `serve_forever` waits for the handler that is waiting. This crate refuses the *wait*
    /// instead. The stop itself has been requested: the server stops after this request.
    ShutdownFromHandler,
    /// A shutdown handle was used in a forked child process. The child is a copy: setting a flag
    /// in it cannot stop the parent's loop, so the call is refused rather than silently ignored.
    NotServerProcess,
    /// A configuration value is out of range (say `max_children = 0`).
    InvalidConfig(&'static str),
    /// The server was already closed by `server_close`; it cannot serve again.
    Closed,
    /// A request handler panicked. The panic was caught at the request boundary; this carries its
    /// message.
    HandlerPanicked(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::ShutdownFromHandler => f.write_str(
                "shutdown() called from a request handler of the same server; \
                 the stop was requested, but waiting for it would deadlock",
            ),
            Error::NotServerProcess => f.write_str(
                "shutdown handle used in a forked child; only the server process can stop the server",
            ),
            Error::Closed => f.write_str("the server has been closed"),
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Error::HandlerPanicked(msg) => write!(f, "request handler panicked: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Io(io::Error::from(e))
    }
}

/// Turns a caught panic payload into readable text (`panic!("...")` gives a `&str` or a
/// `String`; anything else is reported by kind only).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn bind_error_keeps_its_source() {
        let e = Error::Bind {
            addr: Addr::Inet("127.0.0.1:80".parse().unwrap()),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(e.to_string().starts_with("cannot listen on 127.0.0.1:80"));
        assert!(e.source().is_some());
    }

    #[test]
    fn panic_payloads_become_text() {
        let p: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert_eq!(panic_message(&*p), "boom");
        let p: Box<dyn std::any::Any + Send> = Box::new(String::from("bang"));
        assert_eq!(panic_message(&*p), "bang");
        let p: Box<dyn std::any::Any + Send> = Box::new(42u8);
        assert_eq!(panic_message(&*p), "non-string panic payload");
    }
}
