//! The last few minutes of GPU readings, kept from the watchdog's snapshots, so the chat
//! window can draw its sparkline at once when it opens (`gpu_history`) instead of starting
//! empty. Filled only from snapshots: the GUI never probes the GPU itself.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use yollayah_core::events::Snapshot;

/// How much history the sparkline shows.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Hard cap on kept samples, whatever the tick (kicks add snapshots between ticks).
const MAX_SAMPLES: usize = 1024;

/// One reading, as `gpu_history` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GpuSample {
    /// Unix time of the snapshot, in milliseconds.
    pub at_ms: i64,
    /// Highest utilisation over the GPUs; `None` where the driver does not report it.
    pub util_pct: Option<u32>,
    /// VRAM in use over all GPUs, bytes.
    pub vram_used: u64,
    /// VRAM over all GPUs, bytes.
    pub vram_total: u64,
}

impl GpuSample {
    /// The reading in `snap`, or `None` when it saw no GPU (no NVIDIA driver, Ollama down):
    /// a gap in the line says "no data" more honestly than a zero.
    pub fn from_snapshot(snap: &Snapshot) -> Option<Self> {
        if snap.gpus.is_empty() {
            return None;
        }
        Some(GpuSample {
            at_ms: i64::try_from(snap.at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
            util_pct: snap.gpus.iter().filter_map(|g| g.utilization_gpu).max(),
            vram_used: snap.gpus.iter().map(|g| g.memory_used).sum(),
            vram_total: snap.gpus.iter().map(|g| g.memory_total).sum(),
        })
    }
}

/// A ring buffer of [`GpuSample`]s covering [`WINDOW`].
#[derive(Debug, Default)]
pub struct GpuSamples {
    samples: VecDeque<GpuSample>,
}

impl GpuSamples {
    /// Adds a reading and forgets the ones older than [`WINDOW`] before it. A reading older
    /// than the newest (clock stepped back) replaces nothing and is dropped.
    pub fn push(&mut self, sample: GpuSample) {
        if self
            .samples
            .back()
            .is_some_and(|last| sample.at_ms < last.at_ms)
        {
            return;
        }
        let window_ms = i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
        let oldest = sample.at_ms.saturating_sub(window_ms);
        while self
            .samples
            .front()
            .is_some_and(|s| s.at_ms < oldest || self.samples.len() >= MAX_SAMPLES)
        {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// All kept readings, oldest first.
    pub fn to_vec(&self) -> Vec<GpuSample> {
        self.samples.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> GpuSample {
        GpuSample {
            at_ms: ms,
            util_pct: Some(5),
            vram_used: 1,
            vram_total: 2,
        }
    }

    #[test]
    fn keeps_five_minutes_and_drops_older_readings() {
        let mut s = GpuSamples::default();
        for i in 0..400 {
            s.push(at(i * 1000));
        }
        let v = s.to_vec();
        assert_eq!(v.first().map(|s| s.at_ms), Some(99_000));
        assert_eq!(v.last().map(|s| s.at_ms), Some(399_000));
        assert_eq!(v.len(), 301);
    }

    #[test]
    fn is_bounded_even_at_a_fast_tick_and_ignores_time_going_back() {
        let mut s = GpuSamples::default();
        for i in 0..5000 {
            s.push(at(i));
        }
        assert_eq!(s.to_vec().len(), MAX_SAMPLES);
        s.push(at(10));
        assert_eq!(s.to_vec().last().map(|s| s.at_ms), Some(4999));
    }
}
