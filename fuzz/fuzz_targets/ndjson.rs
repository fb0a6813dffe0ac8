//! Fuzz target: the NDJSON stream decoder fed arbitrary bytes in arbitrary splits.
//!
//! The first two input bytes seed how the rest is cut into `feed` calls, so libFuzzer explores
//! split points as well as content. Checks, besides "never panics":
//! - memory stays bounded: a tiny line limit (`LIMIT`) is used, and the decoder must report
//!   `LineTooLong` rather than buffer an unbounded line;
//! - after `finish` the decoder always ends (drain terminates, `is_ended`, then silence);
//! - the outcome does not depend on where the input was split, as long as no line hit the
//!   limit (at the limit, a split can legitimately decide earlier: a still-growing line is
//!   rejected before its newline — or its `\r` — arrives).
#![no_main]

use libfuzzer_sys::fuzz_target;
use yollayah_core::Error;
use yollayah_core::ollama::stream::NdjsonDecoder;
use yollayah_core::ollama::types::ChatChunk;

const LIMIT: usize = 256;

/// Upper bound on items a decoder can produce from `n` bytes: one per newline plus a last line
/// plus one terminal error. Used to prove `next_item` never loops forever.
fn max_items(n: usize) -> usize {
    n + 2
}

fn decode(parts: &[&[u8]], total: usize) -> Vec<String> {
    let mut d = NdjsonDecoder::<ChatChunk>::with_max_line_bytes(LIMIT);
    let mut out = Vec::new();
    for p in parts {
        d.feed(p);
        while let Some(r) = d.next_item() {
            out.push(describe(r));
            assert!(out.len() <= max_items(total), "decoder yields without end");
        }
    }
    d.finish();
    while let Some(r) = d.next_item() {
        out.push(describe(r));
        assert!(out.len() <= max_items(total), "decoder yields without end");
    }
    assert!(d.is_ended(), "drained after finish but not ended");
    d.feed(b"{\"done\":true}\n");
    assert!(
        d.next_item().is_none(),
        "ended decoder produced more output"
    );
    out
}

fn describe(r: yollayah_core::Result<ChatChunk>) -> String {
    match r {
        Ok(c) => format!("ok {c:?}"),
        Err(e @ Error::LineTooLong { .. }) => format!("too-long {e}"),
        Err(e) => format!("err {e}"),
    }
}

/// Cuts `data` into pieces whose lengths come from a small xorshift seeded by `seed`.
fn split(data: &[u8], seed: u16) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 1;
    let mut parts = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        // Mostly short pieces (byte-by-byte UTF-8 splits), sometimes long ones.
        let max = if state % 4 == 0 { 600 } else { 8 };
        let n = (state as usize % max + 1).min(rest.len());
        let (head, tail) = rest.split_at(n);
        parts.push(head);
        rest = tail;
    }
    parts
}

fuzz_target!(|input: &[u8]| {
    let (seed, data) = match input {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => (0, input),
    };
    let whole = decode(&[data], data.len());
    let pieces = split(data, seed);
    let split_out = decode(&pieces, data.len());
    let hit_limit = |v: &[String]| v.iter().any(|s| s.starts_with("too-long"));
    if !hit_limit(&whole) && !hit_limit(&split_out) {
        assert_eq!(
            whole, split_out,
            "result depends on how the input was split"
        );
    }
});
