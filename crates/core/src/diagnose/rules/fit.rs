//! Memory: what does not fit, what holds the room, and what to change.

use super::super::ctx::{Ctx, OLLAMA_MIN_MEMORY, show_blob};
use super::super::finding::{Code, Evidence, Finding, Severity};
use super::super::memory::{self, GIB, MIB};
use super::{gib, mib, server_ctx_commands, share_score};
use crate::placement;

/// Memory rules speak only where the model is (or would be) off the GPU for memory reasons.
fn memory_case(cx: &Ctx<'_>) -> bool {
    cx.not_on_gpu && !cx.forced_off_gpu()
}

/// The quantisation family of the weights, from `/api/show` details or `general.file_type`.
fn quant(cx: &Ctx<'_>) -> String {
    let q = cx
        .show
        .map(|s| s.details.quantization_level.to_ascii_uppercase())
        .or_else(|| {
            cx.ps
                .map(|p| p.details.quantization_level.to_ascii_uppercase())
        })
        .unwrap_or_default();
    if !q.is_empty() {
        return q;
    }
    match cx.f.shape.and_then(|s| s.file_type) {
        Some(0) => "F32".into(),
        Some(1) => "F16".into(),
        Some(32) => "BF16".into(),
        Some(7) => "Q8_0".into(),
        Some(15) => "Q4_K_M".into(),
        _ => String::new(),
    }
}

fn sixteen_bit(q: &str) -> bool {
    matches!(q, "F16" | "BF16" | "F32")
}

/// 4-bit or smaller already: Q4_K_M is no advice.
fn four_bit_or_less(q: &str) -> bool {
    q.starts_with("Q4")
        || q.starts_with("Q3")
        || q.starts_with("Q2")
        || q.starts_with("IQ")
        || q.starts_with("Q1")
        || q.starts_with("TQ")
}

/// `F16_WEIGHTS_ON_CPU`: 16-bit weights (2 bytes a parameter) partly in CPU buffers
/// (ollama/ollama#6191: a 7B fp16 import that did not fit the GPU).
pub(crate) fn f16_weights_on_cpu(cx: &Ctx<'_>) -> Option<Finding> {
    if !memory_case(cx) {
        return None;
    }
    let q = quant(cx);
    if !sixteen_bit(&q) {
        return None;
    }
    let (w, _) = cx.f.weights?;
    // Q8_0 halves the weights; would the model fit then?
    let q8_fits = cx.fit.map(|m| {
        let half = memory::FitModel {
            weights: w / 2 + w / 32,
            ..m
        };
        half.fits(cx.f.ctx)
    });
    let base = cx.name.split(':').next().unwrap_or(cx.name);
    let mut x = Finding::new(
        Code::F16WeightsOnCpu,
        Severity::Cause,
        if q8_fits == Some(true) { 86 } else { 62 },
        format!(
            "{} has {q} weights ({:.1} GiB, 2 bytes a parameter) and part of them sit in CPU memory.",
            cx.name,
            gib(w)
        ),
        if q8_fits == Some(true) {
            "Use an 8-bit build (Q8_0, half the size, nearly the same quality): it fits this GPU."
                .into()
        } else {
            "Use a quantised build: Q8_0 is half the size, Q4_K_M about 30 %.".into()
        },
    );
    x.commands = vec![
        format!("printf 'FROM {}\\n' > Modelfile.q8", cx.name),
        format!("ollama create {base}-q8 --quantize q8_0 -f Modelfile.q8"),
    ];
    x.evidence.push(Evidence::t("quantization", q));
    x.evidence.push(Evidence::u("weights_bytes", w));
    if let Some(m) = cx.fit {
        x.evidence.push(Evidence::u("available_bytes", m.available));
    }
    Some(x)
}

