//! Shared test helpers: example servers as child processes, a tiny HTTP client, /proc readers.
//!
//! Forking servers must not fork inside this multi-threaded test harness, so every server here
//! runs as a child process (the example binaries that `cargo test` builds), is talked to over
//! loopback TCP, and is stopped and reaped by `Drop` even when an assertion fails.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Where cargo put the example binaries: target/<profile>/examples, beside the deps/ folder that
/// holds this test binary.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples; with a filter like `--test NAME`, run \
         `cargo build --examples` first",
        path.display()
    );
    path
}

/// An example server running as a child process on a free port.
pub struct ServerProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The socket path, for a server started with `--unix` (then `addr` means nothing).
    pub unix: Option<PathBuf>,
    pub pid: u32,
    stderr: Option<thread::JoinHandle<String>>,
    /// What the server has written to stderr so far, line by line as it arrives.
    live_log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `cargo run --example NAME -- --port 0 ARGS...` and waits for its banner line.
    pub fn start(name: &str, args: &[&str]) -> ServerProcess {
        let mut cmd = Command::new(example_path(name));
        cmd.args(["--port", "0"]).args(args);
        Self::start_command(name, cmd)
    }

    /// Starts `cargo run --example NAME -- --unix PATH ARGS...` and waits for its banner line.
    pub fn start_unix(name: &str, path: &std::path::Path, args: &[&str]) -> ServerProcess {
        let mut cmd = Command::new(example_path(name));
        cmd.arg("--unix").arg(path).args(args);
        Self::start_command(name, cmd)
    }

    /// Like [`start`](ServerProcess::start), with the soft and hard `RLIMIT_NOFILE` of the
    /// server set to `nofile` by the shell (`ulimit -n`; the shell `exec`s the server, so the pid
    /// is the server's). No `pre_exec`: it is unsafe in a multi-threaded parent.
    pub fn start_with_nofile(name: &str, nofile: u32, args: &[&str]) -> ServerProcess {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(example_path(name))
            .args(["--port", "0"])
            .args(args);
        Self::start_command(name, cmd)
    }

    /// Starts `cmd`, any program that prints the example servers' banner line first (Python's
    /// `http.server` prints the same words), and waits for that line.
    pub fn start_command(name: &str, cmd: Command) -> ServerProcess {
        Self::spawn(name, cmd, |line, me| match course::app::parse_banner(line) {
            Some(addr) => {
                me.addr = addr;
                true
            }
            // "Serving HTTP on PATH (unix) (curl --unix-socket PATH ...) ..."
            None => match line.strip_prefix("Serving HTTP on ").and_then(|l| l.split_once(" (unix) ")) {
                Some((path, _)) => {
                    me.unix = Some(PathBuf::from(path));
                    true
                }
                None => false,
            },
        })
    }

    /// Starts `echo_server ARGS...` (with `--port 0` unless ARGS name a Unix socket) and waits
    /// for its banner, `Serving ECHO on 127.0.0.1 port 9999 (tcp) ...` or `Serving ECHO on
    /// PATH (unix-dgram) ...`.
    pub fn start_echo(args: &[&str]) -> ServerProcess {
        let mut cmd = Command::new(example_path("echo_server"));
        if !args.iter().any(|a| a.starts_with("--unix")) {
            cmd.args(["--port", "0"]);
        }
        cmd.args(args);
        Self::spawn(&format!("echo_server {}", args.join(" ")), cmd, |line, me| {
            match course::echo::parse_banner(line) {
                Some(course::echo::Listening::Inet { addr, .. }) => me.addr = addr,
                Some(course::echo::Listening::Unix { path, .. }) => me.unix = Some(path),
                None => return false,
            }
            true
        })
    }

    /// Starts `cmd` and reads its first stdout line into the new value with `banner`, which says
    /// whether it was the banner it expected.
    fn spawn(
        name: &str,
        mut cmd: Command,
        banner: impl FnOnce(&str, &mut ServerProcess) -> bool,
    ) -> ServerProcess {
        let mut child = cmd
            .env("RUST_LOG", "info")
            // The tests' /panic requests are expected: with RUST_BACKTRACE=1 inherited from a
            // developer's shell each would symbolize a backtrace of the debug binary (about a
            // second of CPU in a forked child, and ~60 MiB of RSS once in a long-lived process).
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn example server");
        let pid = child.id();
        // Collect stderr on a thread so the server never blocks on a full pipe; it is printed if
        // a test fails (see Drop).
        let err = child.stderr.take().expect("stderr");
        let live_log = Arc::new(Mutex::new(String::new()));
        let live = Arc::clone(&live_log);
        let stderr = thread::spawn(move || {
            let mut err = BufReader::new(err);
            let mut line = String::new();
            // Ends at EOF: when the server and every child holding its stderr have exited.
            while matches!(err.read_line(&mut line), Ok(n) if n > 0) {
                live.lock().unwrap_or_else(|p| p.into_inner()).push_str(&line);
                line.clear();
            }
            live.lock().unwrap_or_else(|p| p.into_inner()).clone()
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let mut me = ServerProcess {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            unix: None,
            pid,
            stderr: Some(stderr),
            live_log,
        };
        if !banner(line.trim_end(), &mut me) {
            panic!("no banner from {name}: {line:?}");
        }
        // Drain the rest of stdout in the background for the same reason as stderr.
        thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        me
    }

    /// The server's stderr so far.
    pub fn log_so_far(&self) -> String {
        self.live_log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (at most `limit`) until the server's stderr contains `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        eventually(limit, || self.log_so_far().contains(needle))
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid as i32), sig).expect("kill");
    }

    /// Waits up to `limit` for the process to exit; returns its status and its stderr.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<ExitStatus>, String) {
        let t0 = Instant::now();
        let mut status = None;
        if let Some(child) = self.child.as_mut() {
            while t0.elapsed() < limit {
                if let Ok(Some(s)) = child.try_wait() {
                    status = Some(s);
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        if status.is_some() {
            self.child = None;
        } else {
            self.kill_and_reap();
        }
        let log = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        (status, log)
    }

    fn kill_and_reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Kill the whole family: a forking server's children too.
            for c in children_of(child.id()) {
                let _ = kill(Pid::from_raw(c as i32), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
        if thread::panicking()
            && let Some(h) = self.stderr.take()
        {
            eprintln!("--- server log ---\n{}", h.join().unwrap_or_default());
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
    pub fn pid(&self) -> u32 {
        self.header("x-pid").and_then(|v| v.parse().ok()).expect("X-Pid")
    }
    pub fn tid(&self) -> u32 {
        self.header("x-tid").and_then(|v| v.parse().ok()).expect("X-Tid")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes, reads one response (until EOF: the request should say `Connection: close`).
pub fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request)?;
    read_reply(&mut s, request.starts_with(b"HEAD"))
}

/// Sends raw bytes on a Unix stream socket, reads one response.
pub fn raw_unix(path: &std::path::Path, request: &[u8]) -> std::io::Result<Reply> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request)?;
    read_reply(&mut s, request.starts_with(b"HEAD"))
}

/// `GET path` with `Connection: close` over the Unix socket at `sock`.
pub fn get_unix(sock: &std::path::Path, path: &str) -> Reply {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    raw_unix(sock, req.as_bytes()).unwrap_or_else(|e| panic!("GET {path} on {}: {e}", sock.display()))
}

/// `n` clients on the Unix socket at `sock` send `GET path` at the same instant; the wall time
/// from the release to the last reply, and the replies.
pub fn burst_unix(sock: &std::path::Path, n: usize, path: &str) -> (Duration, Vec<Reply>) {
    let sock = sock.to_path_buf();
    burst_with(n, path, move || {
        let s = std::os::unix::net::UnixStream::connect(&sock)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(s)
    })
}

/// A private temporary directory for socket files, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("socketserver-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads one response from `s` by Content-Length.
pub fn read_reply(s: &mut impl Read, head: bool) -> std::io::Result<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = resp.parse(&buf) {
            let status = resp.code.unwrap_or(0);
            let headers: HashMap<String, String> = resp
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                .collect();
            let len: usize = if head {
                0
            } else {
                headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)
            };
            let mut body = buf[n..].to_vec();
            while body.len() < len {
                let k = s.read(&mut chunk)?;
                if k == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..k]);
            }
            body.truncate(len);
            return Ok(Reply { status, headers, body });
        }
        let k = s.read(&mut chunk)?;
        if k == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes", buf.len()),
            ));
        }
        buf.extend_from_slice(&chunk[..k]);
    }
}

