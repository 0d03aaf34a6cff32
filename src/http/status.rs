//! Status codes and their reason phrases.

/// The reason phrase for a status code, as registered with IANA (RFC 9110 and friends).
///
/// The phrase is only decoration: clients must ignore it, so an unknown code gets a generic
/// phrase by class (`"Client Error"` for an unregistered 4xx) rather than an empty one.
///
/// ```
/// use socketserver::http::reason_phrase;
/// assert_eq!(reason_phrase(404), "Not Found");
/// assert_eq!(reason_phrase(499), "Client Error");
/// ```
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        // Unregistered codes: name the class, which is all a client may rely on anyway.
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Unknown",
        },
    }
}

/// Whether a response with this status carries no body at all (RFC 9110 §6.4.1: 1xx, 204 and
/// 304). For 1xx and 204 the sender must not send `Content-Length` either (RFC 9110 §8.6); a
/// 304 may, but only with the length the 200 would have had, which this layer cannot know, so
/// it sends none.
pub(crate) fn is_bodiless(status: u16) -> bool {
    matches!(status, 100..=199 | 204 | 304)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_codes() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(599), "Server Error");
        assert_eq!(reason_phrase(999), "Unknown");
        assert!(is_bodiless(204) && is_bodiless(304) && is_bodiless(100));
        assert!(!is_bodiless(200) && !is_bodiless(404));
    }
}
