//! Fuzz target: the `/api/show` `parameters` text parser on arbitrary UTF-8. The body and its
//! checks are `yollayah_core::fuzzing::parameters`, which `crates/core/tests/fuzz_replay.rs` also
//! runs on the corpus in every `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yollayah_core::fuzzing::parameters(data));
