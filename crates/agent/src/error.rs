//! The agent's one error type.

use std::path::PathBuf;

/// Why the agent cannot start or serve.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Listening on a non-loopback address without both token files.
    #[error(
        "refusing to listen on {addr} without tokens: a non-loopback address needs \
         --read-token-file and --write-token-file (files of mode 0600); see docs/agent.md"
    )]
    TokensRequired { addr: std::net::SocketAddr },
    /// A token file group- or world-accessible.
    #[error(
        "token file {path} has mode {mode:o}; it must be readable by its owner only \
         (chmod 600 {path})"
    )]
    TokenFileMode { path: PathBuf, mode: u32 },
    /// A token file is unreadable, empty or too short.
    #[error("token file {path}: {reason}")]
    TokenFile { path: PathBuf, reason: String },
    /// The same token for reading and writing would let every reader write.
    #[error("the read token and the write token must differ")]
    SameTokens,
    /// Bad certificate or key.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, AgentError>;
