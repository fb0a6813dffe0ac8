//! Fuzz target: a raw HTTP request through every parser of ours on `yollayah agent`'s request path.
//! The body and its checks are `yollayah_agent::fuzzing::agent_http`, which
//! `crates/agent/tests/fuzz_replay.rs` also runs on the corpus in every `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yollayah_agent::fuzzing::agent_http(data));
