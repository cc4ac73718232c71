//! A small HTTP/1.1 client over `std::net::TcpStream`: every request the
//! tests send, with keep-alive and raw bytes for what a real client would
//! never send, and responses parsed (chunked too) without a library that
//! might smooth over what the tier really answered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use super::TIMEOUT;

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A failed request's kind (`X-Ssrd-Error`), checked against its text
    /// body, which must be `Kind: what was wrong` and never JSON (so that
    /// Hypernova's Ruby client falls back instead of blanking components).
    pub fn error_kind(&self) -> String {
        let kind = self
            .header("x-ssrd-error")
            .unwrap_or_else(|| panic!("no X-Ssrd-Error on {}: {}", self.status, self.text()))
            .to_string();
        let text = self.text();
        assert!(
            text.starts_with(&format!("{kind}: ")),
            "body of a failed request: {text}"
        );
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
        kind
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

pub fn post(port: u16, path: &str, body: &[u8]) -> Resp {
    post_with(port, path, body, &[])
}

/// `post` with extra request headers (e.g. `traceparent`).
pub fn post_with(port: u16, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    request(port, &req)
}

/// Sends raw bytes and reads the response until the server closes.
pub fn request(port: u16, raw: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    // The server may answer (413) and close before reading all of a big body.
    let _ = stream.write_all(raw);
    read_response(&mut stream)
}

/// POSTs on an open keep-alive connection and reads exactly one response
/// (by its Content-Length), leaving the connection open.
pub fn post_on(stream: &mut TcpStream, path: &str, body: &[u8]) -> Resp {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(&req).expect("send on the open connection");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(resp) = parse_response(&buf) {
            let want = resp
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a Content-Length");
            if resp.body.len() >= want {
                return resp;
            }
        }
        let n = stream.read(&mut chunk).expect("read the response");
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn read_response(stream: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    parse_response(&buf)
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&buf)))
}

pub fn parse_response(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..pos]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    out
}

/// Like `post`, but a refused or broken connection is an `Err`, not a panic.
pub fn try_post(port: u16, path: &str, body: &[u8], timeout: Duration) -> Result<Resp, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    stream.write_all(&req).map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    parse_response(&buf).ok_or_else(|| format!("no HTTP response ({} bytes)", buf.len()))
}

/// GET `path`, with every failure returned rather than panicking.
pub fn try_get(port: u16, path: &str, timeout: Duration) -> Result<Resp, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    parse_response(&buf).ok_or_else(|| format!("no HTTP response ({} bytes)", buf.len()))
}

pub fn get(port: u16, path: &str) -> Resp {
    request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}