/// `MODEL_TOO_LARGE`: the weights alone do not fit the room left for the model.
pub(crate) fn model_too_large(cx: &Ctx<'_>) -> Option<Finding> {
    if !memory_case(cx) {
        return None;
    }
    let (m, b) = (cx.fit?, cx.budget?);
    // The projector and extra-GPU overheads are other findings' business: weights + reserve.
    if m.weights + memory::RESERVE <= m.available {
        return None;
    }
    let whole_gpu = m.weights + memory::RESERVE + b.margin > b.total;
    let q = quant(cx);
    let smaller = if sixteen_bit(&q) {
        "use a quantised build (Q8_0 halves it, Q4_K_M is about 30 %)"
    } else if four_bit_or_less(&q) {
        "it is already 4-bit or smaller: use a model with fewer parameters, a GPU with more memory, or accept the partial offload"
    } else {
        "use a smaller quantisation (Q4_K_M) or a model with fewer parameters"
    };
    let mut x = Finding::new(
        Code::ModelTooLarge,
        Severity::Cause,
        if whole_gpu { 85 } else { 50 },
        format!(
            "The weights ({:.1} GiB{}) and the runner's ~1 GiB of buffers do not fit in the {:.1} GiB of VRAM left for the model.",
            gib(m.weights),
            if q.is_empty() {
                String::new()
            } else {
                format!(", {q}")
            },
            gib(m.available)
        ),
        if whole_gpu {
            format!("No setting makes it fit this GPU: {smaller}.")
        } else {
            format!("Free VRAM (see the other findings), or {smaller}.")
        },
    );
    x.evidence.push(Evidence::u("weights_bytes", m.weights));
    x.evidence.push(Evidence::u("available_bytes", m.available));
    x.evidence.push(Evidence::u("gpu_total_bytes", b.total));
    if !q.is_empty() {
        x.evidence.push(Evidence::t("quantization", q));
    }
    Some(x)
}

/// `MIN_VRAM_RULE`: Ollama's own layout (≤ 0.24) puts no layer on a GPU whose free memory is
/// below its minimum (457 MiB + graph + projector + two layers), even when a few layers would
/// fit (ollama/ollama#10765, #7208, #8963). llama-server (≥ 0.30) has no such rule.
pub(crate) fn min_vram_rule(cx: &Ctx<'_>) -> Option<Finding> {
    if !memory_case(cx) || !cx.era.ollama_layout() || (cx.loaded && !cx.ps_cpu_only) {
        return None;
    }
    let b = cx.budget?;
    let layer = cx.layer_bytes()?;
    let s = cx.f.shape?;
    // Ollama's logged graph.partial is about 1 GiB for 4–12B models at small contexts (the
    // output logits dominate); without flash attention the scores grow with the context.
    let scores = if cx.f.flash_off {
        (memory::no_fa_per_token(s.head_count_max) * cx.f.ctx as f64) as u64
    } else {
        0
    };
    let graph = scores.max(GIB);
    let projector = cx.f.projector_bytes.map_or(0, |p| p + GIB);
    let minimum = OLLAMA_MIN_MEMORY + graph + projector + 2 * layer;
    let free = b.total.saturating_sub(b.others);
    if free >= minimum || free < layer {
        return None;
    }
    let mut x = Finding::new(
        Code::MinVramRule,
        Severity::Cause,
        90,
        format!(
            "The GPU has {:.1} GiB free, room for some layers, but Ollama {} places none on a GPU with less than {:.1} GiB free (457 MiB + {:.1} GiB compute graph{} + two {:.0} MiB layers).",
            gib(free),
            cx.obs.server_version.unwrap_or("before 0.30"),
            gib(minimum),
            gib(graph),
            if projector > 0 { format!(" + {:.1} GiB projector", gib(projector)) } else { String::new() },
            layer as f64 / MIB as f64
        ),
        "Lower num_ctx or num_batch (the graph grows with both), enable flash attention (OLLAMA_FLASH_ATTENTION=1), free VRAM, or update Ollama to 0.30 or later, whose llama-server places layers without this minimum.".into(),
    );
    x.evidence.push(Evidence::u("gpu_free_bytes", free));
    x.evidence.push(Evidence::u("minimum_bytes", minimum));
    x.evidence.push(Evidence::u("graph_bytes", graph));
    x.evidence.push(Evidence::u("layer_bytes", layer));
    Some(x)
}

