//! Image intake bench: a 12-megapixel camera-like JPEG (4000 × 3000) decoded, downscaled to
//! 1120 px and re-encoded by `images::prepare`, on one core (the decoders run single-threaded:
//! the `image` crate is built without rayon). Targets (docs/targets.md): ≤ 150 ms per image;
//! peak memory ≤ 3 × the decoded image.
//!
//! Peak memory is the process's resident high-water mark (`VmHWM`) over the call, reset
//! before it through `/proc/self/clear_refs`; Linux only, skipped elsewhere.
//!
//! `cargo bench -p yollayah-core --bench images` (BENCH_ROUNDS, default 15).

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, RgbImage};
use yollayah_core::images::{ImageLimits, prepare};

/// A photo-like test card: smooth gradients plus deterministic noise, so the JPEG has the
/// entropy (and decode cost) of a real photo rather than of a flat image.
fn camera_jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut seed = 0x9e37_79b9_u32;
    let img = RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed & 31) as i32 - 16;
        let c = |v: u32| (v as i32 + n).clamp(0, 255) as u8;
        image::Rgb([c(x * 255 / w), c(y * 255 / h), c((x + y) * 255 / (w + h))])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap_or_default();
    out
}

fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the resident high-water mark to the current RSS (Linux ≥ 4.0).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // in a debug build: one small round then, as a smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { rounds } else { 1 };
    let (w, h) = if full {
        (4000u32, 3000u32)
    } else {
        (1600, 1200)
    };
    let jpeg = camera_jpeg(w, h);
    if jpeg.is_empty() {
        eprintln!("images bench: could not encode the test JPEG");
        std::process::exit(1);
    }
    let limits = ImageLimits::default();
    let decoded = u64::from(w) * u64::from(h) * 3;

    // One warm-up, which also checks the result.
    match prepare(&jpeg, &limits) {
        Ok(img) => println!(
            "images/prepare_12mp_jpeg: input {} KiB {}x{} -> {}x{} {} ({} KiB)",
            jpeg.len() / 1024,
            w,
            h,
            img.width,
            img.height,
            img.mime,
            img.data.len() / 1024
        ),
        Err(e) => {
            eprintln!("images bench: prepare failed: {e}");
            std::process::exit(1);
        }
    }

    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    let mut peak_delta = None;
    for i in 0..rounds {
        let measure_mem = i == 0 && reset_peak();
        let rss_before = status_kib("VmRSS:");
        let t = Instant::now();
        let out = prepare(&jpeg, &limits);
        times.push(t.elapsed());
        if measure_mem && let (Some(before), Some(peak)) = (rss_before, status_kib("VmHWM:")) {
            peak_delta = Some(peak.saturating_sub(before) * 1024);
        }
        drop(out);
    }
    // Where the time goes: decoding alone (the rest is downscale + encode).
    let mut decode = Duration::MAX;
    for _ in 0..rounds.min(5) {
        let t = Instant::now();
        let ok = image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg).is_ok();
        if ok {
            decode = decode.min(t.elapsed());
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = times[times.len() / 2];
    println!(
        "images/prepare_12mp_jpeg: median {:.1} ms, min {:.1} ms, max {:.1} ms over {} rounds (target ≤ 150 ms)",
        ms(median),
        ms(times[0]),
        ms(times[times.len() - 1]),
        rounds
    );
    println!(
        "images/prepare_12mp_jpeg: decode alone {:.1} ms (best of 5); downscale + encode ≈ {:.1} ms",
        ms(decode),
        (ms(median) - ms(decode)).max(0.0)
    );
    match peak_delta {
        Some(p) => println!(
            "images/prepare_12mp_jpeg: peak memory +{:.1} MiB = {:.2} × the decoded image ({:.1} MiB) (target ≤ 3 ×)",
            p as f64 / 1048576.0,
            p as f64 / decoded as f64,
            decoded as f64 / 1048576.0
        ),
        None => println!("images/prepare_12mp_jpeg: peak memory not measured (no /proc)"),
    }
}
