//! The memory model behind `num_ctx` advice: KV-cache bytes per token from `/api/show`
//! `model_info`, and the largest context that fits the VRAM left for a model.
//!
//! Deliberately simple and documented in `docs/diagnosis.md`, so users can redo the sums:
//! `need(ctx) = weights + fixed + KV(ctx) (+ no-flash-attention scores × GPUs counted)`, where
//! sliding-window layers hold only the window's cells, and it fits when
//! `need(ctx) ≤ total − held by others − fit margin` over the GPU(s) Ollama would use.

use std::collections::BTreeMap;

use serde_json::Value;

pub(crate) const MIB: u64 = 1 << 20;
pub(crate) const GIB: u64 = 1 << 30;

/// Runner overhead outside weights and KV: CUDA context, cuBLAS workspace, compute graph
/// (with flash attention, ubatch 512) and output buffers. Measured llama-server figures for
/// 7B–70B models sit between 0.5 and 1 GiB; the upper end keeps advice on the safe side.
pub const RESERVE: u64 = GIB;
/// llama.cpp fit's default per-device margin (`LLAMA_ARG_FIT_TARGET`, MiB).
pub const DEFAULT_FIT_MARGIN_MIB: u64 = 1024;
/// `num_ctx` advice is a multiple of this.
pub const CTX_STEP: u64 = 1024;
/// Advice never goes below this; if even this does not fit, context is not the fix.
pub const MIN_CTX: u64 = 2048;
/// Physical micro-batch assumed for the attention-score buffer without flash attention.
pub const UBATCH: u64 = 512;

/// Bytes per KV element for an `OLLAMA_KV_CACHE_TYPE` / `--cache-type-k` value (ggml block
/// sizes: q8_0 = 34 bytes per 32, q4_0 = 18 per 32, …). Unknown types → `None`.
pub fn kv_bytes_per_element(kind: &str) -> Option<f64> {
    Some(match kind.trim().to_ascii_lowercase().as_str() {
        "" | "f16" | "bf16" => 2.0,
        "f32" => 4.0,
        "q8_0" => 34.0 / 32.0,
        "q5_1" => 24.0 / 32.0,
        "q5_0" => 22.0 / 32.0,
        "q4_1" => 20.0 / 32.0,
        "q4_0" | "iq4_nl" => 18.0 / 32.0,
        _ => return None,
    })
}

/// Shape facts read from `model_info`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModelShape {
    pub block_count: u64,
    /// Σ over full-attention layers of `head_count_kv × (key_length + value_length)`: KV
    /// elements per cached token that grow with the whole context.
    pub kv_elements_per_token: u64,
    /// The same sum over sliding-window layers, which only keep the window's cells.
    pub swa_kv_elements_per_token: u64,
    /// `<arch>.attention.sliding_window` in tokens; 0 when the model has none.
    pub sliding_window: u64,
    /// Largest attention head count (attention-score buffer without flash attention).
    pub head_count_max: u64,
    /// Training context (`<arch>.context_length`), 0 when absent.
    pub train_ctx: u64,
    /// `head_count_kv` was a truncated array (`[]`), so `head_count` was assumed: an upper bound.
    pub kv_heads_assumed: bool,
    /// `general.file_type` (1 = F16, 32 = BF16, 15 = Q4_K_M, …), when present.
    pub file_type: Option<u64>,
}

fn num(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Per-layer values of a key that may be a number or an array; `None` when absent or `[]`.
fn per_layer(v: Option<&Value>) -> Option<PerLayer<'_>> {
    match v? {
        Value::Array(a) if a.is_empty() => None,
        Value::Array(a) => Some(PerLayer::Array(a)),
        other => num(other).map(PerLayer::Scalar),
    }
}

enum PerLayer<'a> {
    Scalar(u64),
    Array(&'a [Value]),
}

impl PerLayer<'_> {
    fn at(&self, il: u64) -> u64 {
        match self {
            PerLayer::Scalar(n) => *n,
            PerLayer::Array(a) => a.get(il as usize).and_then(num).unwrap_or(0),
        }
    }
    fn max(&self) -> u64 {
        match self {
            PerLayer::Scalar(n) => *n,
            PerLayer::Array(a) => a.iter().filter_map(num).max().unwrap_or(0),
        }
    }
}

