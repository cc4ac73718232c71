//! One error type for `ssrd up`, `ssrd config` and `ssrd reload`: a kind,
//! which decides the exit code, and a context saying what to change.

use std::fmt;

/// What kind of failure this is. Each kind maps to one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The options or the config file are wrong (exit 2, like a usage error).
    Config,
    /// The machine is not ready: a binary missing, a port taken, an unsafe
    /// or unwritable run directory, a config nginx or haproxy refuses (exit 1).
    Setup,
    /// The bundle is missing, does not load or breaks the contract (exit 3,
    /// the worker's exit code for the same).
    Bundle,
    /// The tier failed while running (exit 1).
    Runtime,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Config => 2,
            Kind::Setup | Kind::Runtime => 1,
            Kind::Bundle => ssrd_worker::exit_code::BUNDLE,
        }
    }
}

/// A failure with its kind and a message saying exactly what was wrong.
#[derive(Debug, Clone)]
pub struct UpError {
    /// Decides the exit code.
    pub kind: Kind,
    /// What went wrong, in words an operator can act on.
    pub context: String,
}

impl UpError {
    pub fn new(kind: Kind, context: impl Into<String>) -> Self {
        UpError {
            kind,
            context: context.into(),
        }
    }

    pub fn config(context: impl Into<String>) -> Self {
        Self::new(Kind::Config, context)
    }

    pub fn setup(context: impl Into<String>) -> Self {
        Self::new(Kind::Setup, context)
    }

    pub fn bundle(context: impl Into<String>) -> Self {
        Self::new(Kind::Bundle, context)
    }

    pub fn runtime(context: impl Into<String>) -> Self {
        Self::new(Kind::Runtime, context)
    }

    /// Prints the error the way every `ssrd` command does and returns the
    /// exit code.
    pub fn report(&self) -> i32 {
        eprintln!("ssrd: {}", self.context);
        self.kind.exit_code()
    }
}

impl fmt::Display for UpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl std::error::Error for UpError {}

/// Log lines carry an error as its message (`"error": "..."`), so an
/// `UpError` goes into `json!` as is.
impl serde::Serialize for UpError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.context)
    }
}

pub type Result<T, E = UpError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decide_exit_codes() {
        assert_eq!(UpError::config("x").kind.exit_code(), 2);
        assert_eq!(UpError::setup("x").kind.exit_code(), 1);
        assert_eq!(UpError::bundle("x").kind.exit_code(), 3);
        assert_eq!(UpError::runtime("x").kind.exit_code(), 1);
    }
}
