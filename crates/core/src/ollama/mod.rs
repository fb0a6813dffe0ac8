//! Talking to Ollama: host resolution, wire types, the NDJSON stream decoder and the HTTP client.
//!
//! Everything here follows `docs/ollama-facts.md`-verified behaviour of the real server; the
//! simulator in `crates/ollama-sim` implements the other side of the same wire format.

pub mod client;
pub mod env;
pub mod host;
pub mod params;
pub mod stream;
pub mod types;
