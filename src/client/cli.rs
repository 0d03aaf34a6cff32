//! The command line of `examples/client.rs`, parsed by hand (no dependency) and tested here.

use std::time::Duration;

use super::fire::{DEFAULT_TIMEOUT, FireConfig};
use super::url::Url;

/// URL fired at when none is given: the example servers' one-second delay.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000/delay?s=1";

/// Requests fired when `-n` is not given.
pub const DEFAULT_N: usize = 10;

/// Most requests `-n` accepts: each is a thread and a socket, and past this a learner has more
/// likely mistyped than meant it.
pub const MAX_N: usize = 10_000;

/// The help text, printed for `-h` and after a usage error.
pub const USAGE: &str = "\
usage: client [-n N] [--timeout SECS] [URL]

Opens N connections, sends one GET on each at the same instant, and shows who
handled which request and when: one at a time, or concurrently.

arguments:
  URL             http://HOST[:PORT][/PATH]
                  (default http://127.0.0.1:8000/delay?s=1)
options:
  -n N            number of concurrent requests, 1 to 10000 (default 10)
  --timeout SECS  seconds allowed per request (default 70)
  -h, --help      show this help

exit status: 0 if every request got a response (any status), 1 if any failed,
2 for a usage error.";

/// What the client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Fire `n` requests at once and report (see [`fire`](super::fire())).
    Fire,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// What to do.
    pub mode: Mode,
    /// Number of requests (`-n`).
    pub n: usize,
    /// Time allowed per request (`--timeout`).
    pub timeout: Duration,
    /// Where to send them.
    pub url: Url,
}

impl Args {
    /// The [`FireConfig`] these arguments describe.
    pub fn fire_config(&self) -> FireConfig {
        FireConfig { timeout: self.timeout, ..FireConfig::new(self.n, self.url.clone()) }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run with these arguments.
    Run(Args),
    /// Print [`USAGE`] and exit successfully.
    Help,
}

/// Parses the arguments after the program name. An `Err` carries a one-line reason; the caller
/// prints it with [`USAGE`] and exits with status 2.
///
/// ```
/// use socketserver::client::cli::{Command, parse};
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
    let mut n = DEFAULT_N;
    let mut timeout = DEFAULT_TIMEOUT;
    let mut url: Option<String> = None;
    let mode = Mode::Fire;
    let mut only_positional = false;
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        // `--name=value` and `--name value` both work; so does `-n5`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if arg.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ if arg.starts_with("-n") && arg.len() > 2 => ("-n".to_string(), Some(arg[2..].to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            _ if only_positional || !arg.starts_with('-') || arg == "-" => {
                if url.replace(arg.clone()).is_some() {
                    return Err(format!("more than one URL given ({arg:?} is extra)"));
                }
            }
            "--" => only_positional = true,
            "-h" | "--help" => return Ok(Command::Help),
            "-n" => {
                let v = value("-n")?;
                n = match v.parse::<usize>() {
                    Ok(k) if (1..=MAX_N).contains(&k) => k,
                    _ => {
                        return Err(format!("-n wants a whole number from 1 to {MAX_N}, not {v:?}"));
                    }
                };
            }
            "--timeout" => {
                let v = value("--timeout")?;
                timeout = match v.parse::<f64>() {
                    Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
                    _ => {
                        return Err(format!(
                            "--timeout wants seconds, more than 0 and at most 86400, not {v:?}"
                        ));
                    }
                };
            }
            // Room for the load mode (sustained requests, latency percentiles): it will set
            // `mode = Mode::Load` here and take its own options. Until then, say so plainly.
            "--load" => return Err("--load (load mode) is not built yet".to_string()),
            _ => return Err(format!("unknown option {arg:?}")),
        }
    }
    let url = url.as_deref().unwrap_or(DEFAULT_URL);
    let url = Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    Ok(Command::Run(Args { mode, n, timeout, url }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Args {
        match parse(args.iter().copied()) {
            Ok(Command::Run(a)) => a,
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
        assert_eq!(a.fire_config().connect_timeout, Duration::from_secs(5));
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
            (&["--load"], "not built yet"),
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
