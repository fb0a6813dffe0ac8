//! Fuzz target: the image intake on arbitrary bytes. The body and its checks are
//! `yollayah_core::fuzzing::image_intake`, which `crates/core/tests/fuzz_replay.rs` also runs on
//! the corpus in every `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yollayah_core::fuzzing::image_intake(data));
