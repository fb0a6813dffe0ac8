//! The `/metrics` exposition, written by hand into a caller's buffer: Prometheus text 0.0.4 or
//! OpenMetrics 1.0.0. Names reuse those of existing Ollama exporters for the same facts
//! (`ollama_up`, `ollama_model_loaded`, `ollama_model_vram_bytes`, …); everything only
//! Yollayah knows is `yollayah_*`. The catalogue is in `docs/agent.md`.

use std::fmt::Write as _;

use crate::facts::{Counters, Facts, PlacementState, SelfFacts};
use crate::negotiate::Format;

/// The crate version, for `yollayah_build_info`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    /// A constant 1 whose labels carry the facts (`*_info`).
    Info,
}

/// Writes families and samples; knows the two formats' differences.
struct Out<'a> {
    buf: &'a mut String,
    format: Format,
}

impl Out<'_> {
    /// `name` is the sample name as Prometheus stores it (`…_total` for counters, `…_info`).
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let om = self.format == Format::OpenMetrics;
        let (family, ty) = match kind {
            Kind::Gauge => (name, "gauge"),
            Kind::Counter if om => (name.strip_suffix("_total").unwrap_or(name), "counter"),
            Kind::Counter => (name, "counter"),
            Kind::Info if om => (name.strip_suffix("_info").unwrap_or(name), "info"),
            Kind::Info => (name, "gauge"),
        };
        self.buf.push_str("# HELP ");
        self.buf.push_str(family);
        self.buf.push(' ');
        escape_help(self.buf, help, om);
        self.buf.push_str("\n# TYPE ");
        self.buf.push_str(family);
        self.buf.push(' ');
        self.buf.push_str(ty);
        self.buf.push('\n');
    }

    fn labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.buf.push_str(name);
        if !labels.is_empty() {
            self.buf.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.buf.push(',');
                }
                self.buf.push_str(k);
                self.buf.push_str("=\"");
                escape_label(self.buf, v);
                self.buf.push('"');
            }
            self.buf.push('}');
        }
        self.buf.push(' ');
    }

    fn int(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.labels(name, labels);
        let _ = writeln!(self.buf, "{v}");
    }

    fn float(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.labels(name, labels);
        if v.is_nan() {
            self.buf.push_str("NaN\n");
        } else if v.is_infinite() {
            self.buf.push_str(if v > 0.0 { "+Inf\n" } else { "-Inf\n" });
        } else {
            let _ = writeln!(self.buf, "{v}");
        }
    }

    fn bool(&mut self, name: &str, labels: &[(&str, &str)], v: bool) {
        self.int(name, labels, u64::from(v));
    }
}

fn escape_label(buf: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '"' => buf.push_str("\\\""),
            '\n' => buf.push_str("\\n"),
            c => buf.push(c),
        }
    }
}

fn escape_help(buf: &mut String, v: &str, om: bool) {
    for c in v.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '"' if om => buf.push_str("\\\""),
            c => buf.push(c),
        }
    }
}

