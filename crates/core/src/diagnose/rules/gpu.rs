//! Switches that keep a model off the GPU whatever the memory: num_gpu, hidden GPUs, a GPU
//! the installed Ollama cannot drive.

use super::super::ctx::Ctx;
use super::super::finding::{Code, Evidence, Finding, Severity};
use super::{gib, mib};

/// `NUM_GPU_ZERO`: the app's options or the Modelfile set num_gpu 0.
pub(crate) fn num_gpu_zero(cx: &Ctx<'_>) -> Option<Finding> {
    let (n, src) = cx.f.num_gpu.filter(|(n, _)| *n == 0)?;
    if !cx.not_on_gpu {
        return None;
    }
    let mut x = Finding::new(
        Code::NumGpuZero,
        Severity::Cause,
        if cx.placement_cpu() || cx.ps_cpu_only || !cx.loaded { 95 } else { 40 },
        format!("num_gpu is 0 ({src}), which tells Ollama to run {} on the CPU only.", cx.name),
        "Remove PARAMETER num_gpu 0 from the Modelfile and re-create the model (or send \"num_gpu\": -1 after unloading it).".into(),
    );
    x.evidence.push(Evidence::i("num_gpu", n));
    x.evidence.push(Evidence::t("num_gpu_source", src));
    Some(x)
}

/// `CLIENT_NUM_GPU_ZERO`: another client asked for num_gpu 0. Seen in llama-server's argv
/// (`-ngl 0`, passed only when asked), or inferred: the model is on the CPU though it fits,
/// while another runner of the same server uses the GPU (so the backend works).
pub(crate) fn client_num_gpu_zero(cx: &Ctx<'_>) -> Option<Finding> {
    if !cx.loaded || !cx.not_on_gpu {
        return None;
    }
    let how = cx.client_num_gpu_zero()?;
    let certain = cx.f.runner_ngl == Some(0);
    let mut x = Finding::new(
        Code::ClientNumGpuZero,
        Severity::Cause,
        if certain { 96 } else { 82 },
        format!(
            "A client asked Ollama for \"num_gpu\": 0, so {} was loaded on the CPU only ({how}). The GPU works; this is not a driver problem.",
            cx.name
        ),
        "Find the client that sends num_gpu 0 (a chat UI's \"GPU layers\" setting, a script, /set parameter num_gpu 0 in ollama run) and remove it, then unload the model so the next request loads it on the GPU.".into(),
    );
    x.commands = vec![format!("ollama stop {}", cx.name)];
    if let Some(n) = cx.f.runner_ngl {
        x.evidence.push(Evidence::i("runner_ngl", n));
    }
    if let Some((pid, b)) = cx.sibling_on_gpu {
        x.evidence
            .push(Evidence::u("sibling_runner_pid", u64::from(pid)));
        x.evidence.push(Evidence::u("sibling_runner_gpu_bytes", b));
    }
    if let Some(m) = cx.fit {
        x.evidence
            .push(Evidence::u("needed_bytes", m.need(cx.f.ctx)));
        x.evidence.push(Evidence::u("available_bytes", m.available));
    }
    Some(x)
}

/// `NUM_GPU_SET`: num_gpu N caps the offloaded layers below the model's count.
pub(crate) fn num_gpu_set(cx: &Ctx<'_>) -> Option<Finding> {
    if !cx.not_on_gpu {
        return None;
    }
    let layers = cx.f.shape.map_or(0, |s| s.block_count);
    let (n, src) = cx.f.num_gpu.filter(|(n, _)| *n > 0).or_else(|| {
        cx.f.runner_ngl
            .filter(|n| *n > 0)
            .map(|n| (n, "a client's request (runner -ngl)"))
    })?;
    if layers == 0 || n as u64 > layers {
        return None;
    }
    let mut x = Finding::new(
        Code::NumGpuSet,
        Severity::Cause,
        88,
        format!("num_gpu is {n} ({src}): only {n} of {} layers may go to the GPU.", layers + 1),
        "Remove the num_gpu setting (automatic placement is -1) so the server can fit as many layers as VRAM allows.".into(),
    );
    x.evidence.push(Evidence::i("num_gpu", n));
    x.evidence
        .push(Evidence::u("offloadable_layers", layers + 1));
    x.evidence.push(Evidence::t("num_gpu_source", src));
    Some(x)
}

