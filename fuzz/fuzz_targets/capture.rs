//! Fuzz target: capture bundles (`doctor --from FILE`), then a diagnosis of whatever parses. The
//! body and its checks are `yollayah_core::fuzzing::capture`, which
//! `crates/core/tests/fuzz_replay.rs` also runs on the corpus in every `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yollayah_core::fuzzing::capture(data));