/// Renders one scrape into `buf` (cleared first; its capacity is kept for the next scrape).
pub fn render(
    buf: &mut String,
    format: Format,
    facts: &Facts,
    counters: &Counters,
    me: &SelfFacts,
) {
    buf.clear();
    let mut o = Out { buf, format };

    o.family(
        "ollama_up",
        Kind::Gauge,
        "Whether the Ollama server answered the last tick (1) or not (0).",
    );
    o.bool("ollama_up", &[], facts.ollama_up);
    o.family(
        "ollama_version_info",
        Kind::Info,
        "The Ollama server's version.",
    );
    if let Some(v) = &facts.ollama_version {
        o.int("ollama_version_info", &[("version", v)], 1);
    }
    o.family(
        "yollayah_build_info",
        Kind::Info,
        "The version of the yollayah agent.",
    );
    o.int("yollayah_build_info", &[("version", VERSION)], 1);

    let loaded = facts.models.iter().filter(|m| m.loaded).count() as u64;
    o.family(
        "ollama_models_loaded",
        Kind::Gauge,
        "Models Ollama holds in memory (/api/ps).",
    );
    o.int("ollama_models_loaded", &[], loaded);
    o.family(
        "ollama_model_loaded",
        Kind::Gauge,
        "Whether the model is loaded (1) or not (0); the watched model is always listed.",
    );
    for m in &facts.models {
        o.bool("ollama_model_loaded", &[("model", &m.name)], m.loaded);
    }
    o.family(
        "ollama_model_size_bytes",
        Kind::Gauge,
        "Memory of the loaded model, GPU and system RAM together (/api/ps size).",
    );
    for m in &facts.models {
        if let Some(v) = m.size_bytes {
            o.int("ollama_model_size_bytes", &[("model", &m.name)], v);
        }
    }
    o.family(
        "ollama_model_vram_bytes",
        Kind::Gauge,
        "Part of the model Ollama says is in GPU memory (/api/ps size_vram).",
    );
    for m in &facts.models {
        if let Some(v) = m.vram_bytes {
            o.int("ollama_model_vram_bytes", &[("model", &m.name)], v);
        }
    }
    o.family(
        "ollama_model_context_length",
        Kind::Gauge,
        "Context window (tokens per slot) the model was loaded with.",
    );
    for m in &facts.models {
        if let Some(v) = m.context_length {
            o.int("ollama_model_context_length", &[("model", &m.name)], v);
        }
    }
    o.family(
        "ollama_model_expires_seconds",
        Kind::Gauge,
        "Seconds until Ollama unloads the idle model (absent when kept forever).",
    );
    for m in &facts.models {
        if let Some(v) = m.expires_in_seconds {
            o.float("ollama_model_expires_seconds", &[("model", &m.name)], v);
        }
    }

    o.family(
        "yollayah_model_placement",
        Kind::Gauge,
        "Where the loaded model really runs, cross-checked with NVML: one series per state, \
         the current one is 1.",
    );
    for m in facts.models.iter().filter(|m| m.loaded) {
        for s in PlacementState::ALL {
            o.bool(
                "yollayah_model_placement",
                &[("model", &m.name), ("placement", s.as_str())],
                m.placement == s,
            );
        }
    }
    o.family(
        "yollayah_model_cpu_share_ratio",
        Kind::Gauge,
        "Share of the loaded model in system RAM (0 = all on the GPU, 1 = all on the CPU).",
    );
    for m in facts.models.iter().filter(|m| m.loaded) {
        if let Some(v) = m.cpu_share {
            o.float("yollayah_model_cpu_share_ratio", &[("model", &m.name)], v);
        }
    }
    o.family(
        "yollayah_model_runner_gpu_memory_bytes",
        Kind::Gauge,
        "GPU memory NVML attributes to the model's runner process, over all GPUs.",
    );
    for m in &facts.models {
        if let Some(v) = m.runner_gpu_bytes {
            o.int(
                "yollayah_model_runner_gpu_memory_bytes",
                &[("model", &m.name)],
                v,
            );
        }
    }
    o.family(
        "yollayah_model_placement_contradiction",
        Kind::Gauge,
        "1 when NVML or CPU/GPU activity contradicts what /api/ps says.",
    );
    for m in facts.models.iter().filter(|m| m.loaded) {
        o.bool(
            "yollayah_model_placement_contradiction",
            &[("model", &m.name)],
            m.contradiction,
        );
    }
    o.family(
        "yollayah_watched_model_info",
        Kind::Info,
        "The model this agent keeps warm and alerts on.",
    );
    if !facts.watched_model.is_empty() {
        o.int(
            "yollayah_watched_model_info",
            &[("model", &facts.watched_model)],
            1,
        );
    }

    o.family(
        "yollayah_model_reloads_total",
        Kind::Counter,
        "Times the watched model had to be loaded again, by the reason the watchdog saw.",
    );
    for ((model, reason), v) in &counters.reloads {
        o.int(
            "yollayah_model_reloads_total",
            &[("model", model), ("reason", reason)],
            *v,
        );
    }
    o.family(
        "yollayah_keep_alive_overrides_total",
        Kind::Counter,
        "Times another client shortened the model's keep_alive and the agent re-sent its own.",
    );
    for (model, v) in &counters.keep_alive_overrides {
        o.int(
            "yollayah_keep_alive_overrides_total",
            &[("model", model)],
            *v,
        );
    }
    o.family(
        "yollayah_model_rewarms_total",
        Kind::Counter,
        "Automatic re-warms the agent ran, by result (ok|failed).",
    );
    for ((model, result), v) in &counters.rewarms {
        o.int(
            "yollayah_model_rewarms_total",
            &[("model", model), ("result", result)],
            *v,
        );
    }
    o.family(
        "yollayah_alerts_raised_total",
        Kind::Counter,
        "Incidents raised, by diagnosis code (none = no code).",
    );
    for (code, v) in &counters.alerts_raised {
        o.int("yollayah_alerts_raised_total", &[("code", code)], *v);
    }
    o.family(
        "yollayah_alerts_resolved_total",
        Kind::Counter,
        "Incidents resolved, by diagnosis code (none = no code).",
    );
    for (code, v) in &counters.alerts_resolved {
        o.int("yollayah_alerts_resolved_total", &[("code", code)], *v);
    }
    o.family(
        "yollayah_alerts_open",
        Kind::Gauge,
        "Incidents open right now.",
    );
    o.int("yollayah_alerts_open", &[], facts.open_incidents);

    o.family(
        "yollayah_nvml_up",
        Kind::Gauge,
        "Whether NVML answered the last tick.",
    );
    o.bool("yollayah_nvml_up", &[], facts.nvml_up);
    let mut idx = itoa_buf();
    o.family(
        "yollayah_gpu_memory_used_bytes",
        Kind::Gauge,
        "GPU memory in use, all processes.",
    );
    for g in &facts.gpus {
        let i = fmt_u32(&mut idx, g.index);
        o.int(
            "yollayah_gpu_memory_used_bytes",
            &[("gpu", i), ("uuid", &g.uuid), ("name", &g.name)],
            g.memory_used_bytes,
        );
    }
    o.family(
        "yollayah_gpu_memory_total_bytes",
        Kind::Gauge,
        "GPU memory in total.",
    );
    for g in &facts.gpus {
        let i = fmt_u32(&mut idx, g.index);
        o.int(
            "yollayah_gpu_memory_total_bytes",
            &[("gpu", i), ("uuid", &g.uuid), ("name", &g.name)],
            g.memory_total_bytes,
        );
    }
    o.family(
        "yollayah_gpu_utilization_ratio",
        Kind::Gauge,
        "Share of the last sample period a kernel ran on the GPU (0..1).",
    );
    for g in &facts.gpus {
        if let Some(u) = g.utilization {
            let i = fmt_u32(&mut idx, g.index);
            o.float(
                "yollayah_gpu_utilization_ratio",
                &[("gpu", i), ("uuid", &g.uuid), ("name", &g.name)],
                u,
            );
        }
    }
    o.family(
        "yollayah_gpu_process_memory_bytes",
        Kind::Gauge,
        "GPU memory of the largest processes that are not Ollama runners (top 5 per GPU).",
    );
    let mut pidbuf = itoa_buf();
    for g in &facts.gpus {
        for p in &g.top_processes {
            let i = fmt_u32(&mut idx, g.index).to_owned();
            let pid = fmt_u32(&mut pidbuf, p.pid);
            o.int(
                "yollayah_gpu_process_memory_bytes",
                &[("gpu", &i), ("pid", pid), ("process", &p.name)],
                p.bytes,
            );
        }
    }

    o.family(
        "yollayah_last_tick_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the watchdog tick these metrics come from.",
    );
    if facts.observed {
        o.float(
            "yollayah_last_tick_timestamp_seconds",
            &[],
            facts.observed_at_seconds,
        );
    }
    o.family(
        "yollayah_agent_scrape_duration_seconds",
        Kind::Gauge,
        "How long the agent took to render the previous /metrics answer.",
    );
    o.float(
        "yollayah_agent_scrape_duration_seconds",
        &[],
        me.last_scrape_seconds,
    );
    o.family(
        "yollayah_agent_scrapes_total",
        Kind::Counter,
        "/metrics answers served.",
    );
    o.int("yollayah_agent_scrapes_total", &[], me.scrapes);
    o.family(
        "yollayah_agent_event_subscribers",
        Kind::Gauge,
        "Clients connected to /api/v1/events.",
    );
    o.int(
        "yollayah_agent_event_subscribers",
        &[],
        me.event_subscribers,
    );
    o.family(
        "yollayah_agent_events_missed_total",
        Kind::Counter,
        "Watchdog events the counters missed because the agent fell behind.",
    );
    o.int(
        "yollayah_agent_events_missed_total",
        &[],
        counters.events_missed,
    );
    o.family(
        "yollayah_agent_start_time_seconds",
        Kind::Gauge,
        "Unix time the agent started.",
    );
    o.float(
        "yollayah_agent_start_time_seconds",
        &[],
        me.start_time_seconds,
    );
    if format == Format::OpenMetrics {
        o.buf.push_str("# EOF\n");
    }
}

