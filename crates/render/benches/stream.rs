//! Streaming a realistic ~4,000-token Markdown reply token by token: the incremental block
//! renderer versus the naive approach of re-rendering the whole message on every delta.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use yollayah_render::{IncrementalRenderer, render_markdown};

const PROSE: &str = "The model is running partly on the CPU because the context you asked for does not fit in the free VRAM. When Ollama loads a model it estimates the memory of the weights plus the KV cache for the whole context window, and offloads layers to the CPU until the estimate fits. That is why a *bigger* `num_ctx` can make every token **several times slower** even when your prompts are short. See [the FAQ](https://github.com/ollama/ollama/blob/main/docs/faq.md) for details.";

const LIST: &str = "Things to try, in order:\n\n1. Lower `num_ctx` to 16384 in your Modelfile or request options.\n2. Close other programs that hold VRAM (browsers with hardware acceleration, games).\n3. Unload the second model with `ollama stop other:7b`.\n   - it frees about 4.1 GiB\n   - and stops the scheduler from splitting layers\n4. Check `ollama ps` again: the PROCESSOR column should read `100% GPU`.";

const TABLE: &str = "| num_ctx | KV cache | fits in 12 GiB? | tokens/s |\n|---:|---:|:---:|---:|\n| 4096 | 0.5 GiB | yes | 92 |\n| 16384 | 2.0 GiB | yes | 88 |\n| 32768 | 4.0 GiB | yes | 85 |\n| 65536 | 8.0 GiB | no | 21 |\n| 131072 | 16.0 GiB | no | 9 |";

const CODE_RUST: &str = "```rust\nuse std::time::Duration;\n\n/// Polls Ollama until the model is loaded or the deadline passes.\nasync fn wait_loaded(client: &Client, model: &str, deadline: Duration) -> Result<bool> {\n    let start = std::time::Instant::now();\n    while start.elapsed() < deadline {\n        let ps = client.ps().await?;\n        if ps.models.iter().any(|m| m.name == model) {\n            return Ok(true);\n        }\n\n        tokio::time::sleep(Duration::from_millis(200)).await;\n    }\n    Ok(false)\n}\n```";

const CODE_SH: &str = "```sh\ncurl -s http://127.0.0.1:11434/api/ps | jq '.models[] | {name, size, size_vram}'\nollama show llama3.2:3b --modelfile | grep -i num_ctx\n```";

const CODE_PY: &str = "```python\nimport requests\n\nr = requests.post(\n    \"http://127.0.0.1:11434/api/chat\",\n    json={\"model\": \"llama3.2:3b\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],\n          \"options\": {\"num_ctx\": 16384}, \"stream\": False},\n    timeout=60,\n)\nprint(r.json()[\"message\"][\"content\"])\n```";

/// A reply of about `target_tokens` tokens mixing prose, headings, lists, a table and code.
fn reply(target_tokens: usize) -> (String, Vec<String>) {
    let sections = [
        "## Why it is slow",
        PROSE,
        LIST,
        TABLE,
        "## Checking it yourself",
        CODE_SH,
        PROSE,
        "> Note: `size_vram < size` in `/api/ps` means part of the model is in system RAM.",
        CODE_RUST,
        "### From Python",
        CODE_PY,
        LIST,
        PROSE,
    ];
    let mut text = String::new();
    let mut tokens: Vec<String> = Vec::new();
    'outer: loop {
        for section in sections {
            if !text.is_empty() {
                text.push_str("\n\n");
                tokens.push("\n\n".to_string());
            }
            text.push_str(section);
            tokens.extend(tokenize(section));
            if tokens.len() >= target_tokens {
                break 'outer;
            }
        }
    }
    (text, tokens)
}

/// Cuts text roughly the way an LLM tokenizer does (about 4 bytes per token on English prose):
/// a word with its leading space, long words in 6-character pieces, line breaks on their own.
fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        let len = cur.trim_start_matches(' ').chars().count();
        let boundary =
            c == ' ' && !cur.ends_with(' ') || c == '\n' || cur.ends_with('\n') || len >= 6;
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn incremental(tokens: &[String]) -> usize {
    let mut r = IncrementalRenderer::new();
    let mut bytes = 0;
    for t in tokens {
        let u = r.push(t);
        bytes += u.tail.len() + u.completed.iter().map(|b| b.1.len()).sum::<usize>();
    }
    bytes + r.finish().iter().map(|b| b.1.len()).sum::<usize>()
}

fn naive(tokens: &[String]) -> usize {
    let mut text = String::new();
    let mut bytes = 0;
    for t in tokens {
        text.push_str(t);
        bytes += render_markdown(&text).len();
    }
    bytes
}

fn per_delta_profile(tokens: &[String]) {
    let mut r = IncrementalRenderer::new();
    let mut costs: Vec<Duration> = Vec::with_capacity(tokens.len());
    for t in tokens {
        let start = Instant::now();
        black_box(r.push(t).completed);
        costs.push(start.elapsed());
    }
    black_box(r.finish());
    costs.sort();
    let pick = |q: f64| costs[((costs.len() - 1) as f64 * q) as usize];
    println!(
        "incremental per-delta: median {:?}, p99 {:?}, max {:?} over {} deltas",
        pick(0.5),
        pick(0.99),
        pick(1.0),
        costs.len()
    );
}

fn main() {
    let (text, tokens) = reply(4000);
    assert_eq!(tokens.concat(), text);
    println!("reply: {} tokens, {} bytes", tokens.len(), text.len());
    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("stream_4000_tokens");
        g.throughput(Throughput::Elements(tokens.len() as u64));
        g.bench_function("incremental", |b| {
            b.iter(|| incremental(black_box(&tokens)))
        });
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(20));
        g.bench_function("naive_rerender", |b| b.iter(|| naive(black_box(&tokens))));
        g.finish();
    }
    per_delta_profile(&tokens);
    c.final_summary();
}