/// `CTX_TOO_LARGE`: the context's KV cache does not fit next to the weights.
pub(crate) fn ctx_too_large(cx: &Ctx<'_>) -> Option<Finding> {
    if !memory_case(cx) {
        return None;
    }
    let kv = cx.kv_now?;
    let f = &cx.f;
    let cap = f.shape.map_or(0, |s| s.train_ctx);
    let advice = cx.fit.and_then(|m| m.largest_fit(cap)).or_else(|| {
        // Without NVML: the part ps puts on the CPU is what must move; shrink the KV by it.
        if cx.fit.is_some() || cx.budget.is_some() {
            return None;
        }
        let p = cx.ps?;
        if p.size_vram == 0 || p.size_vram >= p.size {
            return None;
        }
        let per_ctx = kv as f64 / f.ctx.max(1) as f64;
        let cut = ((p.size - p.size_vram) as f64 / per_ctx).ceil() as u64;
        let c = f.ctx.checked_sub(cut)? / memory::CTX_STEP * memory::CTX_STEP;
        (c >= memory::MIN_CTX).then_some(c)
    });
    let helps = advice.is_some_and(|a| a < f.ctx);
    let big = f.ctx > 8192;
    if !(helps || (big && cx.fit.is_none_or(|m| !m.fits(f.ctx)))) {
        return None;
    }
    let score = match (helps, big) {
        (true, true) => 80,
        (true, false) => 55,
        _ => 35,
    };
    // Nobody we can see asked for this context: it is the server's VRAM-based default, which
    // ollama/ollama#14116 reports exhausting VRAM (PR #14743: qwq 32B spills at 16K on 24 GiB).
    let origin = f
        .tier_default
        .map(|(vram, _)| format!(", Ollama's default for {:.1} GiB of VRAM", gib(vram)));
    let title = format!(
        "The context (num_ctx {}{}{}) needs {:.1} GiB of KV cache, more than the GPU has room for next to the weights.",
        f.ctx,
        if f.parallel > 1 {
            format!(" × {} slots", f.parallel)
        } else {
            String::new()
        },
        origin.as_deref().unwrap_or(""),
        gib(kv)
    );
    let suggested = advice.filter(|a| *a < f.ctx);
    let why_default = match f.tier_default {
        Some((_, tier)) if tier != f.ctx => format!(
            "No Modelfile, option or OLLAMA_CONTEXT_LENGTH we can see sets it: Ollama picks {tier} from the GPUs' total memory (capped at the model's {} tokens) and does not check that the model still fits. ",
            f.ctx
        ),
        Some(_) => "No Modelfile, option or OLLAMA_CONTEXT_LENGTH we can see sets it: Ollama picks it from the GPUs' total memory and does not check that the model still fits. ".to_owned(),
        None => String::new(),
    };
    let remedy = match suggested {
        Some(a) => format!(
            "{why_default}Set num_ctx to {a} so the whole model fits on the GPU. Set it on the server (OLLAMA_CONTEXT_LENGTH={a}, or a derived model with PARAMETER num_ctx {a}) rather than per request: OpenAI-compatible /v1 clients cannot send num_ctx, so a per-request value makes every such client reload the model."
        ),
        None => format!(
            "{why_default}Lower num_ctx and free VRAM; at this size even a small context does not fit next to the weights."
        ),
    };
    let mut x = Finding::new(Code::CtxTooLarge, Severity::Cause, score, title, remedy);
    x.suggested_num_ctx = suggested;
    if let Some(a) = suggested {
        x.commands = server_ctx_commands(cx.name, a);
    }
    x.evidence.push(Evidence::u("num_ctx", f.ctx));
    x.evidence.push(Evidence::t("num_ctx_source", f.ctx_source));
    if let Some((vram, tier)) = f.tier_default {
        x.evidence
            .push(Evidence::t("num_ctx_origin", "ollama_vram_tier_default"));
        x.evidence.push(Evidence::u("tier_total_vram_bytes", vram));
        x.evidence.push(Evidence::u("tier_default_num_ctx", tier));
    }
    x.evidence.push(Evidence::u("parallel", f.parallel));
    x.evidence.push(Evidence::u("kv_cache_bytes", kv));
    x.evidence.push(Evidence::t("kv_cache_type", f.kv_type));
    x.evidence
        .push(Evidence::b("flash_attention", !f.flash_off));
    if let Some(s) = f.shape {
        x.evidence.push(Evidence::u(
            "kv_bytes_per_token",
            (s.kv_elements_per_token as f64 * f.kv_bpe) as u64,
        ));
        if s.sliding_window > 0 {
            x.evidence.push(Evidence::u(
                "swa_kv_bytes_per_token",
                (s.swa_kv_elements_per_token as f64 * f.kv_bpe) as u64,
            ));
            x.evidence
                .push(Evidence::u("sliding_window", s.sliding_window));
        }
        if s.kv_heads_assumed {
            x.evidence.push(Evidence::t(
                "kv_heads",
                "unknown (truncated array): assumed head_count, an upper bound",
            ));
        }
    }
    if let Some((w, src)) = f.weights {
        x.evidence.push(Evidence::u("weights_bytes", w));
        x.evidence.push(Evidence::t("weights_source", src));
    }
    if let Some(m) = cx.fit {
        x.evidence.push(Evidence::u("fixed_bytes", m.fixed));
        x.evidence
            .push(Evidence::f("no_fa_bytes_per_token", m.no_fa_per_token));
        x.evidence.push(Evidence::u("graph_copies", m.graph_copies));
        x.evidence.push(Evidence::u("needed_bytes", m.need(f.ctx)));
        x.evidence.push(Evidence::u("available_bytes", m.available));
    }
    if let Some(b) = cx.budget {
        x.evidence.push(Evidence::u("gpus_used", b.n));
    }
    Some(x)
}

