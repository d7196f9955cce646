//! A raw HTTP/1.1 client for the servers chime's tests start on 127.0.0.1:
//! one request per connection (`Connection: close`), the answer read to its
//! end, with a read deadline so a server that never answers fails the test
//! instead of hanging it. Raw on purpose: the tests also send what a real
//! client would refuse to (odd headers, wrong content types).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// How long a test waits for a server's answer before failing.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// An answer: its status code, headers (names lowercased) and body.
#[derive(Debug)]
pub struct Response {
    /// The status code: 200, 404, ...
    pub status: u16,
    /// Every header in order, its name lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, a chunked one put back together.
    pub body: String,
}

impl Response {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// `METHOD path` to `addr` (`127.0.0.1:PORT`) with extra `headers` and a
/// `body`; `None` when nothing accepts the connection (not up yet).
/// Panics on an answer that is not HTTP.
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Option<Response> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(READ_DEADLINE)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{method} {path} on {addr}: no answer: {e}"));
    Some(parse(&String::from_utf8_lossy(&raw)).unwrap_or_else(|| panic!("{method} {path} on {addr}: not HTTP")))
}

/// `GET path` on `addr`, or `None` when nothing listens there yet.
pub fn get(addr: &str, path: &str) -> Option<Response> {
    request(addr, "GET", path, &[], "")
}

fn parse(raw: &str) -> Option<Response> {
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(body)? } else { body.to_owned() };
    Some(Response { status, headers, body })
}

/// A chunked body put back together.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_chunked_answer_is_put_back_together() {
        let r =
            parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((r.status, r.body.as_str(), r.header("x-a")), (200, "abcde", Some("b")));
    }

    #[test]
    fn a_plain_answer_keeps_its_body() {
        let r = parse("HTTP/1.0 404 Not Found\r\nContent-Length: 2\r\n\r\nno").unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "no"));
        assert!(parse("SSH-2.0-OpenSSH").is_none(), "not HTTP");
    }
}
