//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally: [`decode_chunked`]
//! resumes where the previous call stopped ([`Chunk`] is where it was), so a body is scanned
//! once however the bytes were split.
//!
//! Like the rest of the parser it does no I/O. It enforces its own bounds while the body is
//! still partial: a chunk-size line of at most [`MAX_CHUNK_LINE`] bytes, a decoded size of at
//! most `max_body`, and framing overhead (chunk lines, extensions, trailers) of at most
//! `max_body + max_header_bytes`, so `;ext` noise cannot make the server buffer without end.

use super::request::Limits;

/// Longest chunk-size line (size, extensions, CRLF) accepted in a chunked body.
pub(super) const MAX_CHUNK_LINE: usize = 4096;

/// Where the decoder is inside a chunked body.
#[derive(Debug, Clone, Copy)]
pub(super) enum Chunk {
    /// Expecting `hex-size[;ext]CRLF`.
    Size,
    /// Inside chunk data, with this many bytes still to come.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last (size 0) chunk: trailer fields, ignored, until an empty line.
    Trailers,
}

/// Advances the chunked decoder over `buf` from `*pos`, appending data to `body`. Returns the
/// end of the message when the last chunk and the trailers are in, `None` if more is needed.
pub(super) fn decode_chunked(
    buf: &[u8],
    pos: &mut usize,
    phase: &mut Chunk,
    body: &mut Vec<u8>,
    head_len: usize,
    limits: &Limits,
) -> Result<Option<usize>, u16> {
    loop {
        // The raw chunked bytes may exceed the decoded size (chunk lines, extensions), but not
        // by without limit: that would let a client make us buffer megabytes of `;ext` noise.
        let raw = pos.saturating_sub(head_len);
        if raw > limits.max_body.saturating_mul(2).saturating_add(limits.max_header_bytes) {
            return Err(413);
        }
        let rest = buf.get(*pos..).unwrap_or(&[]);
        match *phase {
            Chunk::Size => {
                // Window the line for the same reason as the head: decide at the limit.
                let window = rest.get(..rest.len().min(MAX_CHUNK_LINE)).unwrap_or(rest);
                match httparse::parse_chunk_size(window) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        *pos += n;
                        if size == 0 {
                            *phase = Chunk::Trailers;
                        } else if (body.len() as u64).saturating_add(size) > limits.max_body as u64 {
                            return Err(413);
                        } else {
                            *phase = Chunk::Data(size);
                        }
                    }
                    Ok(httparse::Status::Partial) if rest.len() >= MAX_CHUNK_LINE => {
                        return Err(400);
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(httparse::InvalidChunkSize) => return Err(400),
                }
            }
            Chunk::Data(remaining) => {
                if rest.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(rest.len());
                body.extend_from_slice(rest.get(..take).unwrap_or(&[]));
                *pos += take;
                let left = remaining - take as u64;
                *phase = if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) };
            }
            Chunk::DataEnd => match rest {
                [b'\r', b'\n', ..] => {
                    *pos += 2;
                    *phase = Chunk::Size;
                }
                [] | [b'\r'] => return Ok(None),
                _ => return Err(400),
            },
            Chunk::Trailers => {
                // Trailer fields are read and thrown away: nothing here uses them, and merging
                // them into the headers after the fact is a known source of confusion.
                let window = rest.get(..rest.len().min(limits.max_header_bytes)).unwrap_or(rest);
                let Some(nl) = window.iter().position(|&b| b == b'\n') else {
                    if rest.len() >= limits.max_header_bytes {
                        return Err(431);
                    }
                    return Ok(None);
                };
                let line = rest.get(..nl).unwrap_or(&[]);
                *pos += nl + 1;
                if line.is_empty() || line == b"\r" {
                    return Ok(Some(*pos));
                }
                if !line.contains(&b':') {
                    return Err(400);
                }
            }
        }
    }
}
