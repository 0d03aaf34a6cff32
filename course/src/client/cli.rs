//! The command line of `examples/client.rs`: lexopt splits the arguments; the meanings, ranges and
//! messages are written here, with the help text, and tested here.

use std::path::PathBuf;
use std::time::Duration;

use super::connect::MAX_UNIX_PATH;
use super::echo::{DEFAULT_ECHO_ADDRESS, DEFAULT_ECHO_TIMEOUT, EchoConfig, EchoTarget};
use super::fire::{DEFAULT_TIMEOUT, FireConfig};
use super::load::{
    DEFAULT_CONNECTIONS, DEFAULT_THREADS, LoadConfig, MAX_CONNECTIONS, MAX_DURATION, MAX_REQUESTS, Threads,
};
use super::url::Url;

/// URL fired at when none is given: the example servers' one-second delay.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000/delay?s=1";

/// URL loaded in load mode when none is given: the example servers' tiny response.
pub const DEFAULT_LOAD_URL: &str = "http://127.0.0.1:8000/hello";

/// Requests fired when `-n` is not given.
pub const DEFAULT_N: usize = 10;

/// Most requests `-n` accepts: each is a thread and a socket, and past this a learner has more
/// likely mistyped than meant it.
pub const MAX_N: usize = 10_000;

/// The help text, printed for `-h` and after a usage error.
pub const USAGE: &str = "\
usage: client [-n N] [--timeout SECS] [--svg FILE] [--unix PATH] [URL]
       client --load [-c N] [-t N | --thread-per-connection] [-d DURATION]
                     [-n N] [--close] [--timeout S] [--svg FILE] [--unix PATH]
                     [URL]
       client --echo tcp|udp [-n N] [--timeout S] [--svg FILE] [HOST:PORT]
       client --echo unix|unix-dgram --unix PATH [-n N] [--timeout S] [--svg F]

Fire mode (the default) opens N connections, sends one GET on each at the same
instant, and shows who handled which request and when: one at a time, or
concurrently.

Load mode (--load) keeps C connections busy, one request after another, and
reports requests/s, latency percentiles, a latency histogram and errors.

Echo mode (--echo) fires N lines (\"hello 1\\n\" ...) the same way at an echo
server that answers each line upper-cased (Python's socketserver example, or
examples/echo_server.rs), each on its own connection or datagram socket, checks
every answer, and draws the same table and timeline.

arguments:
  URL             http://HOST[:PORT][/PATH]  (default http://127.0.0.1:8000/
                  delay?s=1, or http://127.0.0.1:8000/hello with --load)
  HOST:PORT       --echo tcp or udp: the echo server (default 127.0.0.1:9999)
options:
  -n N            fire, echo: number of concurrent requests, 1 to 10000
                  (default 10); load: stop after N requests, 1 to 10000000
  --timeout SECS  seconds allowed per request, the connect included (default
                  70: a SYN a full backlog drops is retried after 1, 3, 7 s ...;
                  with --echo 5: a lost datagram is \"no reply after 5.0 s\")
  --unix PATH     HTTP over the Unix stream socket at PATH instead of TCP (the
                  URL still gives the path and the Host header), in fire and
                  load mode; with --echo unix or unix-dgram, the echo server
  --svg FILE      also draw what was measured into FILE, an SVG picture:
                  fire, echo: the timeline; load: latency histogram and req/s
  -h, --help      show this help
load options:
  --load          load mode
  -c N            connections, 1 to 10000 (default 32)
  -t N            threads, each an epoll loop over its share of the connections,
                  like wrk -t; 1 to 10000, at most C are started (default 2)
  --thread-per-connection
                  one blocking thread per connection instead (like wrk -t C)
  -d DURATION     stop after DURATION: 10s, 500ms, 2m, 1h or plain seconds; at
                  most 1h. With -n too, whichever comes first; with neither, 10s
  --close         one request per connection (Connection: close) instead of
                  keep-alive
echo options:
  --echo KIND     echo mode over KIND: tcp, udp, unix or unix-dgram. The Unix
                  ones need --unix PATH; a unix-dgram client binds a socket
                  file of its own in $TMPDIR for the answer, and removes it

exit status: 0 if every request got a response (any status), 1 if any failed,
2 for a usage error.";

/// What the client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Fire `n` requests at once and report (see [`fire`](super::fire())).
    Fire,
    /// Keep connections busy and measure (see [`load`](super::load())).
    Load(LoadArgs),
    /// Fire `n` lines at an echo server (see [`fire_echo`](super::fire_echo())); the server is
    /// [`Args::echo`].
    Echo,
}

/// The options only load mode takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadArgs {
    /// Connections (`-c`).
    pub connections: usize,
    /// Threads (`-t`, or `--thread-per-connection`).
    pub threads: Threads,
    /// Stop after this long (`-d`).
    pub duration: Option<Duration>,
    /// Stop after this many requests (`-n` in load mode).
    pub requests: Option<u64>,
    /// False with `--close`.
    pub keep_alive: bool,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// What to do.
    pub mode: Mode,
    /// Number of requests (`-n`) in fire mode; in load mode see [`LoadArgs::requests`].
    pub n: usize,
    /// Time allowed per request (`--timeout`).
    pub timeout: Duration,
    /// Where to send them (in echo mode unused, and the default).
    pub url: Url,
    /// Where to write the picture of the run (`--svg FILE`), if anywhere.
    pub svg: Option<PathBuf>,
    /// HTTP over the Unix stream socket at this path instead of TCP (`--unix PATH`); in echo
    /// mode it is in [`Args::echo`] instead.
    pub unix: Option<PathBuf>,
    /// The echo server, in echo mode (`--echo KIND` with `HOST:PORT` or `--unix PATH`).
    pub echo: Option<EchoTarget>,
}

