//! One whole diagnosis from a capture bundle (target ≤ 20 µs, docs/targets.md). The bundle is
//! loaded once; only `diagnose` is timed.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use yollayah_core::capture::CaptureBundle;
use yollayah_core::diagnose::diagnose;

fn bench(c: &mut Criterion) {
    for name in [
        "incident_9902.json",
        "incident_7370.json",
        "full_gpu.json",
        "gemma3_swa_128k.json",
        "two_gpus_old.json",
        "derived_thrash_gpu.json",
    ] {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let b = CaptureBundle::read(&p).expect("fixture bundle is valid");
        let obs = b.observation();
        c.bench_function(&format!("diagnose/{name}"), |bn| {
            bn.iter(|| diagnose(black_box(&obs)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
