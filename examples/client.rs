//! Fire N requests at a server at the same instant and see how it handled them; or, with
//! `--load`, keep it busy and measure requests per second and latency; over TCP or, with
//! `--unix PATH`, a Unix socket. `--echo` fires lines at an echo server instead.
//!
//! Run a server in one terminal, the client in another:
//!
//! ```text
//! cargo run --example sequential_server            # or threaded_server, forking_server, ...
//! cargo run --example client -- -n 5 http://127.0.0.1:8000/delay?s=1
//! ```
//!
//! What to look for:
//!
//! * `done at` in the table: against a sequential server the answers come back one second
//!   apart (1, 2, 3, 4, 5 s); against a threaded or forking one they all come back after
//!   about one second.
//! * the timeline: a staircase under a single `pid ... tid ...` heading means one at a time;
//!   parallel bars under five `tid` headings (threads) or five `pid` headings (processes)
//!   mean concurrently. `-` is time a request spent waiting (in the accept backlog, say).
//! * the summary's `most in flight` and `verdict` lines say the same in words. Against a
//!   server that sends no `X-Start`/`X-Elapsed` headers (Python's `http.server`), a
//!   `based on` line says the verdict was read from the spacing of the answers.
//! * `~` in the timeline: a connect the server's full backlog kept waiting (the kernel
//!   retries a dropped SYN after 1, 3, 7 s ...). Try it against Python's backlog of 5:
//!   `python3 tests/python/servers.py sequential 8001`, then `-n 30` at port 8001.
//!
//! Try `-n 50` against the pool server (its pool is smaller than 50), or a URL on a port
//! where nothing listens, to see how failures are reported.
//!
//! # Load mode
//!
//! ```text
//! cargo run --release --example threaded_server -- --quiet
//! cargo run --release --example client -- --load -t 2 -c 32 -d 5s http://127.0.0.1:8000/hello
//! cargo run --release --example client -- --load -c 32 -n 10000 --close http://127.0.0.1:8000/hello
//! cargo run --release --example client -- --load --thread-per-connection -c 32 -d 5s
//! ```
//!
//! Build both in release mode and start the server with `--quiet` (a log line per request
//! would be what you measure). While it runs, a progress line updates every second (only on a
//! terminal). What to look for in the report:
//!
//! * `requests ... req/s`: throughput. Compare keep-alive with `--close`: a new connection per
//!   request costs a handshake, an accept and, on a threaded server, a thread each time.
//! * `connections ... opened`: 32 with keep-alive means every connection was reused
//!   throughout; with `--close` it equals the requests.
//! * the latency row and histogram: p50 is the typical request, p99 and max the unlucky ones.
//!   Against the sequential server with `-c 32`, each request waits for the 31 ahead of it.
//! * `errors`: with `-c 500` against the forking server, or on a port where nothing listens.
//! * `-t 2` (the default) against `--thread-per-connection`: the same 32 connections driven by
//!   2 epoll threads or by 32 blocking threads. On a machine whose cores the server shares,
//!   the numbers differ, and `course/src/client/load/` explains why.
//!
//! `wrk -t2 -c32 -d5s http://127.0.0.1:8000/hello` measures the same thing with the same
//! threading model as `-t 2`; the numbers should agree within about 10 % (run each several
//! times, alternating: other work on the machine moves both).
//!
//! # Over a Unix socket
//!
//! `--unix PATH` sends the same HTTP over the Unix stream socket at PATH instead of TCP, in fire
//! mode and in load mode (both threading models); the URL still gives the path and the `Host`
//! header. The report is the same, its heading says `over PATH`.
//!
//! ```text
//! cargo run --example client -- --unix /tmp/app.sock -n 10 http://localhost/delay?s=1
//! cargo run --release --example client -- --load --unix /tmp/app.sock -c 32 -d 5s http://localhost/hello
//! ```
//!
//! A missing socket file, a path that is not a socket, a socket nobody listens on, or no
//! permission: each request fails as `refused`, with the reason (`connect: no such file (is the
//! server running?)`), as a refused TCP connect does. A Unix listener whose queue is full
//! refuses nothing: the connect waits for room (in the timeline `~`, as for a dropped SYN).
//!
//! # Echo mode
//!
//! `--echo tcp|udp|unix|unix-dgram` fires N lines (`hello 1\n` ...) at an echo server that
//! answers each line upper-cased (Python's socketserver documentation example), each on its own
//! connection or datagram socket, and checks every answer (`echoed` in the table; a wrong one is
//! `bad`). The server sends no `X-Pid`/`X-Tid`, so the verdict comes from the spacing of the
//! answers, and an echo server that answers at once is "too quick to tell": its own log says
//! which thread answered. A lost UDP datagram is a failed request, `no reply after 5.0 s`
//! (`--timeout` sets it).
//!
//! ```text
//! python3 -c 'import socketserver as s
//! class H(s.BaseRequestHandler):
//!     def handle(self): self.request[1].sendto(self.request[0].strip().upper(), self.client_address)
//! s.ThreadingUDPServer(("127.0.0.1", 9999), H).serve_forever()'
//! cargo run --example client -- --echo udp -n 5                     # 127.0.0.1:9999
//! cargo run --example client -- --echo unix-dgram --unix echo.sock -n 5
//! ```
//!
//! A Unix datagram client binds a socket file of its own in `$TMPDIR`, so the server has an
//! address to answer to, and removes it when its line is answered or given up on.
//!
//! # Pictures
//!
//! `--svg FILE` also writes what was measured as an SVG picture (the report on stdout is the
//! same with or without it): in fire mode the timeline, one row per request coloured by the
//! worker that served it; in load mode the latency distribution and requests/s over the run.
//!
//! ```text
//! cargo run --example client -- -n 10 --svg timeline.svg http://127.0.0.1:8000/delay?s=1
//! ```
//!
//! Exit status: 0 if every request got a response (any status), 1 if any failed, 2 for a
//! usage error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use course::client::cli::{self, Command, Mode};
use course::client::{fire, fire_echo, load, load_with_progress, svg};

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(reason) => {
            eprintln!("client: {reason}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let answered = match (args.mode, args.load_config()) {
        (Mode::Fire | Mode::Echo, _) => {
            let report = match args.echo_config() {
                Some(cfg) => fire_echo(&cfg),
                None => fire(&args.fire_config()),
            };
            print!("{report}");
            if let Some(path) = &args.svg
                && !write_svg(path, &svg::fire_timeline(&report))
            {
                return ExitCode::FAILURE;
            }
            report.all_answered()
        }
        (_, Some(cfg)) => {
            // The live line only on a terminal: piped into a file or another program, `\r`
            // overwrites would be noise.
            let report = if std::io::stdout().is_terminal() {
                let mut stdout = std::io::stdout();
                let report = load_with_progress(&cfg, |p| {
                    let _ = write!(stdout, "\r{p}   ");
                    let _ = stdout.flush();
                });
                // Clear the progress line before the report.
                println!("\r{:79}\r", "");
                report
            } else {
                load(&cfg)
            };
            print!("{report}");
            if let Some(path) = &args.svg
                && !write_svg(path, &svg::load_charts(&report))
            {
                return ExitCode::FAILURE;
            }
            report.all_answered()
        }
        // `Mode` is non_exhaustive; a mode this example does not know cannot be asked for here.
        _ => {
            eprintln!("client: this mode is not built yet");
            return ExitCode::from(2);
        }
    };
    if answered { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Writes the picture; says why on stderr (and the run fails) if it cannot.
fn write_svg(path: &std::path::Path, picture: &str) -> bool {
    match std::fs::write(path, picture) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("client: cannot write {}: {e}", path.display());
            false
        }
    }
}