impl Args {
    /// The [`FireConfig`] these arguments describe.
    pub fn fire_config(&self) -> FireConfig {
        FireConfig {
            timeout: self.timeout,
            unix: self.unix.clone(),
            ..FireConfig::new(self.n, self.url.clone())
        }
    }

    /// The [`EchoConfig`] these arguments describe, or `None` outside echo mode.
    pub fn echo_config(&self) -> Option<EchoConfig> {
        let target = self.echo.clone()?;
        Some(EchoConfig { timeout: self.timeout, ..EchoConfig::new(self.n, target) })
    }

    /// The [`LoadConfig`] these arguments describe, or `None` in fire mode.
    pub fn load_config(&self) -> Option<LoadConfig> {
        let Mode::Load(load) = self.mode else { return None };
        Some(LoadConfig {
            connections: load.connections,
            threads: load.threads,
            duration: load.duration,
            requests: load.requests,
            keep_alive: load.keep_alive,
            timeout: self.timeout,
            unix: self.unix.clone(),
            ..LoadConfig::new(self.url.clone())
        })
    }
}

/// `-c` and `-t`: a whole number from 1 to `max`.
fn whole(flag: &str, v: &str, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(k) if (1..=max).contains(&k) => Ok(k),
        _ => Err(format!("{flag} wants a whole number from 1 to {max}, not {v:?}")),
    }
}

/// Parses a duration: `10s`, `500ms`, `2m`, `1h`, `1.5s` or plain seconds (`10`). More than 0
/// and at most [`MAX_DURATION`].
///
/// ```
/// use std::time::Duration;
/// use course::client::cli::parse_duration;
///
/// assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
/// assert_eq!(parse_duration("2h"), None);
/// ```
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let secs = number.parse::<f64>().ok()? * scale;
    (secs.is_finite() && secs > 0.0 && secs <= MAX_DURATION.as_secs_f64())
        .then(|| Duration::from_secs_f64(secs))
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run with these arguments (boxed: they are large, [`Command::Help`] is nothing).
    Run(Box<Args>),
    /// Print [`USAGE`] and exit successfully.
    Help,
}