/// Which layers use the sliding window. GGUF files may carry a per-layer bool array
/// (`sliding_window_pattern`, dropped by `/api/show` when longer than 5 elements) or a period;
/// otherwise llama.cpp hard-codes the period per architecture: gemma2 and gpt-oss alternate
/// (every 2nd layer is full), gemma3 has 5 local layers per global one, cohere2 3 per 1.
enum SwaPattern<'a> {
    None,
    /// Layer `il` is sliding unless `il % n == n - 1` (llama.cpp `set_swa_pattern`).
    Period(u64),
    Flags(&'a [Value]),
}

impl SwaPattern<'_> {
    fn sliding(&self, il: u64) -> bool {
        match self {
            SwaPattern::None => false,
            SwaPattern::Period(n) => *n > 1 && il % n < n - 1,
            SwaPattern::Flags(a) => a.get(il as usize).and_then(Value::as_bool) == Some(true),
        }
    }
}

fn default_swa_period(arch: &str) -> u64 {
    match arch {
        "gemma2" | "gptoss" | "gpt-oss" => 2,
        "gemma3" | "gemma3n" | "gemma4" => 6,
        "cohere2" => 4,
        _ => 0,
    }
}

/// Reads the shape of the model from `model_info`. `key` is a scratch buffer reused across
/// lookups so the hot path does not allocate per key.
pub fn model_shape(info: &BTreeMap<String, Value>, key: &mut String) -> Option<ModelShape> {
    let arch = info.get("general.architecture")?.as_str()?;
    let mut get = |suffix: &str| -> Option<&Value> {
        key.clear();
        key.push_str(arch);
        key.push('.');
        key.push_str(suffix);
        info.get(key.as_str())
    };
    let layers = get("block_count").and_then(num).filter(|n| *n > 0)?;
    let train_ctx = get("context_length").and_then(num).unwrap_or(0);
    let embd = get("embedding_length").and_then(num).unwrap_or(0);
    let heads = per_layer(get("attention.head_count"));
    let head_max = heads.as_ref().map_or(0, PerLayer::max);
    let head_dim = embd.checked_div(head_max).unwrap_or(0);
    let k_len = get("attention.key_length")
        .and_then(num)
        .unwrap_or(head_dim);
    let v_len = get("attention.value_length")
        .and_then(num)
        .unwrap_or(head_dim);
    let window = get("attention.sliding_window").and_then(num).unwrap_or(0);
    let pattern = if window == 0 {
        SwaPattern::None
    } else {
        match get("attention.sliding_window_pattern") {
            Some(Value::Array(a)) if !a.is_empty() => SwaPattern::Flags(a),
            Some(v) if num(v).is_some_and(|n| n > 1) => SwaPattern::Period(num(v).unwrap_or(0)),
            _ => SwaPattern::Period(default_swa_period(arch)),
        }
    };
    let kv_heads = per_layer(get("attention.head_count_kv"));
    // Absent means plain multi-head attention; a truncated array means unknown, and
    // head_count is the safe upper bound.
    let assumed = kv_heads.is_none() && get("attention.head_count_kv").is_some();
    let (mut full, mut swa) = (0u64, 0u64);
    for il in 0..layers {
        let h = match &kv_heads {
            Some(p) => p.at(il),
            None => heads.as_ref().map_or(0, |p| p.at(il)),
        };
        let e = h * (k_len + v_len);
        if pattern.sliding(il) {
            swa += e;
        } else {
            full += e;
        }
    }
    if full + swa == 0 {
        return None;
    }
    Some(ModelShape {
        block_count: layers,
        kv_elements_per_token: full,
        swa_kv_elements_per_token: swa,
        sliding_window: if swa > 0 { window } else { 0 },
        head_count_max: head_max,
        train_ctx,
        kv_heads_assumed: assumed,
        file_type: info.get("general.file_type").and_then(num),
    })
}

/// The sums for one model on one budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitModel {
    /// Bytes of weights.
    pub weights: u64,
    /// KV bytes per token per slot of the full-attention layers at the configured cache type.
    pub kv_per_token: f64,
    /// KV bytes per cached token of the sliding-window layers.
    pub swa_kv_per_token: f64,
    /// Sliding window in tokens (0: none).
    pub swa_window: u64,
    /// Slots (`OLLAMA_NUM_PARALLEL`).
    pub parallel: u64,
    /// Extra bytes per context token when flash attention is off (attention scores).
    pub no_fa_per_token: f64,
    /// How many GPUs the attention-score buffer is counted on (servers ≤ 0.11 count it on
    /// every GPU of a split; 1 otherwise).
    pub graph_copies: u64,
    /// Bytes outside weights and KV: [`RESERVE`], [`PER_GPU_OVERHEAD`] per extra GPU, and a
    /// vision projector kept on the GPU.
    pub fixed: u64,
    /// VRAM the model may use: total of its GPU(s) − memory held by everything else − margin.
    pub available: u64,
}

