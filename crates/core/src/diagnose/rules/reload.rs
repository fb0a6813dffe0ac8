//! Reloads: a model that keeps being loaded again is slow even when it sits fully on the GPU.
//! Ollama reloads whenever a load-time option differs (`sched.go` `needsReload`, fact sheet
//! §5), and unloads when keep_alive runs out.

use super::super::ctx::{Ctx, option_i64, param_i64, param_raw, show_for};
use super::super::finding::{Code, Evidence, Finding, Severity};
use super::super::history::LoadEventKind;
use super::server_ctx_commands;
use crate::gpu::blob_path_from_modelfile;
use crate::ollama::types::{LOAD_TIME_OPTIONS, ShowResponse};

/// `DERIVED_PARAMS_DIFFER`: a model made with `FROM base` shares the base's weights blob and
/// runner, but its load-time PARAMETERs (num_ctx, num_batch, …) differ from the base's or from
/// what is loaded for that blob, so switching names reloads every time — the bug this project
/// was born from. Reported even when everything is on the GPU.
pub(crate) fn derived_params_differ(cx: &Ctx<'_>) -> Option<Finding> {
    let obs = cx.obs;
    let me = cx.show?;
    let parent = me.details.parent_model.as_str();
    let siblings = || {
        obs.show.iter().filter(|(n, s)| {
            n.as_str() != cx.name
                && cx.blob.is_some()
                && blob_path_from_modelfile(&s.modelfile) == cx.blob
        })
    };
    // (derived name, its show, base name, base show if captured)
    type Pair<'b> = (&'b str, &'b ShowResponse, &'b str, Option<&'b ShowResponse>);
    let pair: Pair<'_> = if !parent.is_empty() {
        let base = show_for(obs, parent).map(|b| (parent, b)).or_else(|| {
            siblings()
                .find(|(_, s)| s.details.parent_model.is_empty())
                .map(|(n, s)| (n.as_str(), s))
        });
        match base {
            Some((n, b)) => (cx.name, me, n, Some(b)),
            None => (cx.name, me, parent, None),
        }
    } else if let Some((n, s)) = siblings()
        .find(|(_, s)| !s.details.parent_model.is_empty())
        .or_else(|| siblings().next())
    {
        (n.as_str(), s, cx.name, Some(me))
    } else {
        return None;
    };
    let (dname, dshow, bname, bshow) = pair;
    let mut diffs = String::new();
    let mut ev = Vec::new();
    for k in LOAD_TIME_OPTIONS {
        let mine = param_raw(&dshow.parameters, k);
        let theirs = bshow.and_then(|b| param_raw(&b.parameters, k));
        let differs = match bshow {
            Some(_) => mine != theirs,
            // Base not captured: only a load-time PARAMETER of the derived model is known.
            None => mine.is_some(),
        };
        if differs {
            if !diffs.is_empty() {
                diffs.push_str(", ");
            }
            diffs.push_str(&format!(
                "{k} {} vs {}",
                mine.unwrap_or("unset"),
                if bshow.is_some() {
                    theirs.unwrap_or("unset")
                } else {
                    "unknown"
                }
            ));
            if let Some(v) = param_i64(&dshow.parameters, k) {
                ev.push(Evidence::i(k, v));
            }
        }
    }
    // What is loaded for the blob right now, against the derived model's num_ctx.
    let loaded_ctx = cx.ps.and_then(|p| p.context_length);
    let train = cx.f.shape.map_or(0, |s| s.train_ctx);
    let derived_ctx = param_i64(&dshow.parameters, "num_ctx")
        .filter(|c| *c > 0)
        .map(|c| {
            if train > 0 {
                (c as u64).min(train)
            } else {
                c as u64
            }
        });
    let loaded_differs = matches!((loaded_ctx, derived_ctx), (Some(l), Some(d)) if l != d);
    if diffs.is_empty() && !loaded_differs {
        return None;
    }
    if loaded_differs {
        if !diffs.is_empty() {
            diffs.push_str("; ");
        }
        diffs.push_str(&format!(
            "the blob is loaded with num_ctx {}",
            loaded_ctx.unwrap_or(0)
        ));
        ev.push(Evidence::u("loaded_num_ctx", loaded_ctx.unwrap_or(0)));
    }
    // Seen happening: /api/ps showed both names for this blob, with reloads in between.
    let seen = cx.history.map_or(0, |h| {
        let names = h.names();
        if names.contains(&dname) && names.contains(&bname) {
            h.count(|k| *k == LoadEventKind::Reloaded)
        } else {
            0
        }
    });
    let (severity, score) = if seen > 0 {
        (Severity::Cause, 88)
    } else if cx.not_on_gpu {
        (Severity::Cause, if bshow.is_some() { 45 } else { 40 })
    } else {
        (Severity::Warning, 60)
    };
    let mut x = Finding::new(
        Code::DerivedParamsDiffer,
        severity,
        score,
        format!(
            "{dname} is derived from {bname} but loads with different settings ({diffs}); switching between them reloads the model every time{}.",
            if seen > 0 {
                format!(" (seen {seen} reloads)")
            } else {
                String::new()
            }
        ),
        format!(
            "Keep the load-time PARAMETERs (num_ctx, num_batch, num_gpu…) of {dname} equal to {bname}'s, or use one name only; a derived model for a personality needs only SYSTEM, never num_ctx."
        ),
    );
    x.commands = vec![
        format!("ollama show --parameters {bname}"),
        format!("ollama show --modelfile {dname}"),
    ];
    x.evidence.push(Evidence::t("base_model", bname));
    x.evidence.push(Evidence::t("derived_model", dname));
    if seen > 0 {
        x.evidence.push(Evidence::u("reloads_seen", seen as u64));
    }
    x.evidence.extend(ev);
    Some(x)
}

