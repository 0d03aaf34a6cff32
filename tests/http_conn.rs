//! Property tests of the sans-IO HTTP connection (`socketserver::http::HttpConn`), through the
//! doc-hidden case table and driver in `socketserver::http::conn_cases`.
//!
//! The unit tests in `src/http/conn_cases.rs` run every case of the table whole, byte by
//! byte, at every split and in 64 fixed orders of readiness. These generate the schedules
//! (read sizes, write sizes, reads interleaved with pending writes) and mutate the inputs
//! (byte flips, inserted CR/LF/NUL/colon/space bytes, truncations), and require for each
//! input the same output and the same open-or-closing end as the input fed whole.
//!
//! 256 cases per property by default; more: `PROPTEST_CASES=10000 cargo test --test http_conn`.
//!
//! And the same table over real sockets: the blocking driver under `Sequential`, `Threading`
//! and (today's) `Pool` must send exactly the bytes the sans-IO runs produce.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use socketserver::http::Want;
use socketserver::http::conn_cases::{CASES, Step, drive, handler, normalise};
use socketserver::{Concurrency, Pool, Sequential, Server, Threading};

/// Serves the table's handler with `c` on a thread; runs every case against it (send the
/// input, half-close, read to EOF); stops it. Returns the cases whose bytes differed.
fn over_sockets<C: Concurrency + Send + 'static>(c: C) -> Vec<String> {
    let mut server = Server::bind("127.0.0.1:0", c, handler()).expect("bind");
    let addr: SocketAddr = server.local_addr();
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || {
        server.serve_forever().expect("serve_forever");
        server.server_close();
    });
    let mut wrong = Vec::new();
    for case in CASES {
        let mut s = TcpStream::connect(addr).expect("connect");
        // A safety net so a broken case fails instead of hanging; never reached when passing.
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(case.input).expect("send the input");
        s.shutdown(Shutdown::Write).expect("half-close");
        let mut out = Vec::new();
        let got = s.read_to_end(&mut out).map(|_| normalise(&out));
        if got.as_deref().ok() != Some(case.output) {
            wrong.push(format!("{}: {:?}", case.name, got.map(|o| String::from_utf8_lossy(&o).into_owned())));
        }
    }
    stop.shutdown().expect("shutdown");
    t.join().expect("server thread");
    wrong
}

#[test]
fn the_table_over_sockets_sequential() {
    assert_eq!(over_sockets(Sequential), Vec::<String>::new());
}

#[test]
fn the_table_over_sockets_threading() {
    assert_eq!(over_sockets(Threading::new()), Vec::<String>::new());
}

#[test]
fn the_table_over_sockets_pool() {
    assert_eq!(over_sockets(Pool::new(2)), Vec::<String>::new());
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// A schedule that replays `sizes` (and `interleave`) cyclically.
fn schedule(sizes: &[usize], interleave: &[bool]) -> impl FnMut(Step) -> usize {
    let (sizes, interleave) = (sizes.to_vec(), interleave.to_vec());
    let (mut i, mut j) = (0, 0);
    move |step| match step {
        Step::ReadWhileWriting => {
            j += 1;
            usize::from(interleave[j % interleave.len()])
        }
        _ => {
            i += 1;
            sizes[i % sizes.len()]
        }
    }
}

fn closing(w: Want) -> bool {
    matches!(w, Want::Drain | Want::Close)
}

/// Inserted bytes that matter to HTTP framing.
const NASTY: &[u8] = b"\r\n: \0;0\xff";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_case_gives_its_bytes_in_any_order_of_readiness(
        case in 0..CASES.len(),
        sizes in prop::collection::vec(1usize..64, 1..16),
        interleave in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        let case = CASES[case];
        let (out, end) = drive(&handler(), case.input, false, schedule(&sizes, &interleave));
        prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(case.output), "{}", case.name);
        prop_assert_eq!(closing(end), closing(case.end), "{}: {:?}", case.name, end);
    }

    #[test]
    fn mutated_inputs_give_the_same_bytes_split_or_whole(
        case in 0..CASES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<prop::sample::Index>()), 1..4),
        cut in any::<prop::sample::Index>(),
        sizes in prop::collection::vec(1usize..32, 1..16),
        interleave in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        let mut input = CASES[case].input.to_vec();
        for (at, op, byte) in edits {
            if input.is_empty() {
                break;
            }
            let at = at.index(input.len());
            let byte = NASTY[byte.index(NASTY.len())];
            match op {
                0 => input[at] = byte,
                1 => input.insert(at, byte),
                _ => { input.remove(at); }
            }
        }
        let keep = cut.index(input.len() + 1);
        input.truncate(keep.max(input.len() / 2));
        let h = handler();
        let whole = drive(&h, &input, false, |_| usize::MAX);
        let split = drive(&h, &input, false, schedule(&sizes, &interleave));
        prop_assert_eq!(String::from_utf8_lossy(&split.0), String::from_utf8_lossy(&whole.0));
        prop_assert_eq!(closing(split.1), closing(whole.1));
        // And the client closing its side always ends the connection, with the same bytes.
        let eof = drive(&h, &input, true, schedule(&sizes, &interleave));
        prop_assert_eq!(&eof.0, &whole.0);
        prop_assert_eq!(eof.1, Want::Close);
    }
}
