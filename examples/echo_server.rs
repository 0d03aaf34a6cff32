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

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use course::app::{init_logging, options_or_exit};
use course::echo::{self, EchoArgs, MAX_LINE, Strategy, Transport};
use socketserver::trace::Who;
use socketserver::{
    Concurrency, Datagram, DatagramHandler, Forking, RequestHandler, Sequential, Server, ServerBuilder,
    StreamIo, StreamRequestHandler, Threading, datagram_fn, shutdown_on_signals,
};

/// Python's `StreamRequestHandler.timeout`, set: how long a stream client may stay silent (or
/// leave an answer unread) before the server gives up on it. Python's default is `None`, which
/// lets one client that connects and says nothing pin the sequential server forever.
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
    // Python's max_packet_size (the library's default too), said here because the log line and
    // the tests name the figure.
    let datagram_server = || ServerBuilder::new().max_packet_size(MAX_LINE);
    match &args.transport {
        Transport::Tcp => run(Server::bind((args.host.as_str(), args.port), c, lines(quiet))?, args),
        Transport::Unix(path) => run(Server::bind_unix(path, c, lines(quiet))?, args),
        Transport::Udp => {
            run(datagram_server().bind_udp((args.host.as_str(), args.port), c, datagrams(quiet))?, args)
        }
        Transport::UnixDgram(path) => {
            run(datagram_server().bind_unix_datagram(path, c, datagrams(quiet))?, args)
        }
    }
}

/// Prints the banner, serves until a signal, closes (joins threads, reaps children, removes the
/// socket file).
fn run<C: Concurrency, H: RequestHandler>(
    mut server: Server<C, H>,
    args: &EchoArgs,
) -> socketserver::Result<()> {
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

/// The stream handler (Python's `StreamRequestHandler` subclass in the documentation): every
/// line of the connection is a request, answered upper-cased, until the client closes its side.
/// Python's documentation handler answers one line and returns; this one keeps going so that
/// `nc` can be used interactively, and Python's client (one line, then close) sees the same.
fn lines(quiet: bool) -> impl RequestHandler {
    StreamRequestHandler::new(move |io: &mut StreamIo<'_>| {
        let peer = io.peer_addr().clone();
        let mut line = Vec::new();
        loop {
            line.clear();
            // `take` bounds the line: a client that never sends a newline gets an error after
            // MAX_LINE bytes instead of growing this buffer without end.
            let n = (&mut io.rfile).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(()); // the client closed its side: the connection is done
            }
            let started = Instant::now();
            if line.len() > MAX_LINE {
                return Err(
                    format!("a line longer than {MAX_LINE} bytes from {peer}: connection closed").into()
                );
            }
            io.wfile.write_all(&echo::answer(&line))?;
            // wfile is buffered and the client waits for this answer before it sends (or
            // closes): flush every line, or both sides would wait for each other.
            io.wfile.flush()?;
            if !quiet {
                let shown = line.strip_suffix(b"\n").unwrap_or(&line);
                log::info!(
                    "{}",
                    echo::log_line(Who::current(), &peer, shown, None, started, started.elapsed())
                );
            }
        }
    })
    .timeout(Some(IDLE_TIMEOUT))
    // One small answer per small request: Nagle's algorithm would hold the second answer on a
    // connection until the first is acknowledged (up to 40 ms with delayed ACKs).
    .disable_nagle_algorithm(true)
}

/// The datagram handler (Python's `DatagramRequestHandler`): the packet is the request; what is
/// written to the `Datagram` is sent back as one datagram when the handler returns. A truncated
/// packet is not answered: its upper-cased first 8192 bytes would look like a whole answer.
fn datagrams(quiet: bool) -> impl DatagramHandler {
    datagram_fn(move |d: &mut Datagram| {
        let started = Instant::now();
        let packet = d.packet();
        let shown = packet.strip_suffix(b"\n").unwrap_or(packet);
        if d.truncated() {
            let note =
                format!("truncated ({} bytes sent, {} kept): not answered", d.original_len(), packet.len());
            log::warn!(
                "{}",
                echo::log_line(Who::current(), d.peer_addr(), shown, Some(&note), started, started.elapsed())
            );
            return Ok(());
        }
        let reply = echo::answer(packet);
        // Logged before the reply leaves (it is sent after this returns): a reply that cannot be
        // sent, to an unnamed Unix socket, is then the error line right after this one.
        if !quiet {
            log::info!(
                "{}",
                echo::log_line(Who::current(), d.peer_addr(), shown, None, started, started.elapsed())
            );
        }
        d.write_all(&reply)?;
        Ok(())
    })
}
