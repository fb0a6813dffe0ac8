//! Persona composition per request (target ≤ 20 µs, docs/targets.md): building a request's
//! messages from the persona, a 20-turn history and the user's message, plus the watcher's
//! rate-limited check; and the same with a forced `stat` of the file.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use yollayah_core::ollama::types::Message;
use yollayah_core::persona::{BUNDLED_PERSONA, PersonaSource};

fn history() -> Vec<Message> {
    (0..20)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            Message::new(role, format!("turn {i}: ").repeat(40))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("persona.md");
    std::fs::write(&path, BUNDLED_PERSONA).expect("write persona");
    let source = PersonaSource::open(&path).expect("bundled persona parses");
    let stat_every_time = PersonaSource::open(&path)
        .expect("bundled persona parses")
        .with_min_interval(Duration::ZERO);
    let history = history();
    let user = Message::new("user", "What's a good name for a cat?");

    c.bench_function("compose borrowed (current + compose)", |b| {
        b.iter(|| {
            let persona = source.current();
            let messages = persona.compose(black_box(&history), black_box(&user));
            black_box(messages.len())
        })
    });
    c.bench_function("compose borrowed + serialise to JSON", |b| {
        b.iter(|| {
            let persona = source.current();
            let messages = persona.compose(black_box(&history), black_box(&user));
            black_box(serde_json::to_vec(&messages).map(|v| v.len()).unwrap_or(0))
        })
    });
    c.bench_function("compose owned (clones prompt and history)", |b| {
        b.iter(|| {
            let persona = source.current();
            black_box(
                persona
                    .compose_owned(black_box(&history), user.clone())
                    .len(),
            )
        })
    });
    c.bench_function("compose borrowed with a stat every call", |b| {
        b.iter(|| {
            let persona = stat_every_time.current();
            black_box(persona.compose(black_box(&history), black_box(&user)).len())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
