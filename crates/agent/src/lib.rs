//! `yollayah agent`: the watchdog of `yollayah watch` as a headless HTTP service next to
//! Ollama. It serves Prometheus metrics (`/metrics`), the latest snapshot
//! (`/api/v1/state`), the event stream as NDJSON (`/api/v1/events`), warm and unload
//! (`POST /api/v1/warm`, `/api/v1/unload`) and `/healthz`. The API, the metric catalogue and
//! the security model are in `docs/agent.md`.

pub mod auth;
pub mod error;
pub mod facts;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod negotiate;
mod server;
pub mod source;
mod tls;

pub use error::{AgentError, Result};
pub use server::{AgentConfig, AgentHandle, Limits, start};
