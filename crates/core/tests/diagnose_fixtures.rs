//! Placement and diagnosis on recorded capture bundles: the basic placements and the real
//! incidents of the fact sheet §7. Expected advice values are worked out by hand in the
//! comments from the fixture numbers (see `fixtures/make_fixtures.py`) and the memory model of
//! `docs/diagnosis.md`, then checked against a brute-force search for the true largest fit.

use std::path::PathBuf;

use yollayah_core::capture::CaptureBundle;
use yollayah_core::diagnose::memory::{CTX_STEP, FitModel, RESERVE};
use yollayah_core::diagnose::{Code, ModelDiagnosis, diagnose};
use yollayah_core::placement::Placement;

fn bundle(name: &str) -> CaptureBundle {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    CaptureBundle::read(&p).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn one(name: &str, model: &str) -> ModelDiagnosis {
    let b = bundle(name);
    let all = diagnose(&b.observation());
    all.into_iter()
        .find(|d| d.model == model)
        .unwrap_or_else(|| panic!("{name}: no diagnosis for {model}"))
}

fn codes(d: &ModelDiagnosis) -> Vec<Code> {
    d.findings.iter().map(|f| f.code).collect()
}

fn top(d: &ModelDiagnosis) -> Code {
    d.top()
        .map(|f| f.code)
        .unwrap_or_else(|| panic!("no findings: {d:#?}"))
}

/// Rebuilds the fit model from the finding's own evidence and checks that the advice fits,
/// and that one more step would not (i.e. it is within one step of the true largest fit).
fn assert_advice_is_tight(d: &ModelDiagnosis, expected: u64) {
    let f = d.finding(Code::CtxTooLarge).expect("CTX_TOO_LARGE");
    let advice = f.suggested_num_ctx.expect("advice");
    assert_eq!(advice, expected, "{f:#?}");
    assert_eq!(advice % CTX_STEP, 0);
    let m = FitModel {
        weights: f.number("weights_bytes").expect("weights") as u64,
        kv_per_token: f.number("kv_bytes_per_token").expect("kv per token"),
        parallel: f.number("parallel").expect("parallel") as u64,
        no_fa_per_token: 0.0,
        available: f.number("available_bytes").expect("available") as u64,
    };
    // Brute force in single tokens from the advice upward.
    let mut true_max = advice;
    while m.fits(true_max + 1) {
        true_max += 1;
    }
    assert!(m.fits(advice), "advice {advice} does not fit");
    assert!(
        true_max - advice < CTX_STEP,
        "advice {advice} more than one step below {true_max}"
    );
    assert!(m.need(advice) + RESERVE > m.need(0), "sanity");
    assert!(
        f.remedy.contains(&format!("num_ctx to {advice}")),
        "{}",
        f.remedy
    );
}

#[test]
fn full_gpu_has_no_findings_and_nvml_agrees() {
    let d = one("full_gpu.json", "llama3.1:8b");
    assert!(d.loaded);
    assert_eq!(d.placement.placement, Placement::Gpu);
    assert_eq!(d.placement.ps_processor, "100% GPU");
    assert_eq!(d.placement.nvml_agrees, Some(true));
    assert!(!d.placement.contradiction);
    assert_eq!(d.placement.runner_pid, Some(4242));
    assert!(d.findings.is_empty(), "{:#?}", d.findings);
}

#[test]
fn split_model_gets_ctx_advice() {
    let d = one("split.json", "llama3.1:8b");
    assert_eq!(d.placement.placement, Placement::Partial { cpu_pct: 38 });
    assert_eq!(d.placement.ps_processor, "38%/62% CPU/GPU");
    assert_eq!(d.placement.cpu_share_pct, Some(38));
    assert_eq!(d.placement.nvml_agrees, Some(true));
    assert_eq!(top(&d), Code::CtxTooLarge);
    // avail = 8585740288 − 480 MiB (desktop + driver) − 1 GiB margin = 7008681984;
    // room = avail − 4920753328 weights − 1 GiB reserve = 1014186832; / 131072 B/token
    // = 7737 tokens → 7168.
    assert_advice_is_tight(&d, 7168);
}

#[test]
fn cpu_without_nvidia_driver_rests_on_ps() {
    let d = one("cpu_no_nvidia.json", "llama3.1:8b");
    assert_eq!(d.placement.placement, Placement::Cpu);
    assert_eq!(d.placement.ps_processor, "100% CPU");
    assert_eq!(d.placement.nvml_agrees, None);
    assert_eq!(d.placement.runner_gpu_bytes, None);
    assert_eq!(codes(&d), vec![Code::NvmlUnavailable]);
}

#[test]
fn size_vram_above_size_is_unknown() {
    let d = one("vram_exceeds_size.json", "llama3.1:8b");
    assert_eq!(d.placement.placement, Placement::Unknown);
    assert_eq!(d.placement.ps_processor, "Unknown");
    assert_eq!(d.placement.cpu_share_pct, None);
    assert!(!codes(&d).contains(&Code::CtxTooLarge));
}

#[test]
fn expired_and_requested_models_are_not_loaded() {
    let b = bundle("expired_and_not_loaded.json");
    let all = diagnose(&b.observation());
    assert_eq!(all.len(), 2);
    let stopping = &all[0];
    assert_eq!(stopping.model, "llama3.1:8b");
    assert!(!stopping.loaded);
    assert_eq!(top(stopping), Code::NotLoaded);
    assert!(stopping.top().unwrap().title.contains("being unloaded"));
    let missing = &all[1];
    assert_eq!(missing.model, "qwen2.5-coder:7b");
    assert!(!missing.loaded);
    assert_eq!(missing.placement.placement, Placement::Unknown);
    assert_eq!(missing.placement.ps_processor, "");
    // It would fit at the requested 8K context, so nothing else is reported.
    assert_eq!(codes(missing), vec![Code::NotLoaded]);
}

#[test]
fn ps_contradicted_by_nvml() {
    let d = one("ps_contradicts_nvml.json", "deepseek-r1:32b");
    assert_eq!(d.placement.ps_placement, Placement::Gpu);
    assert_eq!(d.placement.ps_processor, "100% GPU");
    assert_eq!(d.placement.nvml_agrees, Some(false));
    assert!(d.placement.contradiction);
    // The runner holds 6 GiB of a 21.66 GB model; less its CUDA runtime baseline (600 MiB)
    // that is 5.4 GiB of model → about 73 % is elsewhere.
    assert_eq!(d.placement.placement, Placement::Partial { cpu_pct: 73 });
    assert_eq!(top(&d), Code::PsContradictsNvml);
    assert_eq!(
        d.top().unwrap().number("runner_gpu_bytes"),
        Some(6.0 * (1u64 << 30) as f64)
    );
}

#[test]
fn incident_9902_derived_128k_context_runs_on_cpu() {
    let d = one("incident_9902.json", "deepseek-r1-128k:latest");
    assert_eq!(d.placement.placement, Placement::Cpu);
    assert_eq!(d.placement.ps_processor, "100% CPU");
    assert_eq!(d.placement.nvml_agrees, Some(true));
    assert_eq!(top(&d), Code::CtxTooLarge);
    let f = d.top().unwrap();
    assert_eq!(f.number("num_ctx"), Some(131072.0));
    // 64 layers × 8 KV heads × (128 + 128) × 2 bytes = 256 KiB per token → 32 GiB at 128K.
    assert_eq!(f.number("kv_cache_bytes"), Some((32u64 << 30) as f64));
    // avail = 25757220864 − 480 MiB − 1 GiB = 24180162560; room = avail − 19851336436 −
    // 1 GiB = 3255084300; / 262144 = 12417 tokens → 12288.
    assert_advice_is_tight(&d, 12288);
    // The derived model's num_ctx differs from its base: reload thrash, also reported.
    let derived = d
        .finding(Code::DerivedParamsDiffer)
        .expect("derived finding");
    assert!(
        derived.title.contains("num_ctx 131072 vs unset"),
        "{}",
        derived.title
    );
    assert!(derived.rank > 1);
    assert!(
        !codes(&d).contains(&Code::NumGpuZero),
        "Ollama's computed -ngl 0 is not a user setting"
    );
}

#[test]
fn incident_9181_64k_context_on_70b() {
    let d = one("incident_9181.json", "llama3.3:70b");
    assert_eq!(d.placement.ps_processor, "46%/54% CPU/GPU");
    assert_eq!(d.placement.nvml_agrees, Some(true));
    assert_eq!(top(&d), Code::CtxTooLarge);
    let f = d.top().unwrap();
    // 80 × 8 × 256 × 2 = 320 KiB per token → 20 GiB at 64K.
    assert_eq!(f.number("kv_cache_bytes"), Some((20u64 << 30) as f64));
    // avail = 51527024640 − 230 MiB − 1 GiB = 50212110336; room = avail − 42520413916 −
    // 1 GiB = 6617954596; / 327680 = 20196 tokens → 19456.
    assert_advice_is_tight(&d, 19456);
}

#[test]
fn incident_10462_num_gpu_zero() {
    let d = one("incident_10462.json", "qwen2.5-cpu:latest");
    assert_eq!(d.placement.placement, Placement::Cpu);
    assert_eq!(top(&d), Code::NumGpuZero);
    let f = d.top().unwrap();
    assert_eq!(f.number("num_gpu"), Some(0.0));
    assert_eq!(f.suggested_num_ctx, None);
    assert!(!codes(&d).contains(&Code::GpuBackendLost));
    assert!(!codes(&d).contains(&Code::CtxTooLarge));
}

#[test]
fn incident_4681_other_gpu_app_holds_vram() {
    let d = one("incident_4681.json", "llama3.1:8b");
    assert_eq!(d.placement.placement, Placement::Partial { cpu_pct: 69 });
    assert_eq!(top(&d), Code::VramHeldByOtherProcess);
    let f = d.top().unwrap();
    assert!(f.title.contains("python3 (3100) 9420 MiB"), "{}", f.title);
    assert!(
        !codes(&d).contains(&Code::CtxTooLarge),
        "4K context is not the problem"
    );
    assert!(d.findings.iter().all(|f| f.suggested_num_ctx.is_none()));
}

#[test]
fn incident_7370_second_model_loaded() {
    let b = bundle("incident_7370.json");
    let all = diagnose(&b.observation());
    assert_eq!(all.len(), 2);
    let d = all.iter().find(|d| d.model == "llama3.1:8b").unwrap();
    assert!(matches!(d.placement.placement, Placement::Partial { .. }));
    assert_eq!(top(d), Code::SecondModelLoaded);
    assert!(d.top().unwrap().title.contains("qwen2.5-coder:7b"));
    let other = all.iter().find(|d| d.model == "qwen2.5-coder:7b").unwrap();
    assert_eq!(other.placement.placement, Placement::Gpu);
    assert!(other.findings.is_empty());
}

#[test]
fn incident_9704_gpu_backend_lost_after_suspend() {
    let d = one("incident_9704.json", "llama3.1:8b");
    assert_eq!(d.placement.ps_processor, "100% GPU");
    assert_eq!(d.placement.runner_gpu_bytes, Some(0));
    assert_eq!(d.placement.nvml_agrees, Some(false));
    assert!(d.placement.contradiction);
    assert!(d.placement.cpu_busy_gpu_idle);
    assert_eq!(d.placement.placement, Placement::Cpu);
    assert_eq!(top(&d), Code::GpuBackendLost);
    assert!(d.top().unwrap().remedy.contains("modprobe nvidia_uvm"));
    assert!(codes(&d).contains(&Code::PsContradictsNvml));
}

#[test]
fn findings_serialise_with_stable_codes_and_numbers() {
    let d = one("incident_9902.json", "deepseek-r1-128k:latest");
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j["findings"][0]["code"], "CTX_TOO_LARGE");
    assert_eq!(j["findings"][0]["rank"], 1);
    assert_eq!(j["findings"][0]["suggested_num_ctx"], 12288);
    assert_eq!(j["placement"]["placement"]["kind"], "cpu");
    let ev = j["findings"][0]["evidence"].as_array().unwrap();
    let kv = ev.iter().find(|e| e["label"] == "kv_cache_bytes").unwrap();
    assert!(kv["value"].is_u64());
    assert!(j["findings"][0].get("score").is_none());
}

#[test]
fn app_options_only_judge_the_apps_own_model() {
    // The app sends num_gpu 0 for its model; another client's model in the same bundle must not
    // be blamed on the app's options.
    let mut b = bundle("incident_7370.json");
    let mut opts = yollayah_core::ollama::types::Options::new();
    opts.insert("num_gpu".into(), 0.into());
    b.request_options = Some(opts);
    b.requested_models = vec!["llama3.1:8b".into()];
    let all = diagnose(&b.observation());
    let ours = all.iter().find(|d| d.model == "llama3.1:8b").expect("ours");
    let other = all
        .iter()
        .find(|d| d.model == "qwen2.5-coder:7b")
        .expect("other");
    assert!(codes(ours).contains(&Code::NumGpuZero), "{:?}", codes(ours));
    assert!(
        !codes(other).contains(&Code::NumGpuZero),
        "{:?}",
        codes(other)
    );
}