/// `CLIENTS_OPTIONS_DIFFER`: `/api/ps` history shows the same model reloaded again and again
/// with a different `context_length`: two clients ask for different load-time options
/// (ollama/ollama#8903, #6148, #12783, #18129).
pub(crate) fn clients_options_differ(cx: &Ctx<'_>) -> Option<Finding> {
    let h = cx.history?;
    let reloads = h.count(|k| *k == LoadEventKind::Reloaded);
    let ctxs = h.contexts();
    // Reloads that switch names between models sharing a blob are DERIVED_PARAMS_DIFFER's.
    if reloads < 2 || ctxs.len() < 2 || h.names().len() > 1 {
        return None;
    }
    let list = ctxs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" and ");
    let ours = option_i64(cx.f.request_options, "num_ctx").filter(|c| *c > 0);
    let minutes = (h.span_s() as f64 / 60.0).ceil().max(1.0) as u64;
    let target = ours
        .map(|c| c as u64)
        .or_else(|| ctxs.iter().copied().max())
        .unwrap_or(4096);
    let mut x = Finding::new(
        Code::ClientsOptionsDiffer,
        Severity::Cause,
        80,
        format!(
            "{} was reloaded {reloads} times in {minutes} min with num_ctx switching between {list}: clients ask for different load-time options, and each switch reloads the model{}.",
            cx.name,
            match ours {
                Some(c) => format!(" (Yollayah sends num_ctx {c})"),
                None => String::new(),
            }
        ),
        format!(
            "Make every client ask for the same options. Set the server default to num_ctx {target} (OLLAMA_CONTEXT_LENGTH), so clients that send none — including OpenAI-compatible /v1 clients, which cannot send num_ctx — get the same value."
        ),
    );
    x.commands = server_ctx_commands(cx.name, target);
    x.commands.truncate(3);
    x.evidence.push(Evidence::u("reloads", reloads as u64));
    x.evidence.push(Evidence::t("num_ctx_values", list));
    x.evidence.push(Evidence::u(
        "own_loads",
        h.count(|k| matches!(k, LoadEventKind::OwnLoad { .. })) as u64,
    ));
    x.evidence.push(Evidence::i("span_s", h.span_s()));
    Some(x)
}

/// `KEEP_ALIVE_SHORT`: the model keeps expiring between requests and being loaded again.
pub(crate) fn keep_alive_short(cx: &Ctx<'_>) -> Option<Finding> {
    let h = cx.history?;
    let gaps = h.reloads_after_expiry();
    let quick = gaps.iter().filter(|g| **g <= 600).count();
    if gaps.len() < 2 && quick < 1 {
        return None;
    }
    let min_gap = gaps.iter().copied().min().unwrap_or(0);
    let mut x = Finding::new(
        Code::KeepAliveShort,
        Severity::Cause,
        70,
        format!(
            "{} was unloaded {} time{} when its keep_alive ran out and loaded again as soon as {min_gap} s later: keep_alive is shorter than the pauses between requests.",
            cx.name,
            gaps.len(),
            if gaps.len() == 1 { "" } else { "s" }
        ),
        "Keep the model loaded longer: set OLLAMA_KEEP_ALIVE on the server (e.g. 24h, or -1 for ever), and check that no client sends a short keep_alive (the last request's value wins).".into(),
    );
    x.commands = vec![
        "sudo mkdir -p /etc/systemd/system/ollama.service.d".to_owned(),
        "printf '[Service]\\nEnvironment=\"OLLAMA_KEEP_ALIVE=24h\"\\n' | sudo tee /etc/systemd/system/ollama.service.d/keepalive.conf".to_owned(),
        "sudo systemctl daemon-reload && sudo systemctl restart ollama".to_owned(),
    ];
    x.evidence
        .push(Evidence::u("reloads_after_expiry", gaps.len() as u64));
    x.evidence.push(Evidence::i("shortest_gap_s", min_gap));
    if let Some(k) = cx.obs.env.keep_alive.as_deref() {
        x.evidence.push(Evidence::t("ollama_keep_alive", k));
    }
    Some(x)
}
