//! Fuzz target: the agent client's event stream lines, state body, token file text and agent URL.
//! The body and its checks are `yollayah_core::fuzzing::agent_events`, which
//! `crates/core/tests/fuzz_replay.rs` also runs on the corpus in every `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yollayah_core::fuzzing::agent_events(data));