/// Each GPU beyond the first in a split holds its own CUDA context and compute buffers.
/// A guess from llama.cpp logs of 2-GPU splits (300–600 MiB per extra device).
pub const PER_GPU_OVERHEAD: u64 = 512 * MIB;

impl FitModel {
    /// KV-cache bytes at `ctx` per slot, over all slots.
    pub fn kv_bytes(&self, ctx: u64) -> u64 {
        let cells = (ctx * self.parallel) as f64;
        let swa_cells = if self.swa_window > 0 {
            // llama.cpp keeps window × slots + one ubatch cells for sliding layers.
            cells.min((self.swa_window * self.parallel + UBATCH) as f64)
        } else {
            cells
        };
        (self.kv_per_token * cells + self.swa_kv_per_token * swa_cells) as u64
    }

    /// Bytes the runner needs on the GPU to hold everything at `ctx`.
    pub fn need(&self, ctx: u64) -> u64 {
        self.weights
            + self.fixed
            + self.kv_bytes(ctx)
            + (self.no_fa_per_token * ctx as f64 * self.graph_copies.max(1) as f64) as u64
    }

    /// Whether the whole model fits at `ctx`.
    pub fn fits(&self, ctx: u64) -> bool {
        self.need(ctx) <= self.available
    }

    /// Bytes missing at `ctx` (0 when it fits).
    pub fn deficit(&self, ctx: u64) -> u64 {
        self.need(ctx).saturating_sub(self.available)
    }

    /// Largest `num_ctx`, a multiple of [`CTX_STEP`], no more than `cap` (if non-zero), that
    /// fits; `None` if not even [`MIN_CTX`] does. `need` is monotonic in `ctx` (sliding
    /// layers make it piecewise linear), so a binary search over steps finds the boundary.
    pub fn largest_fit(&self, cap: u64) -> Option<u64> {
        if !self.fits(MIN_CTX) {
            return None;
        }
        let hi_cap = if cap > 0 { cap } else { 1 << 24 };
        let (mut lo, mut hi) = (MIN_CTX / CTX_STEP, hi_cap / CTX_STEP);
        if hi < lo {
            return None;
        }
        if self.fits(hi * CTX_STEP) {
            return Some(hi * CTX_STEP);
        }
        // Invariant: lo fits, hi does not.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.fits(mid * CTX_STEP) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo * CTX_STEP)
    }
}

