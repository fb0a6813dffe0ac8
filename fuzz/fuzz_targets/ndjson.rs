//! Fuzz target: the NDJSON stream decoder fed arbitrary bytes in arbitrary splits. The body and its
//! checks are `yollayah_core::fuzzing::ndjson`, which `crates/core/tests/fuzz_replay.rs` also runs
//! on the corpus in every `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yollayah_core::fuzzing::ndjson(data));
