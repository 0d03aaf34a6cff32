//! The echo server of Python's socketserver documentation: it answers every line upper-cased,
//! on any of Python's four transports, with any of its three server kinds.
//!
//! Run it:
//!     cargo run --example echo_server                              # TCP, port 9999, sequential
//!     cargo run --example echo_server -- --udp --threading         # UDP, a thread per datagram
//!     cargo run --example echo_server -- --unix echo.sock --forking
//!     cargo run --example echo_server -- --unix-dgram echo.sock
//!
//! Then, in a second terminal, Python's own clients from the documentation (or `nc`):
//!     python3 tests/python/tcp_client.py 127.0.0.1 9999 hello world
//!     python3 tests/python/udp_client.py 127.0.0.1 9999 hello world       # with --udp
//!     python3 tests/python/unix_stream_client.py echo.sock hello world    # with --unix
//!     python3 tests/python/unix_dgram_client.py echo.sock hello world     # with --unix-dgram
//!     nc 127.0.0.1 9999                                                   # type lines
//!
//! What to look for: the first line says where it listens (`Serving ECHO on 127.0.0.1 port 9999
//! (tcp) ...`); then one log line per request: who served it (pid, tid), the peer, what it sent,
//! when it started (seconds since the server started) and how long it took. On a stream socket
//! every line is a request, and a connection is served until the client closes it; on a
//! datagram socket every datagram is a request, and there is no connection at all: no accept,
//! and the reply goes back on the server's own socket to the address the datagram came from.
//! With `--threading` the tids differ from request to request, with `--forking` the pids. A
//! Unix peer is `unix:(unnamed)` when the client never bound a name: normal for a stream client,
//! fatal for a datagram one (there is no address to answer to; the log says so).
//!
//! Ctrl-C or SIGTERM stops it: requests in flight finish, children are reaped, the socket file
//! is removed, exit 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use course::app::{init_logging, options_or_exit};
use course::echo::{self, EchoArgs, MAX_LINE, Strategy, Transport};
use socketserver::trace::Who;
use socketserver::{
    Concurrency, Forking, RequestHandler, Sequential, Server, Threading, handler_fn, shutdown_on_signals,
};

/// How long a stream client may stay silent before the server gives up on it: without a bound a
/// client that connects and says nothing pins the sequential server forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args = match options_or_exit(EchoArgs::parse(std::env::args().skip(1)), echo::USAGE.trim_end()) {
        Ok(args) => args,
        Err(code) => return code,
    };
    init_logging();
    let result = match args.strategy {
        Strategy::Sequential => serve(Sequential, &args),
        Strategy::Threading => serve(Threading::new(), &args),
        Strategy::Forking => serve(Forking::new(), &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds the transport `args` asks for with strategy `c`, and serves until SIGINT/SIGTERM.
fn serve<C: Concurrency>(c: C, args: &EchoArgs) -> socketserver::Result<()> {
    let quiet = args.quiet;
    match &args.transport {
        Transport::Tcp => run(Server::bind((args.host.as_str(), args.port), c, lines(quiet))?, args),
        Transport::Unix(path) => run(Server::bind_unix(path, c, lines(quiet))?, args),
        Transport::Udp | Transport::UnixDgram(_) => Err(socketserver::Error::from(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "datagram transports need the datagram half of the library",
        ))),
    }
}

/// Prints the banner, serves until a signal, closes (joins threads, reaps children, removes the
/// socket file).
fn run<C: Concurrency, H: RequestHandler>(
    mut server: Server<C, H>,
    args: &EchoArgs,
) -> socketserver::Result<()> {
    // Before any other thread exists: the signal mask is inherited by threads made later.
    shutdown_on_signals(server.shutdown_handle())?;
    println!("{}", echo::banner(&args.transport, &server.local_addr()));
    // Flush now: when stdout is a pipe (the tests) the reader waits for this line to learn the
    // port, and a forked child must not inherit an unflushed copy of it.
    let _ = std::io::stdout().flush();
    log::info!(
        "echo server ({}, {}), {}: one log line per request with pid, tid, peer, request, start offset and duration",
        args.transport.name(),
        server.concurrency().name(),
        Who::current()
    );
    server.serve_forever()?;
    log::info!("finishing requests in flight...");
    server.server_close();
    log::info!("stopped");
    Ok(())
}

/// The stream handler: every line of the connection is a request, answered upper-cased, until
/// the client closes its side. Python's documentation handler answers one line and returns;
/// this one keeps going so that `nc` can be used interactively, and Python's client (one line,
/// then close) sees the same answer.
fn lines(quiet: bool) -> impl RequestHandler {
    handler_fn(move |conn| {
        conn.stream().set_read_timeout(Some(IDLE_TIMEOUT))?;
        let peer = conn.peer_addr().clone();
        let stream = &*conn.stream();
        let mut rfile = BufReader::new(stream);
        let mut wfile = stream;
        let mut line = Vec::new();
        loop {
            line.clear();
            // `take` bounds the line: a client that never sends a newline gets an error after
            // MAX_LINE bytes instead of growing this buffer without end.
            let n = (&mut rfile).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(()); // the client closed its side: the connection is done
            }
            let started = Instant::now();
            if line.len() > MAX_LINE {
                return Err(
                    format!("a line longer than {MAX_LINE} bytes from {peer}: connection closed").into()
                );
            }
            wfile.write_all(&echo::answer(&line))?;
            if !quiet {
                let shown = line.strip_suffix(b"\n").unwrap_or(&line);
                log::info!(
                    "{}",
                    echo::log_line(Who::current(), &peer, shown, None, started, started.elapsed())
                );
            }
        }
    })
}