/// `VRAM_HELD_BY_OTHER_PROCESS`: non-Ollama programs hold memory, and freeing it would change
/// the outcome: the model would fit, or (from 100 % CPU) at least get layers on the GPU.
pub(crate) fn vram_held_by_other_process(cx: &Ctx<'_>) -> Option<Finding> {
    if !memory_case(cx) {
        return None;
    }
    let b = cx.budget?;
    let is_runner = |pid: u32| cx.obs.runners.iter().any(|r| r.pid == pid);
    let mut held = 0u64;
    let mut ev = Vec::new();
    let mut names = String::new();
    for g in cx.obs.gpu.gpus.iter().filter(|g| b.covers(g.index)) {
        for p in g.processes.iter().filter(|p| !is_runner(p.pid)) {
            match p.used_memory {
                Some(m) if m >= 32 * MIB => {
                    held += m;
                    if !names.is_empty() {
                        names.push_str(", ");
                    }
                    let label = if p.name.is_empty() {
                        "pid"
                    } else {
                        p.name.as_str()
                    };
                    names.push_str(&format!("{label} ({}) {} MiB", p.pid, mib(m)));
                    ev.push(Evidence::u("process_bytes", m));
                }
                None => {
                    if !names.is_empty() {
                        names.push_str(", ");
                    }
                    names.push_str(&format!("{} ({}) unknown MiB", p.name, p.pid));
                }
                _ => {}
            }
        }
    }
    let d = cx.deficit?;
    if held < 256 * MIB || d == 0 {
        return None;
    }
    let covers = held >= d;
    // From 100 % CPU, freeing enough for a few layers changes the verdict too.
    let moves_layers = cx.placement_cpu() && cx.layer_bytes().is_some_and(|l| held >= 4 * l);
    if !covers && !moves_layers {
        return None;
    }
    let mut x = Finding::new(
        Code::VramHeldByOtherProcess,
        Severity::Cause,
        if covers { 75 } else { 32 },
        format!(
            "Other programs hold {} MiB of GPU memory: {names}.",
            mib(held)
        ),
        if covers {
            "Close those programs (or move them to another GPU) and reload the model: it then fits."
                .into()
        } else {
            "Closing them moves part of the model to the GPU, not all of it; see the higher-ranked findings for the rest.".into()
        },
    );
    x.evidence.push(Evidence::u("held_bytes", held));
    x.evidence.push(Evidence::u("deficit_bytes", d));
    x.evidence.extend(ev);
    Some(x)
}