/// Extra bytes per context token without flash attention: f32 scores of one ubatch for the
/// widest layer.
pub fn no_fa_per_token(head_count_max: u64) -> f64 {
    (UBATCH * head_count_max * 4) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(j: serde_json::Value) -> BTreeMap<String, Value> {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn gqa_scalar_shape() {
        // qwen2 32B: 64 layers, 40 heads, 8 KV heads, head dim 5120/40 = 128.
        let i = info(
            serde_json::json!({"general.architecture":"qwen2","qwen2.block_count":64,
            "qwen2.attention.head_count":40,"qwen2.attention.head_count_kv":8,
            "qwen2.embedding_length":5120,"qwen2.context_length":131072}),
        );
        let s = model_shape(&i, &mut String::new()).unwrap();
        assert_eq!(s.kv_elements_per_token, 64 * 8 * 256);
        assert_eq!(s.train_ctx, 131072);
        // f16: 256 KiB per token.
        assert_eq!(s.kv_elements_per_token as f64 * 2.0, 262144.0);
    }

    #[test]
    fn per_layer_kv_heads_are_summed_and_truncated_arrays_assume_mha() {
        let i = info(
            serde_json::json!({"general.architecture":"x","x.block_count":4,
            "x.attention.head_count":[8,8,8,8],"x.attention.head_count_kv":[2,0,2,4],
            "x.attention.key_length":64,"x.attention.value_length":32,"x.embedding_length":512}),
        );
        let s = model_shape(&i, &mut String::new()).unwrap();
        assert_eq!(s.kv_elements_per_token, 8 * 96);
        assert!(!s.kv_heads_assumed);
        let i = info(
            serde_json::json!({"general.architecture":"x","x.block_count":4,
            "x.attention.head_count":8,"x.attention.head_count_kv":[],"x.embedding_length":512}),
        );
        let s = model_shape(&i, &mut String::new()).unwrap();
        assert_eq!(s.kv_elements_per_token, 4 * 8 * 128);
        assert!(s.kv_heads_assumed);
        assert!(model_shape(&BTreeMap::new(), &mut String::new()).is_none());
    }

    #[test]
    fn cache_types() {
        assert_eq!(kv_bytes_per_element("f16"), Some(2.0));
        assert_eq!(kv_bytes_per_element("Q8_0"), Some(1.0625));
        assert_eq!(kv_bytes_per_element("q4_0"), Some(0.5625));
        assert_eq!(kv_bytes_per_element("nonsense"), None);
    }

    #[test]
    fn largest_fit_is_the_boundary() {
        let m = FitModel {
            weights: 10 * GIB,
            kv_per_token: 131072.0,
            swa_kv_per_token: 0.0,
            swa_window: 0,
            parallel: 1,
            no_fa_per_token: 0.0,
            graph_copies: 1,
            fixed: RESERVE,
            available: 13 * GIB,
        };
        // room = 2 GiB → 16384 tokens exactly.
        assert_eq!(m.largest_fit(0), Some(16384));
        assert!(m.fits(16384) && !m.fits(16385));
        assert_eq!(m.largest_fit(8192), Some(8192));
        let tight = FitModel {
            available: 11 * GIB + 100 * MIB,
            ..m
        };
        assert_eq!(tight.largest_fit(0), None);
        // The attention graph counted on two GPUs doubles its share.
        let two = FitModel {
            no_fa_per_token: 65536.0,
            graph_copies: 2,
            ..m
        };
        // 2 GiB / (131072 + 2 × 65536) = 8192.
        assert_eq!(two.largest_fit(0), Some(8192));
    }

    fn gemma3_27b() -> BTreeMap<String, Value> {
        // Real gemma3:27b model_info (Ollama library, Q4_K_M).
        info(
            serde_json::json!({"general.architecture":"gemma3","general.file_type":15,
            "gemma3.block_count":62,"gemma3.attention.head_count":32,
            "gemma3.attention.head_count_kv":16,"gemma3.attention.key_length":128,
            "gemma3.attention.value_length":128,"gemma3.attention.sliding_window":1024,
            "gemma3.embedding_length":5376,"gemma3.context_length":131072}),
        )
    }

    #[test]
    fn sliding_window_layers_keep_only_the_window() {
        let s = model_shape(&gemma3_27b(), &mut String::new()).unwrap();
        // 5 local layers per global one: layers 5, 11, …, 59 are global (10 of 62).
        assert_eq!(s.kv_elements_per_token, 10 * 16 * 256);
        assert_eq!(s.swa_kv_elements_per_token, 52 * 16 * 256);
        assert_eq!(s.sliding_window, 1024);
        assert_eq!(s.file_type, Some(15));
        let m = FitModel {
            weights: 17_396_936_464,
            kv_per_token: s.kv_elements_per_token as f64 * 2.0,
            swa_kv_per_token: s.swa_kv_elements_per_token as f64 * 2.0,
            swa_window: s.sliding_window,
            parallel: 1,
            no_fa_per_token: 0.0,
            graph_copies: 1,
            fixed: RESERVE,
            available: 22 * GIB,
        };
        // At 32K: 10 global layers × 32768 cells × 8 KiB + 52 local layers × (1024 + 512)
        // cells × 8 KiB = 2.5 GiB + 0.61 GiB, not the 15.5 GiB of counting every layer in full.
        assert_eq!(m.kv_bytes(32768), 81920 * 32768 + 425984 * 1536);
        let fit = m.largest_fit(131072).unwrap();
        assert!(m.fits(fit) && !m.fits(fit + CTX_STEP));
        // gpt-oss alternates: half of its 24 layers slide over 128 tokens.
        let g = info(
            serde_json::json!({"general.architecture":"gptoss","gptoss.block_count":24,
            "gptoss.attention.head_count":64,"gptoss.attention.head_count_kv":8,
            "gptoss.attention.key_length":64,"gptoss.attention.value_length":64,
            "gptoss.attention.sliding_window":128,"gptoss.embedding_length":2880,
            "gptoss.context_length":131072}),
        );
        let s = model_shape(&g, &mut String::new()).unwrap();
        assert_eq!(s.kv_elements_per_token, 12 * 8 * 128);
        assert_eq!(s.swa_kv_elements_per_token, 12 * 8 * 128);
        assert_eq!(s.sliding_window, 128);
    }
}
