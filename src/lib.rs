//! socketserver: Python's `socketserver`, in Rust (crate docs are written with the server core).
#![deny(missing_docs)]

pub mod concurrency;
pub mod error;
pub mod handler;
pub mod listener;
pub mod server;
pub mod shutdown;
pub mod trace;

pub use concurrency::{Concurrency, Forking, Job, Sequential, Threading};
pub use error::{Error, HandlerError, Result};
pub use handler::{Connection, FnHandler, RequestHandler, ServerContext, handler_fn};
pub use server::{ForkingTcpServer, Server, ServerBuilder, TcpServer, ThreadingTcpServer};
pub use shutdown::{ShutdownHandle, shutdown_on_signals};