/// Parses the arguments after the program name. An `Err` carries a one-line reason; the caller
/// prints it with [`USAGE`] and exits with status 2.
///
/// ```
/// use course::client::cli::{Command, parse};
///
/// let Ok(Command::Run(args)) = parse(["-n", "5", "http://127.0.0.1:8000/hello"]) else {
///     panic!("should parse");
/// };
/// assert_eq!(args.n, 5);
/// assert_eq!(args.url.path_and_query, "/hello");
/// ```
pub fn parse<I, S>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    use lexopt::Arg::{Long, Short, Value};
    let mut n: Option<String> = None;
    let mut timeout: Option<Duration> = None;
    let mut unix: Option<PathBuf> = None;
    let mut echo: Option<String> = None;
    let mut url: Option<String> = None;
    let mut load = false;
    let mut connections: Option<usize> = None;
    let mut threads: Option<usize> = None;
    let mut per_connection = false;
    let mut duration: Option<Duration> = None;
    let mut close = false;
    let mut svg: Option<PathBuf> = None;
    // lexopt splits the spellings (`--timeout 2`, `--timeout=2`, `-n5`, `-n=5`, `--`); what each
    // option means, its range and the message when it is wrong stay here.
    let mut parser = lexopt::Parser::from_args(args.into_iter().map(Into::<String>::into));
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let name = match arg {
            Short(c) => format!("-{c}"),
            Long(l) => format!("--{l}"),
            Value(v) => {
                // Lossy is lossless here: the arguments came in as Strings.
                let v = v.to_string_lossy().into_owned();
                if url.replace(v.clone()).is_some() {
                    return Err(format!("more than one URL given ({v:?} is extra)"));
                }
                continue;
            }
        };
        let mut value = || match parser.value() {
            Ok(v) => Ok(v.to_string_lossy().into_owned()),
            Err(_) => Err(format!("{name} needs a value")),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            // Checked after the loop, when the mode (and so the allowed range) is known.
            "-n" => n = Some(value()?),
            "--timeout" => {
                let v = value()?;
                timeout = match v.parse::<f64>() {
                    Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Some(Duration::from_secs_f64(s)),
                    _ => {
                        return Err(format!(
                            "--timeout wants seconds, more than 0 and at most 86400, not {v:?}"
                        ));
                    }
                };
            }
            "--load" => load = true,
            "-c" => connections = Some(whole(&name, &value()?, MAX_CONNECTIONS)?),
            "-t" => threads = Some(whole(&name, &value()?, MAX_CONNECTIONS)?),
            "--thread-per-connection" => per_connection = true,
            "-d" => {
                let v = value()?;
                duration = match parse_duration(&v) {
                    Some(d) => Some(d),
                    None => {
                        return Err(format!(
                            "-d wants a duration like 10s, 500ms or 2m, more than 0 and at most 1h, \
                             not {v:?}"
                        ));
                    }
                };
            }
            "--close" => close = true,
            "--unix" => {
                let v = value()?;
                if v.is_empty() {
                    return Err("--unix wants the path of a socket".into());
                }
                // sun_path is a fixed array: a longer path cannot be connected to at all.
                if v.len() > MAX_UNIX_PATH {
                    return Err(format!(
                        "--unix path is {} bytes; a Unix socket path holds at most {MAX_UNIX_PATH}",
                        v.len()
                    ));
                }
                unix = Some(PathBuf::from(v));
            }
            "--echo" => {
                let v = value()?;
                if !matches!(v.as_str(), "tcp" | "udp" | "unix" | "unix-dgram") {
                    return Err(format!("--echo wants tcp, udp, unix or unix-dgram, not {v:?}"));
                }
                echo = Some(v);
            }
            "--svg" => {
                let v = value()?;
                if v.is_empty() {
                    return Err("--svg wants a file name".into());
                }
                svg = Some(PathBuf::from(v));
            }
            _ => return Err(format!("unknown option {name:?}")),
        }
    }
    let mode = if load {
        let requests = match n.as_deref() {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(k) if (1..=MAX_REQUESTS).contains(&k) => Some(k),
                _ => {
                    return Err(format!(
                        "-n with --load wants a whole number from 1 to {MAX_REQUESTS}, not {v:?}"
                    ));
                }
            },
        };
        let threads = match (threads, per_connection) {
            (Some(_), true) => return Err("-t and --thread-per-connection exclude each other".into()),
            (_, true) => Threads::PerConnection,
            (t, false) => Threads::EventLoops(t.unwrap_or(DEFAULT_THREADS)),
        };
        Mode::Load(LoadArgs {
            connections: connections.unwrap_or(DEFAULT_CONNECTIONS),
            threads,
            duration,
            requests,
            keep_alive: !close,
        })
    } else {
        let only_load = [
            ("-c", connections.is_some()),
            ("-t", threads.is_some()),
            ("--thread-per-connection", per_connection),
            ("-d", duration.is_some()),
            ("--close", close),
        ];
        if let Some((flag, _)) = only_load.iter().find(|(_, given)| *given) {
            return Err(format!("{flag} is a load-mode option: add --load"));
        }
        Mode::Fire
    };
    let n = match (mode, n.as_deref()) {
        (Mode::Fire | Mode::Echo, Some(v)) => match v.parse::<usize>() {
            Ok(k) if (1..=MAX_N).contains(&k) => k,
            _ => return Err(format!("-n wants a whole number from 1 to {MAX_N}, not {v:?}")),
        },
        _ => DEFAULT_N,
    };
    let Some(kind) = echo else {
        let default_url = if load { DEFAULT_LOAD_URL } else { DEFAULT_URL };
        let url = url.as_deref().unwrap_or(default_url);
        let url = Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        return Ok(Command::Run(Box::new(Args { mode, n, timeout, url, svg, unix, echo: None })));
    };
    if load {
        return Err("--echo and --load exclude each other".into());
    }
    let target = match (kind.as_str(), unix, url) {
        ("unix" | "unix-dgram", None, _) => return Err(format!("--echo {kind} needs --unix PATH")),
        ("unix" | "unix-dgram", Some(_), Some(extra)) => {
            return Err(format!("--echo {kind} takes no address ({extra:?}): the server is --unix PATH"));
        }
        ("unix", Some(path), None) => EchoTarget::Unix(path),
        ("unix-dgram", Some(path), None) => EchoTarget::UnixDgram(path),
        (_, Some(_), _) => return Err(format!("--unix goes with --echo unix or unix-dgram, not {kind}")),
        (_, None, address) => {
            let address = address.unwrap_or_else(|| DEFAULT_ECHO_ADDRESS.to_string());
            let port_ok = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok || address.contains('/') {
                return Err(format!(
                    "--echo {kind} wants HOST:PORT (like {DEFAULT_ECHO_ADDRESS}), not {address:?}"
                ));
            }
            if kind == "tcp" { EchoTarget::Tcp(address) } else { EchoTarget::Udp(address) }
        }
    };
    let url = Url::parse(DEFAULT_URL).map_err(|e| e.to_string())?;
    let timeout = timeout.unwrap_or(DEFAULT_ECHO_TIMEOUT);
    Ok(Command::Run(Box::new(Args {
        mode: Mode::Echo,
        n,
        timeout,
        url,
        svg,
        unix: None,
        echo: Some(target),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Args {
        match parse(args.iter().copied()) {
            Ok(Command::Run(a)) => *a,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(e) => e,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let a = run(&[]);
        assert_eq!(a.mode, Mode::Fire);
        assert_eq!(a.n, DEFAULT_N);
        assert_eq!(a.timeout, DEFAULT_TIMEOUT);
        assert_eq!(a.url, Url::parse(DEFAULT_URL).unwrap());
        assert_eq!(a.fire_config().timeout, Duration::from_secs(70));
        assert_eq!(a.svg, None);
    }

    #[test]
    fn svg_in_both_modes() {
        assert_eq!(run(&["--svg", "t.svg"]).svg, Some(PathBuf::from("t.svg")));
        let a = run(&["--load", "--svg=out/l.svg", "-d", "1s"]);
        assert_eq!((a.svg.clone(), a.load_config().is_some()), (Some(PathBuf::from("out/l.svg")), true));
        assert!(err(&["--svg"]).contains("--svg needs a value"));
        assert!(err(&["--svg="]).contains("--svg wants a file name"));
    }

    #[test]
    fn options_in_every_spelling() {
        for args in [
            &["-n", "5", "--timeout", "2.5", "http://h:1/x"][..],
            &["http://h:1/x", "-n5", "--timeout=2.5"],
            &["--timeout", "2.5", "-n", "5", "--", "http://h:1/x"],
        ] {
            let a = run(args);
            assert_eq!((a.n, a.timeout), (5, Duration::from_millis(2500)), "{args:?}");
            assert_eq!(a.url.port, 1);
            assert_eq!(a.fire_config().timeout, Duration::from_millis(2500));
        }
    }

    #[test]
    fn load_mode_flags() {
        use crate::client::load::DEFAULT_DURATION;
        let two = Threads::EventLoops(DEFAULT_THREADS);
        let load = |connections, duration: Option<u64>, requests, keep_alive| {
            Mode::Load(LoadArgs {
                connections,
                threads: two,
                duration: duration.map(Duration::from_millis),
                requests,
                keep_alive,
            })
        };
        let table: &[(&[&str], Mode)] = &[
            (&["--load"], load(32, None, None, true)),
            (&["--load", "-c", "8", "-d", "5s"], load(8, Some(5000), None, true)),
            (&["-c8", "-d500ms", "--load"], load(8, Some(500), None, true)),
            (&["-c=8", "-d=500ms", "--load"], load(8, Some(500), None, true)),
            (&["--load", "-n", "10000"], load(32, None, Some(10_000), true)),
            (&["--load", "-n10000000", "-d", "2"], load(32, Some(2000), Some(10_000_000), true)),
            (&["--load", "--close", "-c", "1", "-d", "1.5m"], load(1, Some(90_000), None, false)),
            (&["--load", "-d", "1h"], load(32, Some(3_600_000), None, true)),
            // -n past fire mode's limit is fine in load mode.
            (&["-n", "20000", "--load"], load(32, None, Some(20_000), true)),
        ];
        for (args, mode) in table {
            let a = run(args);
            assert_eq!(a.mode, *mode, "{args:?}");
            assert_eq!(a.url, Url::parse(DEFAULT_LOAD_URL).unwrap(), "{args:?}");
            assert!(a.fire_config().n == DEFAULT_N);
        }
        let a = run(&["--load", "-n", "500", "--timeout", "2", "http://h:1/x"]);
        let cfg = a.load_config().expect("load mode");
        assert_eq!((cfg.requests, cfg.timeout, cfg.url.port), (Some(500), Duration::from_secs(2), 1));
        assert_eq!(run(&["--load"]).load_config().unwrap().time_limit(), DEFAULT_DURATION);
        assert_eq!(run(&[]).load_config(), None);
        let threads = |args: &[&str]| run(args).load_config().unwrap().threads;
        assert_eq!(threads(&["--load"]), Threads::EventLoops(2));
        assert_eq!(threads(&["--load", "-t", "4"]), Threads::EventLoops(4));
        assert_eq!(threads(&["--load", "-t1"]), Threads::EventLoops(1));
        assert_eq!(threads(&["--load", "--thread-per-connection"]), Threads::PerConnection);
        let cfg = run(&["--load", "-c", "3", "-t", "8"]).load_config().unwrap();
        assert_eq!(cfg.thread_count(), 3, "no more threads than connections");
    }

    #[test]
    fn unix_socket_in_fire_and_load_mode() {
        let a = run(&["--unix", "/tmp/s.sock", "http://localhost/hello"]);
        assert_eq!((a.mode, a.unix.clone()), (Mode::Fire, Some(PathBuf::from("/tmp/s.sock"))));
        let cfg = a.fire_config();
        assert_eq!(
            (cfg.unix, cfg.url.host.as_str(), cfg.url.path_and_query.as_str()),
            (a.unix, "localhost", "/hello")
        );
        let a = run(&["--load", "--unix=/run/app.sock", "-c", "4"]);
        let cfg = a.load_config().unwrap();
        assert_eq!(cfg.unix, Some(PathBuf::from("/run/app.sock")));
        assert_eq!(cfg.url, Url::parse(DEFAULT_LOAD_URL).unwrap());
        assert_eq!(run(&[]).fire_config().unix, None);
        assert_eq!(a.echo_config(), None);
    }

    #[test]
    fn echo_mode_flags() {
        use crate::client::echo::EchoTarget as T;
        let table: &[(&[&str], T)] = &[
            (&["--echo", "tcp"], T::Tcp("127.0.0.1:9999".into())),
            (&["--echo=udp", "localhost:10000"], T::Udp("localhost:10000".into())),
            (&["[::1]:9", "--echo", "tcp"], T::Tcp("[::1]:9".into())),
            (&["--echo", "unix", "--unix", "echo.sock"], T::Unix("echo.sock".into())),
            (&["--unix", "/tmp/e.sock", "--echo", "unix-dgram"], T::UnixDgram("/tmp/e.sock".into())),
        ];
        for (args, target) in table {
            let a = run(args);
            assert_eq!((a.mode, a.echo.as_ref()), (Mode::Echo, Some(target)), "{args:?}");
            let cfg = a.echo_config().unwrap();
            assert_eq!(
                (cfg.n, cfg.timeout, &cfg.target),
                (DEFAULT_N, DEFAULT_ECHO_TIMEOUT, target),
                "{args:?}"
            );
            assert_eq!(a.unix, None, "{args:?}: --unix belongs to the echo target");
        }
        let a = run(&["--echo", "udp", "-n", "50", "--timeout", "0.5", "--svg", "e.svg"]);
        let cfg = a.echo_config().unwrap();
        assert_eq!((cfg.n, cfg.timeout), (50, Duration::from_millis(500)));
        assert_eq!(a.svg, Some(PathBuf::from("e.svg")));
        assert_eq!(run(&[]).echo_config(), None);
    }

    #[test]
    fn echo_and_unix_usage_errors() {
        let long = format!("/tmp/{}", "x".repeat(MAX_UNIX_PATH));
        let table: &[(&[&str], &str)] = &[
            (&["--echo"], "--echo needs a value"),
            (&["--echo", "sctp"], "--echo wants tcp, udp, unix or unix-dgram, not \"sctp\""),
            (&["--echo", "tcp", "--load"], "--echo and --load exclude each other"),
            (&["--echo", "tcp", "-c", "2"], "-c is a load-mode option"),
            (&["--echo", "unix"], "--echo unix needs --unix PATH"),
            (&["--echo", "unix-dgram", "--unix", "e.sock", "h:1"], "takes no address"),
            (&["--echo", "tcp", "--unix", "e.sock"], "--unix goes with --echo unix or unix-dgram, not tcp"),
            (&["--echo", "tcp", "http://127.0.0.1:9999/"], "--echo tcp wants HOST:PORT"),
            (&["--echo", "udp", "localhost"], "--echo udp wants HOST:PORT (like 127.0.0.1:9999)"),
            (&["--echo", "udp", ":9999"], "wants HOST:PORT"),
            (&["--echo", "udp", "h:0"], "wants HOST:PORT"),
            (&["--echo", "udp", "-n", "0"], "-n wants a whole number from 1 to 10000"),
            (&["--unix"], "--unix needs a value"),
            (&["--unix="], "--unix wants the path of a socket"),
            (&["--unix", &long], "a Unix socket path holds at most 107"),
        ];
        for (args, expected) in table {
            let e = err(args);
            assert!(e.contains(expected), "{args:?}: {e}");
        }
    }

    #[test]
    fn durations() {
        let table = [
            ("10s", Some(10_000)),
            ("10", Some(10_000)),
            ("0.25", Some(250)),
            ("500ms", Some(500)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("0", None),
            ("-1s", None),
            ("61m", None),
            ("inf", None),
            ("s", None),
            ("", None),
        ];
        for (text, millis) in table {
            assert_eq!(parse_duration(text), millis.map(Duration::from_millis), "{text:?}");
        }
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(["-n", "3", "-h"]), Ok(Command::Help));
        assert_eq!(parse(["--help"]), Ok(Command::Help));
    }

    #[test]
    fn usage_errors() {
        let table: &[(&[&str], &str)] = &[
            (&["-x"], "unknown option \"-x\""),
            (&["--verbose"], "unknown option"),
            (&["-n"], "-n needs a value"),
            (&["-n", "0"], "from 1 to 10000"),
            (&["-n", "10001"], "from 1 to 10000"),
            (&["-n", "-3"], "from 1 to 10000"),
            (&["-n", "many"], "from 1 to 10000"),
            (&["--timeout"], "--timeout needs a value"),
            (&["--timeout", "0"], "--timeout wants seconds"),
            (&["--timeout", "nan"], "--timeout wants seconds"),
            (&["--timeout=-1"], "--timeout wants seconds"),
            (&["http://a/", "http://b/"], "more than one URL"),
            (&["https://a/"], "bad URL"),
            (&["-c", "4"], "-c is a load-mode option: add --load"),
            (&["-d", "1s"], "-d is a load-mode option"),
            (&["--close"], "--close is a load-mode option"),
            (&["-t", "2"], "-t is a load-mode option"),
            (&["--thread-per-connection"], "--thread-per-connection is a load-mode option"),
            (&["--load", "-t", "0"], "-t wants a whole number from 1 to 10000"),
            (&["--load", "-t", "two"], "-t wants"),
            (&["--load", "-t", "2", "--thread-per-connection"], "exclude each other"),
            (&["--load", "-c", "0"], "-c wants a whole number from 1 to 10000"),
            (&["--load", "-c", "10001"], "-c wants"),
            (&["--load", "-c"], "-c needs a value"),
            (&["--load", "-n", "0"], "from 1 to 10000000"),
            (&["--load", "-n", "10000001"], "from 1 to 10000000"),
            (&["--load", "-d", "0s"], "-d wants a duration"),
            (&["--load", "-d", "2h"], "-d wants a duration"),
            (&["--load", "-d", "soon"], "-d wants a duration"),
            (&["--load", "-d", "=5s"], "-d wants a duration"),
            (&["--load=yes"], "--load"),
        ];
        for (args, expected) in table {
            let e = err(args);
            assert!(e.contains(expected), "{args:?}: {e}");
        }
    }

    #[test]
    fn usage_fits_80_columns() {
        assert!(USAGE.lines().all(|l| l.len() <= 80));
    }
}
