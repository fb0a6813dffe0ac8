//! Times full NVML probes against `nvidia-smi` on a GPU machine (docs/targets.md: one probe
//! ≤ 50 µs and ≥ 400× cheaper than nvidia-smi). Without an NVIDIA driver it says why and
//! exits 0.
//!
//! `cargo run --release -p yollayah-core --example nvml_probe_bench -- [N] [SMI_N]`

use std::process::{Command, ExitCode};
use std::time::Instant;

use yollayah_core::gpu::{GpuProbe, NvmlProbe, NvmlStatus};

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (mean, v.get(v.len() / 2).copied().unwrap_or(f64::NAN))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let smi_n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);

    let probe = NvmlProbe::new();
    let first = probe.snapshot();
    if let NvmlStatus::Unavailable { reason } = &first.nvml {
        println!("NVML unavailable: {reason}");
        return ExitCode::SUCCESS;
    }
    // Warm the caches (names, handles) the way a running watchdog has them.
    for _ in 0..100 {
        std::hint::black_box(probe.snapshot());
    }
    let mut per = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(probe.snapshot());
        per.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (mean, median) = stats(per);
    println!(
        "NVML full probe ({} GPUs, {n} runs): mean {mean:.2} µs, median {median:.2} µs",
        first.gpus.len()
    );

    let mut smi = Vec::with_capacity(smi_n);
    for _ in 0..smi_n {
        let t = Instant::now();
        let out = Command::new("nvidia-smi")
            .args([
                "--query-gpu=memory.used,memory.total,utilization.gpu",
                "--format=csv",
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => smi.push(t.elapsed().as_secs_f64() * 1e3),
            Ok(o) => {
                println!(
                    "nvidia-smi failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                break;
            }
            Err(e) => {
                println!("nvidia-smi not runnable: {e}");
                break;
            }
        }
    }
    if !smi.is_empty() {
        let (smi_mean, smi_median) = stats(smi);
        println!(
            "nvidia-smi ({} runs): mean {smi_mean:.2} ms, median {smi_median:.2} ms",
            smi_n
        );
        println!(
            "ratio (median nvidia-smi / median NVML probe): {:.0}×",
            smi_median * 1e3 / median
        );
    }
    match serde_json::to_string_pretty(&probe.snapshot()) {
        Ok(j) => println!("{j}"),
        Err(e) => println!("snapshot not serialisable: {e}"),
    }
    ExitCode::SUCCESS
}
