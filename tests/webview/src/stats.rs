//! Summary statistics of timing samples.

/// Mean, p50, p95, p99 and max of a sample set, plus the count and sum.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Sum of all samples.
    pub sum: f64,
    /// Arithmetic mean (0 when empty).
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// Summarises `samples` (NaNs ignored).
pub fn summarize(samples: &[f64]) -> Summary {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return Summary::default();
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let rank = |p: f64| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let sum: f64 = v.iter().sum();
    Summary {
        n,
        sum,
        mean: sum / n as f64,
        p50: rank(0.50),
        p95: rank(0.95),
        p99: rank(0.99),
        max: v[n - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        let m = summarize(&s);
        assert_eq!((m.n, m.p50, m.p99, m.max), (100, 50.0, 99.0, 100.0));
        assert!((m.mean - 50.5).abs() < 1e-9);
        assert_eq!(summarize(&[]), Summary::default());
        assert_eq!(summarize(&[3.0, f64::NAN]).max, 3.0);
    }
}