/// `GET path` with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Reply {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    raw(addr, req.as_bytes()).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// n clients connect first, then send `GET path` at the same instant; returns the wall time
/// from the release to the last reply, and the replies.
pub fn burst(addr: SocketAddr, n: usize, path: &str) -> (Duration, Vec<Reply>) {
    burst_with(n, path, move || {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(s)
    })
}

/// [`burst`] over any stream `connect` makes (TCP, a Unix socket), which should set a read
/// timeout as a safety net.
pub fn burst_with<S: Read + Write + 'static>(
    n: usize,
    path: &str,
    connect: impl Fn() -> std::io::Result<S> + Send + Sync + 'static,
) -> (Duration, Vec<Reply>) {
    let barrier = Arc::new(Barrier::new(n + 1));
    let connect = Arc::new(connect);
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let (barrier, connect) = (Arc::clone(&barrier), Arc::clone(&connect));
            let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            thread::spawn(move || {
                let s = connect();
                barrier.wait();
                let mut s = s?;
                s.write_all(req.as_bytes())?;
                read_reply(&mut s, false)
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    let replies = clients.into_iter().map(|c| c.join().expect("client thread").expect("reply")).collect();
    (t0.elapsed(), replies)
}

/// The pids whose parent is `pid`, from /proc/*/stat (field 4 is the parent pid).
pub fn children_of(pid: u32) -> Vec<u32> {
    proc_children(pid).into_iter().map(|(p, _)| p).collect()
}

/// (pid, state) of each child of `pid`; state 'Z' is a zombie.
pub fn proc_children(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // The command name is in parentheses and may contain spaces: parse after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == pid {
            out.push((p, state));
        }
    }
    out
}

