//! NDJSON decoding throughput (target: ≥ 1 M chunks/s on one core, docs/targets.md).
//!
//! The input is a 4,000-chunk `/api/chat` stream shaped like a real one: RFC 3339 timestamps
//! with nanoseconds, short token contents (some non-ASCII), and a final chunk with metrics.
//! It is fed in network-sized reads and, as a worst case for per-read overhead, one read per
//! chunk.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use yollayah_core::ollama::stream::NdjsonDecoder;
use yollayah_core::ollama::types::ChatChunk;

const CHUNKS: usize = 4_000;

const TOKENS: &[&str] = &[
    "The",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " the",
    " lazy",
    " dog",
    ".",
    "\\n",
    " Él",
    " está",
    " aquí",
    " 🌮",
    " 日本",
    "語",
    " naïve",
    " café",
    ",",
    " \\\"quoted\\\"",
    " and",
    " then",
    " some",
    " more",
    " text",
    "!",
];

fn chat_stream() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..CHUNKS - 1 {
        let token = TOKENS[(i * 7 + i / 3) % TOKENS.len()];
        let nanos = 100_000_000 + i * 4_987_211 % 900_000_000;
        out.push_str(&format!(
            "{{\"model\":\"llama3.2:3b\",\"created_at\":\"2026-11-21T10:{:02}:{:02}.{nanos:09}Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"{token}\"}},\"done\":false}}\n",
            (i / 200) % 60,
            (i / 5) % 60,
        ));
    }
    out.push_str(concat!(
        "{\"model\":\"llama3.2:3b\",\"created_at\":\"2026-11-21T10:20:00.123456789Z\",",
        "\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",",
        "\"total_duration\":21204312345,\"load_duration\":12543211,\"prompt_eval_count\":26,",
        "\"prompt_eval_duration\":130123456,\"eval_count\":3999,\"eval_duration\":20012345678}\n",
    ));
    out.into_bytes()
}

/// Decodes `reads` in order and returns the number of chunks (checked by the caller).
fn decode(reads: &[&[u8]]) -> usize {
    let mut d = NdjsonDecoder::<ChatChunk>::new();
    let mut n = 0;
    for r in reads {
        d.feed(r);
        while let Some(item) = d.next_item() {
            if let Ok(chunk) = item {
                black_box(&chunk);
                n += 1;
            }
        }
    }
    d.finish();
    while d.next_item().is_some() {}
    n
}

/// Splits into reads of varying size between 1 and 16 KiB, like TCP reads of a live stream.
fn network_reads(bytes: &[u8]) -> Vec<&[u8]> {
    let sizes = [1024, 4096, 1500, 16384, 8192, 2900, 600, 12000];
    let mut out = Vec::new();
    let mut at = 0;
    for i in 0.. {
        if at >= bytes.len() {
            break;
        }
        let end = (at + sizes[i % sizes.len()]).min(bytes.len());
        out.push(&bytes[at..end]);
        at = end;
    }
    out
}

/// Time this thread spent on a CPU, in ns (Linux). On a shared, overloaded machine the
/// wall-clock figures from criterion understate one core's speed; this one does not.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Chunks decoded per second of CPU time, over about two CPU-seconds.
fn chunks_per_cpu_second(reads: &[&[u8]]) -> Option<f64> {
    let start = thread_cpu_ns()?;
    let mut chunks = 0usize;
    loop {
        chunks += decode(black_box(reads));
        let used = thread_cpu_ns()?.saturating_sub(start);
        if used >= 2_000_000_000 {
            return Some(chunks as f64 / (used as f64 / 1e9));
        }
    }
}

fn bench(c: &mut Criterion) {
    let bytes = chat_stream();
    let per_line: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    let net = network_reads(&bytes);
    assert_eq!(per_line.len(), CHUNKS);
    assert_eq!(decode(&net), CHUNKS, "the bench input must decode fully");
    assert_eq!(decode(&per_line), CHUNKS);
    eprintln!(
        "input: {CHUNKS} chunks, {} bytes ({} bytes/chunk on average), {} network reads",
        bytes.len(),
        bytes.len() / CHUNKS,
        net.len()
    );

    for (name, reads) in [("network reads", &net), ("one read per chunk", &per_line)] {
        if let Some(rate) = chunks_per_cpu_second(reads) {
            eprintln!("{name}: {:.2} M chunks per CPU-second", rate / 1e6);
        }
    }

    let mut g = c.benchmark_group("ndjson_chat_4000");
    g.throughput(Throughput::Elements(CHUNKS as u64));
    g.bench_function("network_reads_1-16KiB", |b| {
        b.iter(|| decode(black_box(&net)))
    });
    g.bench_function("one_read_per_chunk", |b| {
        b.iter(|| decode(black_box(&per_line)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
