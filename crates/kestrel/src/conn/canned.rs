//! hyper's own answers, made JSON.
//!
//! When hyper cannot parse a request head it writes an answer itself, without calling the
//! service: `400 Bad Request` (a malformed request line, header or `Content-Length`),
//! `414 URI Too Long` or `431 Request Header Fields Too Large`, each with `content-length: 0`
//! and `connection: close` (hyper 1, `proto::h1::role::Server::on_error`). [`Canned`] takes those
//! bytes in place of the socket and sends the same status line and headers with a JSON error
//! body ([`ApiError::body`]) and `X-Content-Type-Options: nosniff`, so every answer of the server
//! has the API's error shape.

use crate::error::ApiError;

/// Largest head hyper writes for such an answer; bytes past it are sent unchanged.
const MAX_HEAD: usize = 4 << 10;

/// The largest request head hyper reads (it answers 431 past it), as [`crate::listener`]
/// configures it; the 431's message states both.
pub const MAX_HEAD_BYTES: usize = 400 << 10;
/// The most headers a request may have (431 past it).
pub const MAX_HEADERS: usize = 100;

/// Collects an answer hyper writes by itself and holds what is sent in its stead.
#[derive(Debug, Default)]
pub struct Canned {
    /// Bytes of hyper's head not yet complete.
    head: Vec<u8>,
    /// What goes to the socket, and how much of it went.
    out: Vec<u8>,
    sent: usize,
}

impl Canned {
    /// Takes bytes hyper wrote; they count as written.
    pub fn absorb(&mut self, bytes: &[u8]) {
        self.head.extend_from_slice(bytes);
        if let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") {
            let mut answer = rewrite(&self.head[..end + 4]);
            answer.extend_from_slice(&self.head[end + 4..]);
            self.out.extend_from_slice(&answer);
            self.head.clear();
        } else if self.head.len() > MAX_HEAD {
            self.out.append(&mut self.head);
        }
    }

    /// Bytes still to send.
    pub fn pending(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    pub fn advance(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
    }
}

/// The same status and headers, a JSON body instead of an empty one.
fn rewrite(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let status_line = lines.next().unwrap_or("HTTP/1.1 400 Bad Request");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(400);
    let error = match status {
        431 => ApiError::HeaderTooLarge(format!(
            "the request line and headers are too large: at most {} KiB and {MAX_HEADERS} \
             headers; send fewer or smaller headers",
            MAX_HEAD_BYTES >> 10
        )),
        414 => ApiError::UriTooLong(
            "the request URI is too long; send fewer or shorter query parameters".to_owned(),
        ),
        _ => ApiError::bad_request(
            "the request could not be parsed (its request line, a header or Content-Length is \
             malformed); send HTTP/1.1",
        ),
    };
    tracing::debug!(status, "request head refused before routing");
    let body = serde_json::to_vec(&error.body()).unwrap_or_default();
    let mut out = Vec::with_capacity(head.len() + body.len() + 128);
    out.extend_from_slice(status_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("content-type")
        {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(b"x-content-type-options: nosniff\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_of(written: &[&[u8]]) -> (String, serde_json::Value) {
        let mut canned = Canned::default();
        for w in written {
            canned.absorb(w);
        }
        let out = String::from_utf8(canned.pending().to_vec()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        (head.to_owned(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn hyper_431_gets_a_json_body_and_keeps_its_headers() {
        let (head, body) = answer_of(&[
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n",
            b"content-length: 0\r\ndate: Mon, 07 Dec 2026 21:33:23 GMT\r\n\r\n",
        ]);
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("connection: close"));
        assert!(head.contains("date: Mon"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains("x-content-type-options: nosniff"));
        assert!(!head.contains("content-length: 0"));
        assert_eq!(body["error"]["code"], "header_too_large");
    }

    #[test]
    fn hyper_400_and_414() {
        let (_, body) = answer_of(&[
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        ]);
        assert_eq!(body["error"]["code"], "bad_request");
        let (_, body) = answer_of(&[
            b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        ]);
        assert_eq!(body["error"]["code"], "uri_too_long");
    }

    #[test]
    fn sending_advances() {
        let mut canned = Canned::default();
        canned.absorb(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        let total = canned.pending().len();
        canned.advance(10);
        assert_eq!(canned.pending().len(), total - 10);
        canned.advance(total - 10);
        assert!(canned.pending().is_empty());
    }
}
