//! Every fuzz target of this crate (`fuzz/fuzz_targets/*.rs`, whose bodies are
//! `yollayah_core::fuzzing::*`) on its committed corpus and on a few thousand seeded mutations
//! of it, in a normal `cargo test`, so CI checks the same contracts that `scripts/fuzz.sh`
//! explores for minutes by hand. A failure names the input and saves it to a file.

use std::path::PathBuf;

use yollayah_core::fuzzing;
use yollayah_testkit::mutate::replay;

const SEED: u64 = 0x5eed_1234_abcd_0001;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn run(target: &str, dict: &[&[u8]], mutations: usize, body: fn(&[u8])) {
    let r = replay(target, &corpus(target), dict, mutations, SEED, body);
    eprintln!(
        "{target}: {} corpus files, {} mutations in {:?}",
        r.corpus, r.mutations, r.elapsed
    );
}

const JSON: &[&[u8]] = &[
    b"\"type\":",
    b"\"snapshot\"",
    b"\"alert_raised\"",
    b"\"alert_resolved\"",
    b"\"resync\"",
    b"\"missed\":",
    b"\"verdict\":",
    b"{\"kind\":\"cpu\"}",
    b"\"placement\":",
    b"\"size_vram\":",
    b"\"models\":[",
    b"\"done\":true",
    b"\"error\":",
    b"\"message\":{\"role\":\"assistant\",\"content\":\"",
    b"\"at\":\"2026-11-27T15:42:36Z\"",
    b"\"incident\":",
];

#[test]
fn ndjson() {
    run("ndjson", JSON, 3000, fuzzing::ndjson);
}

#[test]
fn ps_show() {
    run("ps_show", JSON, 3000, fuzzing::ps_show);
}

#[test]
fn parameters() {
    let words: &[&[u8]] = &[
        b"num_ctx ",
        b"num_gpu ",
        b"stop ",
        b"\"<|im_end|>\"",
        b"1e308",
    ];
    run("parameters", words, 3000, fuzzing::parameters);
}

#[test]
fn persona() {
    let words: &[&[u8]] = &[
        b"+++\n",
        b"---\n",
        b"name = ",
        b"model = ",
        b"[load]\n",
        b"num_ctx = ",
    ];
    run("persona", words, 2000, fuzzing::persona);
}

#[test]
fn capture() {
    run("capture", JSON, 2000, fuzzing::capture);
}

#[test]
fn image_intake() {
    let words: &[&[u8]] = &[
        b"\x89PNG\r\n\x1a\n",
        b"IHDR",
        b"\xff\xd8\xff",
        b"GIF89a",
        b"RIFF",
        b"WEBPVP8 ",
    ];
    run("image_intake", words, 1000, fuzzing::image_intake);
}

#[test]
fn agent_events() {
    let words: &[&[u8]] = &[b"http://", b"https://", b"[fd00::2]", b":9811", b"?", b"#"];
    let dict: Vec<&[u8]> = JSON.iter().chain(words).copied().collect();
    run("agent_events", &dict, 4000, fuzzing::agent_events);
}
