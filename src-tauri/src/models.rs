//! The popup's model list (`list_models`): the pulled chat models, each with where it would
//! land on this machine at the profile's context ([`yollayah_core::models::list_with_predictions`]).
//! The GPU view and Ollama's settings are the watchdog's last reading (its capture bundle), so
//! listing costs no extra NVML or process scan.

use yollayah_core::diagnose::server::refuses_driver;
use yollayah_core::fit::FitSettings;
use yollayah_core::gpu::GpuSnapshot;
use yollayah_core::models::{self, ModelEntry};
use yollayah_core::ollama::env::OllamaEnv;

use crate::core_state::Core;
use crate::error::Result;

const GIB: u64 = 1 << 30;

/// The chat models (embedding-only ones are left out), in `/api/tags` order.
pub async fn list(core: &Core) -> Result<Vec<ModelEntry>> {
    let seen = core.watchdog.capture().await?;
    let num_ctx = core.watchdog.profile().num_ctx().unwrap_or_else(|| {
        server_default_ctx(&seen.env, &seen.gpu, seen.ollama_version.as_deref())
    });
    let settings = FitSettings {
        server_version: seen.ollama_version.clone(),
        ..fit_settings(&seen.env)
    };
    let all = models::list_with_predictions(&core.ollama, &seen.gpu, num_ctx, &settings).await?;
    Ok(all.into_iter().filter(|m| m.chat).collect())
}

/// The context Ollama gives a model the profile does not size: `OLLAMA_CONTEXT_LENGTH`, else
/// its VRAM tier (≥ 47 GiB → 262144, ≥ 23 GiB → 32768, else 4096: `routes.go` `Serve`, see
/// the fact sheet). The tier counts the VRAM of every GPU this process sees, which is the
/// server's view only when both run on this machine; a server that refuses the driver
/// (`DRIVER_TOO_OLD`) discovered no GPU, so its tier is the smallest.
fn server_default_ctx(env: &OllamaEnv, gpu: &GpuSnapshot, server_version: Option<&str>) -> u64 {
    if let Some(n) = env
        .context_length
        .as_deref()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    let vram: u64 = if refuses_driver(server_version, gpu.driver_version.as_deref()).is_some() {
        0
    } else {
        gpu.gpus.iter().map(|g| g.memory_total).sum()
    };
    match vram {
        v if v >= 47 * GIB => 262_144,
        v if v >= 23 * GIB => 32_768,
        _ => 4096,
    }
}

/// The server settings that change the sums, where this process's environment says them.
fn fit_settings(env: &OllamaEnv) -> FitSettings {
    let mut s = FitSettings::default();
    if let Some(n) = env
        .num_parallel
        .as_deref()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
    {
        s.parallel = n;
    }
    if let Some(kv) = env.kv_cache_type.as_deref() {
        s.kv_cache_type = kv.trim().to_owned();
    }
    if let Some(fa) = env.flash_attention.as_deref() {
        s.flash_attention = matches!(fa.trim().to_ascii_lowercase().as_str(), "1" | "true");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use yollayah_core::gpu::GpuInfo;

    fn gpu(total_gib: u64) -> GpuSnapshot {
        let mut g = GpuSnapshot::unavailable("test");
        g.gpus.push(GpuInfo {
            memory_total: total_gib * GIB,
            ..serde_json::from_value(serde_json::json!({
                "index": 0, "name": "test", "memory_total": 0, "memory_used": 0,
                "memory_free": 0, "processes": []
            }))
            .expect("gpu info")
        });
        g
    }

    #[test]
    fn default_context_follows_the_env_then_the_vram_tier() {
        let none = OllamaEnv::default();
        assert_eq!(server_default_ctx(&none, &gpu(12), None), 4096);
        assert_eq!(server_default_ctx(&none, &gpu(24), None), 32_768);
        assert_eq!(server_default_ctx(&none, &gpu(48), None), 262_144);
        // Ollama 0.32 on driver 535 discovers no GPU (ollama/ollama#17290): the smallest tier.
        let mut old = gpu(48);
        old.driver_version = Some("535.309.01".into());
        assert_eq!(server_default_ctx(&none, &old, Some("0.32.1")), 4096);
        assert_eq!(server_default_ctx(&none, &old, Some("0.29.0")), 262_144);
        let set = OllamaEnv {
            context_length: Some("8192".into()),
            ..OllamaEnv::default()
        };
        assert_eq!(server_default_ctx(&set, &gpu(48), None), 8192);
    }

    #[test]
    fn settings_come_from_the_env_where_it_says() {
        assert_eq!(fit_settings(&OllamaEnv::default()), FitSettings::default());
        let env = OllamaEnv {
            num_parallel: Some("4".into()),
            kv_cache_type: Some("q8_0".into()),
            flash_attention: Some("false".into()),
            ..OllamaEnv::default()
        };
        let s = fit_settings(&env);
        assert_eq!(
            (s.parallel, s.kv_cache_type.as_str(), s.flash_attention),
            (4, "q8_0", false)
        );
    }
}
