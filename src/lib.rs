//! socketserver: Python's `socketserver`, in Rust (crate docs are written with the server core).
#![deny(missing_docs)]

pub mod error;
pub mod handler;
pub mod shutdown;
pub mod trace;

pub use error::{Error, HandlerError, Result};
pub use handler::{Connection, FnHandler, RequestHandler, ServerContext, handler_fn};
pub use shutdown::{ShutdownHandle, shutdown_on_signals};