/// `SECOND_MODEL_LOADED`: another Ollama model (another blob) holds VRAM the model needs.
pub(crate) fn second_model_loaded(cx: &Ctx<'_>) -> Option<Finding> {
    if !memory_case(cx) {
        return None;
    }
    let obs = cx.obs;
    let mut other_bytes = 0u64;
    let mut other_names = String::new();
    for p in obs.ps.iter().filter(|p| p.name != cx.name) {
        let blob = show_blob(obs, &p.name);
        if blob.is_some() && blob == cx.blob {
            continue;
        }
        let r = blob.and_then(|b| placement::model_runner(obs.gpu, obs.runners, b));
        let bytes = r
            .and_then(|r| placement::runner_gpu_bytes(obs.gpu, r.pid, p.size_vram))
            .unwrap_or(p.size_vram);
        if bytes == 0 {
            continue;
        }
        other_bytes += bytes;
        if !other_names.is_empty() {
            other_names.push_str(", ");
        }
        other_names.push_str(&format!("{} ({} MiB)", p.name, mib(bytes)));
    }
    if other_bytes == 0 || cx.deficit.is_some_and(|d| d == 0) {
        return None;
    }
    let mut x = Finding::new(
        Code::SecondModelLoaded,
        Severity::Cause,
        match cx.deficit {
            Some(d) => share_score(other_bytes, d, 78),
            None => 45,
        },
        format!("Another model is loaded and holds GPU memory: {other_names}."),
        "Unload it (ollama stop <model>) or set OLLAMA_MAX_LOADED_MODELS=1, then reload this model.".into(),
    );
    x.evidence
        .push(Evidence::u("other_models_bytes", other_bytes));
    if let Some(d) = cx.deficit {
        x.evidence.push(Evidence::u("deficit_bytes", d));
    }
    Some(x)
}

/// `PARALLEL_MULTIPLIES_KV`: `OLLAMA_NUM_PARALLEL` > 1 keeps one context per slot.
pub(crate) fn parallel_multiplies_kv(cx: &Ctx<'_>) -> Option<Finding> {
    let f = &cx.f;
    if !memory_case(cx) || f.parallel <= 1 || cx.deficit.is_some_and(|d| d == 0) {
        return None;
    }
    let kv = cx.kv_now?;
    let saving = kv - kv / f.parallel;
    let mut x = Finding::new(
        Code::ParallelMultipliesKv,
        Severity::Cause,
        match cx.deficit {
            Some(d) => share_score(saving, d, 70),
            None => 40,
        },
        format!(
            "OLLAMA_NUM_PARALLEL={} keeps {} copies of the context: {:.1} GiB of KV cache instead of {:.1} GiB.",
            f.parallel,
            f.parallel,
            gib(kv),
            gib(kv / f.parallel)
        ),
        "Set OLLAMA_NUM_PARALLEL=1 for the Ollama server (one chat at a time) and restart it."
            .into(),
    );
    x.evidence.push(Evidence::u("parallel", f.parallel));
    x.evidence.push(Evidence::u("kv_cache_bytes", kv));
    x.evidence.push(Evidence::u("saving_bytes", saving));
    Some(x)
}

/// `PROJECTOR_ON_CPU`: Ollama passed `--no-mmproj-offload` (cpu-only, partial-text-offload,
/// limited-vram or startup-oom-retry loads): images are encoded on the CPU, very slowly
/// (ollama/ollama#17099: 33.8 → 4.7 tok/s). Ollama reserves the projector size + 1 GiB.
pub(crate) fn projector_on_cpu(cx: &Ctx<'_>) -> Option<Finding> {
    if !cx.loaded || cx.f.projector != Some(true) || cx.forced_off_gpu() {
        return None;
    }
    let proj = cx.f.projector_bytes;
    let need = proj.map(|p| p + GIB);
    let mut x = Finding::new(
        Code::ProjectorOnCpu,
        if cx.full_gpu { Severity::Warning } else { Severity::Cause },
        if cx.full_gpu { 58 } else { 52 },
        match need {
            Some(n) => format!(
                "The vision projector of {} runs on the CPU (--no-mmproj-offload): Ollama wanted {:.1} GiB free for it (projector {:.1} GiB + 1 GiB) and did not find it, so image prompts are slow.",
                cx.name,
                gib(n),
                gib(n - GIB)
            ),
            None => format!(
                "The vision projector of {} runs on the CPU (--no-mmproj-offload), so image prompts are slow.",
                cx.name
            ),
        },
        "Free that much VRAM or lower num_ctx so text and projector both fit, then reload the model; text-only chats are not affected.".into(),
    );
    if let Some(p) = proj {
        x.evidence.push(Evidence::u("projector_bytes", p));
    }
    if let Some(d) = cx.deficit {
        x.evidence.push(Evidence::u("deficit_bytes", d));
    }
    Some(x)
}
