//! The simulator's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong when building or starting a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    ReadScenario {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The scenario text is not valid TOML or has unknown/mistyped keys.
    #[error("invalid scenario TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// The scenario parsed but is inconsistent (e.g. `from` names an unknown model).
    #[error("invalid scenario: {0}")]
    InvalidScenario(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`SimError`].
pub type Result<T> = std::result::Result<T, SimError>;