/// `GPU_ARCH_UNSUPPORTED`: the GPU's architecture is not compiled into the installed Ollama,
/// which skips it and runs on the CPU (ollama/ollama#17841, #1756). The capability comes from
/// the board name, so this is only as good as that table.
pub(crate) fn gpu_arch_unsupported(cx: &Ctx<'_>) -> Option<Finding> {
    let a = cx.arch_issue.as_ref()?;
    let mut x = Finding::new(
        Code::GpuArchUnsupported,
        Severity::Cause,
        96,
        format!(
            "GPU {} ({}, compute capability {}.{}) is skipped by this Ollama build: {}. The model runs on the CPU.",
            a.index, a.gpu, a.cc.0, a.cc.1, a.why
        ),
        "Install an Ollama version whose CUDA build includes this GPU (the release before, or the next one), or build Ollama with CMAKE_CUDA_ARCHITECTURES including it. Reloading drivers will not help.".into(),
    );
    x.commands = vec!["journalctl -u ollama --no-pager | grep -i 'compute capability'".to_owned()];
    x.evidence
        .push(Evidence::u("gpu_index", u64::from(a.index)));
    x.evidence.push(Evidence::t(
        "compute_capability",
        format!("{}.{}", a.cc.0, a.cc.1),
    ));
    if let Some(v) = cx.obs.server_version {
        x.evidence.push(Evidence::t("ollama_version", v));
    }
    Some(x)
}

/// `DRIVER_TOO_OLD`: Ollama ≥ 0.30 drops GPUs whose driver is older than its CUDA build needs
/// (ollama/ollama#16415, #17290): everything runs on the CPU, and `nvidia-smi` looks healthy.
/// Reloading modules or rebooting does not help; a newer driver does.
pub(crate) fn driver_too_old(cx: &Ctx<'_>) -> Option<Finding> {
    let d = cx.driver_issue.as_ref()?;
    let version = cx.obs.server_version.unwrap_or("this version");
    let mut x = Finding::new(
        Code::DriverTooOld,
        Severity::Cause,
        97,
        format!(
            "NVIDIA driver {} is older than Ollama {version} accepts ({} or newer): Ollama skips the GPU and runs {} on the CPU.",
            d.driver, d.required, cx.name
        ),
        format!(
            "Install NVIDIA driver {} or newer (e.g. the distribution's nvidia-driver-{} package), reboot, and restart Ollama; or keep this driver with an Ollama older than 0.30.",
            d.required, d.required
        ),
    );
    x.commands = vec![
        "nvidia-smi --query-gpu=driver_version --format=csv,noheader".to_owned(),
        "journalctl -u ollama --no-pager | grep -i 'driver too old'".to_owned(),
    ];
    x.evidence
        .push(Evidence::t("driver_version", d.driver.clone()));
    x.evidence
        .push(Evidence::u("required_driver", u64::from(d.required)));
    if let Some(v) = cx.obs.server_version {
        x.evidence.push(Evidence::t("ollama_version", v));
    }
    Some(x)
}

/// `GPUS_HIDDEN`: `CUDA_VISIBLE_DEVICES` hides GPUs that would hold the model.
pub(crate) fn gpus_hidden(cx: &Ctx<'_>) -> Option<Finding> {
    if !cx.not_on_gpu || !cx.obs.gpu.is_ok() || cx.num_gpu_zero_explains() {
        return None;
    }
    let value = cx.obs.env.cuda_visible_devices.as_deref()?;
    let hidden: Vec<_> = cx
        .obs
        .gpu
        .gpus
        .iter()
        .filter(|g| !cx.visibility.shows(g))
        .collect();
    if hidden.is_empty() {
        return None;
    }
    let all = hidden.len() == cx.obs.gpu.gpus.len();
    let hidden_free: u64 = hidden.iter().map(|g| g.memory_free).sum();
    let covers = cx.deficit.is_some_and(|d| hidden_free >= d);
    if !all && !covers {
        return None;
    }
    let list = hidden
        .iter()
        .map(|g| {
            format!(
                "GPU{} {} ({} MiB free)",
                g.index,
                g.name,
                mib(g.memory_free)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut x = Finding::new(
        Code::GpusHidden,
        Severity::Cause,
        if all { 93 } else { 66 },
        if all {
            format!("CUDA_VISIBLE_DEVICES=\"{value}\" hides every GPU from Ollama: {list}.")
        } else {
            format!(
                "CUDA_VISIBLE_DEVICES=\"{value}\" hides {list}; with {:.1} GiB more the model would fit.",
                gib(hidden_free)
            )
        },
        "Remove CUDA_VISIBLE_DEVICES from Ollama's environment (or list the GPUs it should use) and restart Ollama.".into(),
    );
    x.commands = vec![
        "systemctl show ollama -p Environment".to_owned(),
        "sudo systemctl edit ollama   # remove or fix Environment=\"CUDA_VISIBLE_DEVICES=…\""
            .to_owned(),
        "sudo systemctl restart ollama".to_owned(),
    ];
    x.evidence.push(Evidence::t("cuda_visible_devices", value));
    x.evidence
        .push(Evidence::u("hidden_free_bytes", hidden_free));
    if let Some(d) = cx.deficit {
        x.evidence.push(Evidence::u("deficit_bytes", d));
    }
    Some(x)
}
