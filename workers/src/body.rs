//! Reading a request body: whole, within its size limit and its time limit.
//!
//! A body over the limit is still read and dropped, up to [`DRAIN_LIMIT`],
//! before the 413 goes out: a client that is still writing its upload when
//! the server closes the connection gets a reset (EPIPE) instead of the
//! status, and never learns what was wrong.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::Request;

use crate::config::HttpConfig;
use crate::error::{Error, ErrorKind, Result};

/// Reads the whole body within the size and time limits. A body over the
/// limit is still read (and dropped), up to [`DRAIN_LIMIT`], before the 413
/// is sent: a client still writing its upload when the server closes gets a
/// reset (EPIPE) instead of the status, and never learns why.
pub async fn read(req: Request<Incoming>, config: &HttpConfig) -> Result<Bytes> {
    let max = config.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let deadline = tokio::time::Instant::now() + config.body_timeout;
    let mut body = req.into_body();
    if declared.is_some_and(|n| n > max as u64) {
        drain(&mut body, deadline).await;
        return Err(too_large(max));
    }
    let mut collected = Vec::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::RequestTimeout,
                    format!(
                        "the request body did not arrive within {} ms",
                        config.body_timeout.as_millis()
                    ),
                ))
            }
            Ok(None) => return Ok(Bytes::from(collected)),
            Ok(Some(Err(e))) => {
                return Err(Error::bad_request(format!("reading the request body: {e}")))
            }
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if collected.len() + data.len() > max {
                    drain(&mut body, deadline).await;
                    return Err(too_large(max));
                }
                collected.extend_from_slice(&data);
            }
        }
    }
}

/// How much of an oversized body is read and dropped so that its sender
/// sees the 413; past this the connection is closed mid-upload.
const DRAIN_LIMIT: usize = 64 << 20;

/// Reads and drops the rest of `body`, up to [`DRAIN_LIMIT`] bytes or the
/// deadline, whichever comes first.
async fn drain(body: &mut Incoming, deadline: tokio::time::Instant) {
    let mut seen = 0usize;
    while seen <= DRAIN_LIMIT {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

fn too_large(max: usize) -> Error {
    Error::new(
        ErrorKind::PayloadTooLarge,
        format!("request body is over the {max} byte limit"),
    )
}
