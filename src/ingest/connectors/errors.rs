//! Why a pull stopped, or could not start: each message says what to do.

use std::path::PathBuf;

use crate::store::StoreError;

/// Why a source's pull stopped. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error(
        "{source_name}: the server refused the token (HTTP {status}); check the token in the \
         variable named by auth.bearer_token_env. No watermark was moved past what was kept."
    )]
    Unauthorized { source_name: String, status: u16 },
    #[error(
        "{source_name}: environment variable {var} is not set; set it to the source's bearer token"
    )]
    MissingToken { source_name: String, var: String },
    #[error("{source_name}: {message}")]
    Insecure {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: the definition has no {key}; add it to the TOML file")]
    Incomplete {
        source_name: String,
        key: &'static str,
    },
    #[error(
        "{source_name}: {what}: gave up after {attempts} attempts (last: {last}); what was \
         committed before stays, and the next pull resumes from there"
    )]
    GaveUp {
        source_name: String,
        what: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "{source_name}: {what} answered HTTP {status}; check base_url and the paths in the definition"
    )]
    Refused {
        source_name: String,
        what: String,
        status: u16,
    },
    #[error("{source_name}: cannot build an HTTP client: {message}")]
    Client {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: cannot read {path}: {error}")]
    Io {
        source_name: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{source_name}: normalising a batch failed unexpectedly: {message}; this is a bug, please report it"
    )]
    Internal {
        source_name: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a pull could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("no connector named {name}; the definitions name: {known}")]
    UnknownSource { name: String, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
