//! Fuzz target: `/api/ps` and `/api/show` responses as arbitrary bytes. The body and its checks are
//! `yollayah_core::fuzzing::ps_show`, which `crates/core/tests/fuzz_replay.rs` also runs on the
//! corpus in every `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yollayah_core::fuzzing::ps_show(data));
