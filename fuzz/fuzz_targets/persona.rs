//! Fuzz target: persona files (TOML front matter + Markdown body) as arbitrary text. The body and
//! its checks are `yollayah_core::fuzzing::persona`, which `crates/core/tests/fuzz_replay.rs` also
//! runs on the corpus in every `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yollayah_core::fuzzing::persona(data));
