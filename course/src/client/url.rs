//! The little URL parser the client needs: `http://host[:port][/path][?query]`, nothing more.
//!
//! The client only ever talks plain HTTP to a server the learner started, so this parser accepts
//! exactly that and says clearly what it refuses (`https`, user names, a missing host) rather than
//! half-supporting the whole of RFC 3986.

use std::fmt;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs};

/// A parsed `http://` URL: where to connect and what to ask for.
///
/// ```
/// use course::client::Url;
///
/// let url = Url::parse("http://127.0.0.1:8000/delay?s=1").unwrap();
/// assert_eq!(url.host, "127.0.0.1");
/// assert_eq!(url.port, 8000);
/// assert_eq!(url.path_and_query, "/delay?s=1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or IP address, without the brackets an IPv6 literal is written with.
    pub host: String,
    /// TCP port; 80 when the URL names none.
    pub port: u16,
    /// What goes on the request line: the path and query, always starting with `/`.
    pub path_and_query: String,
}

/// Why a string is not a URL this client can fire at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The string is empty.
    Empty,
    /// No `scheme://` prefix (write `http://127.0.0.1:8000/`, not `127.0.0.1:8000/`).
    MissingScheme,
    /// A scheme other than `http` (carries the scheme given). The client speaks plain HTTP only.
    UnsupportedScheme(String),
    /// `user@host` forms are not supported.
    UserInfo,
    /// Nothing between `http://` and the path.
    EmptyHost,
    /// The host part is not a host name or an IP address (carries the host given).
    InvalidHost(String),
    /// The port is not a number from 1 to 65535 (carries the port given).
    InvalidPort(String),
    /// The path or query holds a space or a control character, which cannot go on a request
    /// line (carries the path given; percent-encode such characters).
    InvalidPath(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Empty => f.write_str("empty URL"),
            UrlError::MissingScheme => f.write_str("missing scheme: write it as http://HOST:PORT/PATH"),
            UrlError::UnsupportedScheme(s) => {
                write!(f, "unsupported scheme {s:?}: only http:// is supported")
            }
            UrlError::UserInfo => f.write_str("user names in URLs (user@host) are not supported"),
            UrlError::EmptyHost => f.write_str("missing host after http://"),
            UrlError::InvalidHost(h) if h.contains(':') => {
                write!(f, "invalid host {h:?} (an IPv6 address goes in brackets: http://[::1]:8000/)")
            }
            UrlError::InvalidHost(h) => write!(f, "invalid host {h:?}"),
            UrlError::InvalidPort(p) => write!(f, "invalid port {p:?}: expected 1 to 65535"),
            UrlError::InvalidPath(p) => {
                write!(f, "invalid path {p:?}: spaces and control characters must be percent-encoded")
            }
        }
    }
}

impl std::error::Error for UrlError {}