/// A small stack buffer for integer labels, so label values need no allocation.
fn itoa_buf() -> String {
    String::with_capacity(10)
}

fn fmt_u32(buf: &mut String, v: u32) -> &str {
    buf.clear();
    let _ = write!(buf, "{v}");
    buf.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{GpuFacts, ModelFacts, ProcessFacts};

    pub(crate) fn sample_facts() -> (Facts, Counters) {
        let facts = Facts {
            observed: true,
            ollama_up: true,
            ollama_version: Some("0.12.3".into()),
            nvml_up: true,
            watched_model: "llama3.2:3b".into(),
            open_incidents: 1,
            models: vec![ModelFacts {
                name: "we\"ird\\name\n".into(),
                loaded: true,
                placement: PlacementState::Partial,
                cpu_share: Some(0.62),
                size_bytes: Some(100),
                vram_bytes: Some(38),
                runner_gpu_bytes: Some(40),
                context_length: Some(8192),
                expires_in_seconds: Some(299.5),
                contradiction: false,
            }],
            gpus: vec![GpuFacts {
                index: 0,
                name: "RTX".into(),
                uuid: "GPU-1".into(),
                memory_used_bytes: 10,
                memory_total_bytes: 20,
                utilization: Some(0.41),
                top_processes: vec![ProcessFacts {
                    pid: 42,
                    name: "firefox".into(),
                    bytes: 7,
                }],
            }],
            observed_at_seconds: 1.5e9,
        };
        let mut c = Counters::default();
        Counters::bump(&mut c.reloads, ("m".into(), "evicted".into()));
        (facts, c)
    }

    #[test]
    fn text_format_escapes_labels_and_names_counters_with_total() {
        let (f, c) = sample_facts();
        let mut buf = String::new();
        render(&mut buf, Format::Text, &f, &c, &SelfFacts::default());
        assert!(
            buf.contains(r#"ollama_model_loaded{model="we\"ird\\name\n"} 1"#),
            "{buf}"
        );
        assert!(buf.contains("# TYPE yollayah_model_reloads_total counter\n"));
        assert!(buf.contains(
            r#"yollayah_model_placement{model="we\"ird\\name\n",placement="partial"} 1"#
        ));
        assert!(
            buf.contains(r#"yollayah_model_placement{model="we\"ird\\name\n",placement="gpu"} 0"#)
        );
        assert!(buf.contains("# TYPE ollama_version_info gauge\n"));
        assert!(!buf.contains("# EOF"));
    }

    #[test]
    fn openmetrics_uses_family_names_and_ends_with_eof() {
        let (f, c) = sample_facts();
        let mut buf = String::new();
        render(&mut buf, Format::OpenMetrics, &f, &c, &SelfFacts::default());
        assert!(
            buf.contains("# TYPE yollayah_model_reloads counter\n"),
            "{buf}"
        );
        assert!(buf.contains(r#"yollayah_model_reloads_total{model="m",reason="evicted"} 1"#));
        assert!(buf.contains("# TYPE ollama_version info\n"));
        assert!(buf.contains(r#"ollama_version_info{version="0.12.3"} 1"#));
        assert!(buf.ends_with("# EOF\n"));
    }

    #[test]
    fn buffer_is_reused() {
        let (f, c) = sample_facts();
        let mut buf = String::new();
        render(&mut buf, Format::Text, &f, &c, &SelfFacts::default());
        let cap = buf.capacity();
        let first = buf.clone();
        render(&mut buf, Format::Text, &f, &c, &SelfFacts::default());
        assert_eq!(buf, first);
        assert_eq!(buf.capacity(), cap);
    }
}
