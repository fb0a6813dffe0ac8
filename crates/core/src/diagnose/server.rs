//! Which Ollama the diagnosis is talking to. Placement and memory estimates changed twice
//! (fact sheet §0): up to 0.11 the runner got many CLI flags and Ollama's own estimator chose
//! the layers; 0.12–0.24 kept Ollama's estimator with options sent over HTTP; from 0.30 every
//! GGUF model runs in llama-server and llama.cpp's fit chooses the layers.

use crate::gpu::Runner;

/// `major.minor.patch` of `/api/version` (pre-release suffixes ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses `0.6.2`, `v0.33.0-rc2`; `None` for dev builds (`0.0.0`) and garbage.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().trim_start_matches('v');
        let core = s.split(['-', '+', ' ']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u32>().ok());
        let v = Version(
            it.next()??,
            it.next().flatten().unwrap_or(0),
            it.next().flatten().unwrap_or(0),
        );
        (v != Version(0, 0, 0)).then_some(v)
    }
}

/// The oldest NVIDIA driver branch `version` of Ollama accepts, where known. From 0.30 on,
/// Ollama checks the driver at discovery and drops GPUs below it ("NVIDIA driver too old …
/// required_driver=\"570 or newer\"", ollama/ollama#16415 on a compute 6.1 card; #17290 the
/// same with driver 535 on two P40s). 570 is the figure of that log line; whether newer
/// boards need more (CUDA 13 wants 580) is **a guess** left out: only 570 is asserted.
pub fn min_driver(version: Version) -> Option<u32> {
    (version >= Version(0, 30, 0)).then_some(570)
}

/// The driver branch Ollama `version` would need, when `driver` (NVML's `535.183.01`) is
/// older than that: Ollama then sees no GPU at all.
pub fn driver_too_old(driver: &str, version: Version) -> Option<u32> {
    let major: u32 = driver.split('.').next()?.trim().parse().ok()?;
    min_driver(version).filter(|required| major < *required)
}

/// [`driver_too_old`] from the raw texts (`/api/version`, NVML's driver version), for callers
/// that hold them as read: the driver branch the server wants, when it refuses this one.
pub fn refuses_driver(server_version: Option<&str>, driver: Option<&str>) -> Option<u32> {
    driver_too_old(driver?, Version::parse(server_version?)?)
}

/// The three designs of Ollama's runner and estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// ≤ 0.11: `ollama runner --ctx-size … --n-gpu-layers …`; Ollama's estimator (flash
    /// attention off unless enabled, the attention graph counted on every GPU, projector
    /// weights and graph reserved on the first GPU, a 457 MiB minimum per GPU).
    Old,
    /// 0.12–0.24: `ollama runner --model …`, options over HTTP; still Ollama's layout.
    Mid,
    /// ≥ 0.30: `llama-server`; llama.cpp's fit places the layers, keeping a margin per GPU.
    Head,
}

impl Era {
    /// From the server version, else from the runner's argv, else the current design.
    pub fn detect(version: Option<Version>, runner: Option<&Runner>) -> Era {
        if let Some(v) = version {
            return if v < Version(0, 12, 0) {
                Era::Old
            } else if v < Version(0, 30, 0) {
                Era::Mid
            } else {
                Era::Head
            };
        }
        match runner {
            Some(r) if is_llama_server(r) => Era::Head,
            Some(r)
                if r.cmdline
                    .iter()
                    .any(|a| a == "--ctx-size" || a == "--n-gpu-layers") =>
            {
                Era::Old
            }
            Some(_) => Era::Mid,
            None => Era::Head,
        }
    }

    /// Whether Ollama itself decides the layers (and applies its minimum-VRAM rule).
    pub fn ollama_layout(self) -> bool {
        self != Era::Head
    }
}

/// A `llama-server` runner (Ollama ≥ 0.30), which gets `-ngl` only when a client set num_gpu.
pub fn is_llama_server(r: &Runner) -> bool {
    r.is_llama_server()
}

/// Flash attention as the server would use it when nothing in the runner's argv says.
/// `env` is `OLLAMA_FLASH_ATTENTION`. Per-model defaults before 0.30 (fact sheet §12): gpt-oss
/// from 0.11.8, qwen3 from 0.12.4, gemma3 from 0.12.6, and `auto` for everything from 0.13.4.
pub fn flash_attention_default(
    era: Era,
    version: Option<Version>,
    env: Option<&str>,
    arch: &str,
) -> bool {
    match env.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("1" | "true" | "on" | "yes") => return true,
        Some("0" | "false" | "off" | "no") => return false,
        _ => {}
    }
    let at_least = |v: Version| version.is_some_and(|x| x >= v);
    let gptoss = arch == "gptoss" || arch == "gpt-oss";
    match era {
        Era::Head => true,
        Era::Mid => {
            at_least(Version(0, 13, 4))
                || gptoss
                || (arch == "qwen3" && at_least(Version(0, 12, 4)))
                || (arch == "gemma3" && at_least(Version(0, 12, 6)))
        }
        Era::Old => gptoss && at_least(Version(0, 11, 8)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_eras() {
        assert_eq!(Version::parse("0.6.2"), Some(Version(0, 6, 2)));
        assert_eq!(Version::parse("v0.33.0-rc2"), Some(Version(0, 33, 0)));
        assert_eq!(Version::parse("0.0.0"), None);
        assert_eq!(Version::parse("nonsense"), None);
        assert_eq!(Era::detect(Version::parse("0.11.11"), None), Era::Old);
        assert_eq!(Era::detect(Version::parse("0.24.0"), None), Era::Mid);
        assert_eq!(Era::detect(Version::parse("0.30.0"), None), Era::Head);
        assert!(!flash_attention_default(
            Era::Old,
            Version::parse("0.6.2"),
            None,
            "qwen2"
        ));
        assert!(flash_attention_default(
            Era::Old,
            Version::parse("0.6.2"),
            Some("1"),
            "qwen2"
        ));
        assert!(flash_attention_default(
            Era::Mid,
            Version::parse("0.12.6"),
            None,
            "gemma3"
        ));
        assert!(!flash_attention_default(
            Era::Mid,
            Version::parse("0.12.5"),
            None,
            "gemma3"
        ));
        assert!(!flash_attention_default(
            Era::Head,
            None,
            Some("false"),
            "llama"
        ));
    }
}
