//! # socketserver-course
//!
//! The course's tooling around the [`socketserver`] library, kept out of the library so that a
//! user who depends on `socketserver` gets the server and nothing of ours: no env_logger, no
//! stdout printing, no argument parsers.
//!
//! * [`app`]: the example application every example server serves (the endpoints, the command
//!   line, the banner line, `main`'s helpers);
//! * [`echo`]: the echo server's command line, first line and log line (`echo_server`);
//! * [`client`]: the bundled client (fire mode, load mode, histogram, timeline, its command line).
//!
//! The root package's `examples/`, `tests/` and `benches/` use it through a dev-dependency
//! (`course = { package = "socketserver-course", path = "course" }`); it is never published.
#![deny(missing_docs)]

pub mod app;
pub mod client;
pub mod echo;