/// Number of open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Polls `cond` every 10 ms for at most `limit`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Number of threads of process `pid` (its /proc/PID/task entries); 0 if it is gone.
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// The names (`comm`) of the threads of process `pid`.
pub fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim_end().to_string())
        .collect()
}

/// CPU time (user + system) process `pid` has used, from /proc/PID/stat fields 14 and 15.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    // After the ')' field 3 (state) comes first, so utime (14) and stime (15) are at 11 and 12.
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Resident memory of process `pid` in KiB (VmRSS from /proc/PID/status); 0 if it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether process `pid` is gone (or a zombie, waiting for a parent that is not ours to be).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The children of `pid` that are alive (not zombies).
pub fn live_children(pid: u32) -> Vec<u32> {
    proc_children(pid).into_iter().filter(|(_, state)| *state != 'Z').map(|(p, _)| p).collect()
}

/// Raises this process's soft `RLIMIT_NOFILE` to at least `want` if the hard limit allows;
/// returns the soft limit in force afterwards. Children started later inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= want {
        return soft;
    }
    let new = want.min(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, new, hard) {
        Ok(()) => new,
        Err(_) => soft,
    }
}

/// A raw (non-HTTP) handler for in-process tests: reads a number of milliseconds, sleeps that
/// long, answers "<pid> <tid>\n"; the word "panic" makes it panic (an expected panic).
pub struct SleepThenWho;

impl socketserver::RequestHandler for SleepThenWho {
    fn handle(&self, conn: &mut socketserver::Connection) -> Result<(), socketserver::HandlerError> {
        let mut buf = [0u8; 16];
        let n = conn.stream().read(&mut buf)?;
        let text = std::str::from_utf8(&buf[..n])?.trim().to_string();
        if text == "panic" {
            panic!("asked to panic (this panic is expected)");
        }
        let ms: u64 = text.parse()?;
        thread::sleep(Duration::from_millis(ms));
        writeln!(conn.stream(), "{} {}", socketserver::trace::pid(), socketserver::trace::tid())?;
        Ok(())
    }
}

/// For raw (non-HTTP) in-process servers such as [`SleepThenWho`]: n clients connect first,
/// then send `msg` at the same instant; returns the wall time from the release to the last
/// reply, and the replies (empty for a connection that was closed without one).
pub fn raw_burst(addr: SocketAddr, n: usize, msg: &str) -> (Duration, Vec<String>) {
    let barrier = Arc::new(Barrier::new(n + 1));
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let msg = msg.to_string();
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                barrier.wait();
                s.write_all(msg.as_bytes()).unwrap();
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    let replies: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    (t0.elapsed(), replies)
}

/// The distinct thread ids in [`SleepThenWho`] replies ("<pid> <tid>").
pub fn reply_tids(replies: &[String]) -> std::collections::HashSet<String> {
    replies.iter().map(|r| r.split_whitespace().nth(1).unwrap_or("?").to_string()).collect()
}