impl Url {
    /// Parses `http://host[:port][/path][?query]`.
    ///
    /// The scheme is matched without regard to case; the port defaults to 80; an IPv6 literal is
    /// written in brackets (`http://[::1]:8000/`); a missing path means `/`; a `#fragment` is
    /// dropped (it never goes to the server).
    pub fn parse(s: &str) -> Result<Url, UrlError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(UrlError::Empty);
        }
        let (scheme, rest) = s.split_once("://").ok_or(UrlError::MissingScheme)?;
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(UrlError::UnsupportedScheme(scheme.to_string()));
        }
        // The fragment is for the browser, never sent.
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let split_at = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split_at);
        let path_and_query = match tail.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{tail}"),
            Some(_) => tail.to_string(),
        };
        // A space or CR/LF here would end the request line early and let the rest be read as
        // headers; refuse rather than send something the server would misread.
        if path_and_query.chars().any(|c| c == ' ' || c.is_control()) {
            return Err(UrlError::InvalidPath(path_and_query));
        }
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        if authority.is_empty() {
            return Err(UrlError::EmptyHost);
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(UrlError::InvalidPort(p.to_string())),
            },
        };
        Ok(Url { host: host.to_string(), port, path_and_query })
    }

    /// `host:port` as it goes in the `Host` header, with brackets around an IPv6 literal.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves the host to socket addresses (a name may have several, IPv4 and IPv6).
    pub fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} resolves to no address", self.host),
            ));
        }
        Ok(addrs)
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`, checking the host's characters.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UrlError> {
    if let Some(inner) = authority.strip_prefix('[') {
        let (v6, after) =
            inner.split_once(']').ok_or_else(|| UrlError::InvalidHost(authority.to_string()))?;
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(UrlError::InvalidHost(authority.to_string()));
        }
        return match after {
            "" => Ok((v6, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((v6, Some(port))),
                None => Err(UrlError::InvalidHost(authority.to_string())),
            },
        };
    }
    if authority.matches(':').count() > 1 {
        // An IPv6 literal without its brackets: the port cannot be told from the address.
        return Err(UrlError::InvalidHost(authority.to_string()));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    // A host name or an IPv4 address.
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
    if !host.chars().all(ok_char) {
        return Err(UrlError::InvalidHost(host.to_string()));
    }
    Ok((host, port))
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path_and_query)
    }
}

impl std::str::FromStr for Url {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Url, UrlError> {
        Url::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per input: what it parses to, or the error it gives.
    macro_rules! url_table {
        ($($name:ident: $input:expr => $expected:expr,)*) => {
            $(
                #[test]
                fn $name() {
                    assert_eq!(Url::parse($input), $expected, "input {:?}", $input);
                }
            )*
        };
    }

    fn ok(host: &str, port: u16, pq: &str) -> Result<Url, UrlError> {
        Ok(Url { host: host.into(), port, path_and_query: pq.into() })
    }

    url_table! {
        full: "http://127.0.0.1:8000/delay?s=1" => ok("127.0.0.1", 8000, "/delay?s=1"),
        default_port: "http://localhost/hello" => ok("localhost", 80, "/hello"),
        no_path: "http://127.0.0.1:8000" => ok("127.0.0.1", 8000, "/"),
        query_without_path: "http://h:1?x=2" => ok("h", 1, "/?x=2"),
        upper_case_scheme: "HTTP://Example.com/" => ok("Example.com", 80, "/"),
        fragment_dropped: "http://h/p?q=1#frag" => ok("h", 80, "/p?q=1"),
        ipv6: "http://[::1]:8000/delay?s=1" => ok("::1", 8000, "/delay?s=1"),
        ipv6_default_port: "http://[::1]/" => ok("::1", 80, "/"),
        surrounding_space: "  http://h:9/ " => ok("h", 9, "/"),
        empty: "" => Err(UrlError::Empty),
        no_scheme: "127.0.0.1:8000/" => Err(UrlError::MissingScheme),
        https: "https://h/" => Err(UrlError::UnsupportedScheme("https".into())),
        user: "http://me@h/" => Err(UrlError::UserInfo),
        no_host: "http:///x" => Err(UrlError::EmptyHost),
        port_only: "http://:80/" => Err(UrlError::EmptyHost),
        port_zero: "http://h:0/" => Err(UrlError::InvalidPort("0".into())),
        port_too_big: "http://h:65536/" => Err(UrlError::InvalidPort("65536".into())),
        port_not_number: "http://h:http/" => Err(UrlError::InvalidPort("http".into())),
        port_empty: "http://h:/" => Err(UrlError::InvalidPort("".into())),
        port_signed: "http://h:+80/" => Err(UrlError::InvalidPort("+80".into())),
        bare_ipv6: "http://::1:8000/" => Err(UrlError::InvalidHost("::1:8000".into())),
        bad_ipv6: "http://[nope]:1/" => Err(UrlError::InvalidHost("[nope]:1".into())),
        unclosed_bracket: "http://[::1:80/" => Err(UrlError::InvalidHost("[::1:80".into())),
        junk_after_bracket: "http://[::1]x/" => Err(UrlError::InvalidHost("[::1]x".into())),
        space_in_path: "http://h/a b" => Err(UrlError::InvalidPath("/a b".into())),
        crlf_in_query: "http://h/?a\r\nX: 1" => Err(UrlError::InvalidPath("/?a\r\nX: 1".into())),
        bad_host_char: "http://a b/" => Err(UrlError::InvalidHost("a b".into())),
    }

    #[test]
    fn authority_and_display_round_trip() {
        for s in ["http://127.0.0.1:8000/delay?s=1", "http://[::1]:8000/"] {
            let url = Url::parse(s).unwrap();
            assert_eq!(url.to_string(), s);
        }
        assert_eq!(Url::parse("http://[::1]/").unwrap().authority(), "[::1]:80");
    }

    #[test]
    fn errors_read_as_sentences() {
        let e = Url::parse("https://h/").unwrap_err();
        assert!(e.to_string().contains("only http://"));
    }

    #[test]
    fn loopback_resolves() {
        let addrs = Url::parse("http://127.0.0.1:8000/").unwrap().socket_addrs().unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:8000".parse().unwrap()]);
    }
}
