//! One error type for the worker: a kind (what went wrong, which decides the
//! HTTP status) plus a human-readable context (what exactly, for the caller).
//!
//! A failure of a whole request (not of one job) is answered with the status
//! of its kind, the kind's name in the `X-Ssrd-Error` header (for ssrd's own
//! clients and for scripts) and a one-line text body saying what was wrong
//! (for people). The body is deliberately not JSON: Hypernova's Ruby client
//! ignores the status and parses the body, and a JSON body without results
//! would make it blank every component; text makes it raise, call
//! `on_error` with the sentence, and fall back to client rendering, exactly
//! as it does with Hypernova. nginx and haproxy answer their own failures
//! in the same form (see nginx/ and haproxy/ templates, docs/protocol.md).

use std::fmt;

/// The response header naming the kind of a failed request.
pub const ERROR_HEADER: &str = "x-ssrd-error";

/// What kind of failure this is. Each kind maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request could not be understood (bad JSON, wrong shape, bad UTF-8).
    BadRequest,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The client took too long to send its request.
    RequestTimeout,
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The worker cannot take work right now (stopping, restarting, overloaded).
    Unavailable,
    /// The request crashed workers before and is refused for a while.
    Quarantined,
    /// The caller hung up before the answer (nginx's 499; no one reads it).
    Abandoned,
    /// The JS bundle failed to load, evaluate or honour the contract.
    Bundle,
    /// A snapshot could not be created, read or written.
    Snapshot,
    /// An I/O error outside a request (binding a port, reading a file).
    Io,
    /// The worker was configured with something it cannot use (a V8 flag
    /// V8 does not know, an inherited fd that is not a socket).
    Config,
    /// A bug: something the worker believed impossible happened.
    Internal,
}

impl ErrorKind {
    /// The HTTP status a request failing with this kind is answered with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Unavailable => 503,
            ErrorKind::Quarantined => 500,
            ErrorKind::Abandoned => 499,
            ErrorKind::Bundle
            | ErrorKind::Snapshot
            | ErrorKind::Io
            | ErrorKind::Config
            | ErrorKind::Internal => 500,
        }
    }

    /// The name callers see (`X-Ssrd-Error`, the text body, CLI JSON).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "BadRequest",
            ErrorKind::PayloadTooLarge => "PayloadTooLarge",
            ErrorKind::RequestTimeout => "RequestTimeout",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::MethodNotAllowed => "MethodNotAllowed",
            ErrorKind::Unavailable => "Unavailable",
            ErrorKind::Quarantined => "Quarantined",
            ErrorKind::Abandoned => "Abandoned",
            ErrorKind::Bundle => "BundleError",
            ErrorKind::Snapshot => "SnapshotError",
            ErrorKind::Io => "IoError",
            ErrorKind::Config => "ConfigError",
            ErrorKind::Internal => "InternalError",
        }
    }
}

/// A failure with its kind and a message saying exactly what was wrong.
#[derive(Debug, Clone)]
pub struct Error {
    /// Decides the HTTP status and the JSON `error.name`.
    pub kind: ErrorKind,
    /// What went wrong, in words a caller can act on.
    pub context: String,
}

impl Error {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Error {
            kind,
            context: context.into(),
        }
    }

    pub fn bad_request(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, context)
    }

    pub fn bundle(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Bundle, context)
    }

    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{what}: {err}"))
    }

    /// The text body of a failed request: `Name: what was wrong`.
    pub fn to_text(&self) -> String {
        format!("{}: {}\n", self.kind.name(), self.context)
    }

    /// The error as JSON, for the command line (`ssrd render`, start-up
    /// failures): `{"success":false,"error":{"name","message","stack"}}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "success": false,
            "error": {
                "name": self.kind.name(),
                "message": self.context,
                "stack": [],
            },
        })
        .to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.context)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_names_the_kind_and_says_what_was_wrong() {
        let err = Error::new(ErrorKind::PayloadTooLarge, "body is over 5242880 bytes");
        let v: serde_json::Value = serde_json::from_str(&err.to_json()).unwrap();
        assert_eq!(v["success"], false);
        assert_eq!(v["error"]["name"], "PayloadTooLarge");
        assert_eq!(v["error"]["message"], "body is over 5242880 bytes");
        assert!(v.get("results").is_none());
        assert_eq!(err.kind.status(), 413);
        assert_eq!(
            err.to_text(),
            "PayloadTooLarge: body is over 5242880 bytes\n"
        );
    }
}
