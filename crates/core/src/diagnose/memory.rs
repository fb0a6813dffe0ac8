//! The memory model behind `num_ctx` advice: KV-cache bytes per token from `/api/show`
//! `model_info`, and the largest context that fits the VRAM left for a model.
//!
//! Deliberately simple and documented in `docs/diagnosis.md`, so users can redo the sums:
//! `need(ctx) = weights + RESERVE + ctx × parallel × kv_per_token (+ no-flash-attention
//! scores)`, and it fits when `need(ctx) + fit_margin ≤ total − held by others`.

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
const UBATCH: u64 = 512;

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
    /// Σ over layers of `head_count_kv × (key_length + value_length)`: KV elements per token.
    pub kv_elements_per_token: u64,
    /// Largest attention head count (attention-score buffer without flash attention).
    pub head_count_max: u64,
    /// Training context (`<arch>.context_length`), 0 when absent.
    pub train_ctx: u64,
    /// `head_count_kv` was a truncated array (`[]`), so `head_count` was assumed: an upper bound.
    pub kv_heads_assumed: bool,
}

fn num(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Per-layer values of a key that may be a number or an array; `None` when absent or `[]`.
fn per_layer(v: Option<&Value>, layers: u64) -> Option<PerLayer<'_>> {
    match v? {
        Value::Array(a) if a.is_empty() => None,
        Value::Array(a) => Some(PerLayer::Array(a)),
        other => num(other).map(|n| PerLayer::Scalar(n, layers)),
    }
}

enum PerLayer<'a> {
    Scalar(u64, u64),
    Array(&'a [Value]),
}

impl PerLayer<'_> {
    fn sum(&self) -> u64 {
        match self {
            PerLayer::Scalar(n, l) => n * l,
            PerLayer::Array(a) => a.iter().filter_map(num).sum(),
        }
    }
    fn max(&self) -> u64 {
        match self {
            PerLayer::Scalar(n, _) => *n,
            PerLayer::Array(a) => a.iter().filter_map(num).max().unwrap_or(0),
        }
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
    let heads = per_layer(get("attention.head_count"), layers);
    let head_max = heads.as_ref().map_or(0, PerLayer::max);
    let head_dim = embd.checked_div(head_max).unwrap_or(0);
    let k_len = get("attention.key_length")
        .and_then(num)
        .unwrap_or(head_dim);
    let v_len = get("attention.value_length")
        .and_then(num)
        .unwrap_or(head_dim);
    let (kv_heads_sum, assumed) = match per_layer(get("attention.head_count_kv"), layers) {
        Some(p) => (p.sum(), false),
        // Absent means plain multi-head attention; a truncated array means unknown, and
        // head_count is the safe upper bound.
        None => (
            heads.as_ref().map_or(0, PerLayer::sum),
            get("attention.head_count_kv").is_some(),
        ),
    };
    let kv_elements_per_token = kv_heads_sum * (k_len + v_len);
    if kv_elements_per_token == 0 {
        return None;
    }
    Some(ModelShape {
        block_count: layers,
        kv_elements_per_token,
        head_count_max: head_max,
        train_ctx,
        kv_heads_assumed: assumed,
    })
}

/// The sums for one model on one budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitModel {
    /// Bytes of weights.
    pub weights: u64,
    /// KV bytes per token per slot at the configured cache type.
    pub kv_per_token: f64,
    /// Slots (`OLLAMA_NUM_PARALLEL`).
    pub parallel: u64,
    /// Extra bytes per context token when flash attention is off (attention scores).
    pub no_fa_per_token: f64,
    /// VRAM the model may use: total of its GPU(s) − memory held by everything else − margin.
    pub available: u64,
}

impl FitModel {
    /// KV-cache bytes at `ctx` per slot, over all slots.
    pub fn kv_bytes(&self, ctx: u64) -> u64 {
        (self.kv_per_token * (ctx * self.parallel) as f64) as u64
    }

    /// Bytes the runner needs on the GPU to hold everything at `ctx`.
    pub fn need(&self, ctx: u64) -> u64 {
        self.weights + RESERVE + self.kv_bytes(ctx) + (self.no_fa_per_token * ctx as f64) as u64
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
    /// fits; `None` if not even [`MIN_CTX`] does.
    pub fn largest_fit(&self, cap: u64) -> Option<u64> {
        let room = self.available.checked_sub(self.weights + RESERVE)?;
        let per_ctx = self.kv_per_token * self.parallel as f64 + self.no_fa_per_token;
        if per_ctx <= 0.0 {
            return None;
        }
        let mut ctx = ((room as f64 / per_ctx) as u64 / CTX_STEP) * CTX_STEP;
        if cap > 0 {
            ctx = ctx.min(cap / CTX_STEP * CTX_STEP);
        }
        // Float rounding may put the exact boundary one step too high.
        while ctx >= MIN_CTX && !self.fits(ctx) {
            ctx -= CTX_STEP;
        }
        (ctx >= MIN_CTX).then_some(ctx)
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
            parallel: 1,
            no_fa_per_token: 0.0,
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
    }
}
