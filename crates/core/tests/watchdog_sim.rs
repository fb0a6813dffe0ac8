//! The watchdog against `ollama-sim`: keep-warm (keep_alive overrides, eviction without a
//! loop, Ollama restarts) and the alert policy on staged incidents (one alert, one
//! resolution, nothing while Ollama is down, mute). The real placement and diagnosis code runs
//! on the simulator's GPU view (`Machine::simulator`).
//!
//! Conditions are awaited on the watchdog's own event stream with deadlines; "over several
//! ticks" means counting published snapshots (or forcing ticks with `kick_and_wait`), never
//! sleeping.

mod common;

use std::time::Duration;

use common::{MODEL, OTHER, Rig, bounded, fast_scenario, ours_loaded, ps_entry, settings};
use ollama_sim::{Fault, OtherProcess, Scenario};
use time::OffsetDateTime;
use yollayah_core::alerts::FixAction;
use yollayah_core::diagnose::Code;
use yollayah_core::events::{Event, OllamaState, Verdict, WarmEvent};
use yollayah_core::ollama::client::OllamaClient;
use yollayah_core::ollama::types::KeepAlive;
use yollayah_core::warm::WarmReason;

/// `ollama ps` prints "Forever" beyond this.
const FOREVER: time::Duration = time::Duration::days(20 * 365);

fn is_started(e: &Event) -> bool {
    matches!(e, Event::Warm(WarmEvent::Started { .. }))
}

/// The keep-warm event inside `e`, for comparing (`Event` itself holds snapshots).
fn warm_of(e: &Event) -> Option<&WarmEvent> {
    match e {
        Event::Warm(w) => Some(w),
        _ => None,
    }
}

fn is_raised(e: &Event) -> bool {
    matches!(e, Event::AlertRaised(_))
}

fn is_resolved(e: &Event) -> bool {
    matches!(e, Event::AlertResolved(_))
}

/// Seconds until our model expires according to `/api/ps`.
async fn expires_in(client: &OllamaClient) -> time::Duration {
    let m = ps_entry(client, MODEL).await.expect("model loaded");
    m.expires_at.expect("expires_at") - OffsetDateTime::now_utc()
}

#[tokio::test]
async fn shortened_keep_alive_is_reasserted_within_a_tick() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        assert!(expires_in(&rig.client).await > FOREVER);

        // Another client (same load options, so no reload) asks for one minute.
        rig.events.drain();
        let before = rig.events.mark();
        let other = common::client(&rig.sim);
        other
            .load(
                MODEL,
                Some(KeepAlive::Duration("1m".into())),
                Some(rig.profile.load_options()),
            )
            .await
            .expect("other client's request");
        rig.events.drain();
        let after = rig.events.mark();
        let sent = rig.sim.requests();
        assert!(
            sent.iter()
                .any(|r| r.body.get("keep_alive") == Some(&serde_json::json!("1m"))),
            "the override request reached the server"
        );

        // A tick already in flight may have read /api/ps before the override; the next one
        // must see it, so the re-assert comes before the second snapshot after the override.
        let (at, e) = rig
            .events
            .wait_for_since(before, "reassert", |e| {
                matches!(e, Event::Warm(WarmEvent::Reasserted { .. }))
            })
            .await;
        let snaps_between = rig.events.seen[after.min(at)..at]
            .iter()
            .filter(|e| matches!(e, Event::Snapshot(_)))
            .count();
        assert!(
            snaps_between <= 1,
            "reasserted only after {snaps_between} ticks:\n{}",
            rig.events.describe()
        );
        let Event::Warm(WarmEvent::Reasserted { expires_in_s, .. }) = e else {
            unreachable!()
        };
        assert!(
            (0..=60).contains(&expires_in_s),
            "reported expiry {expires_in_s}"
        );

        // The re-assert lands: /api/ps shows "Forever" again, and nothing reloaded.
        let deadline = tokio::time::Instant::now() + common::WAIT;
        while expires_in(&rig.client).await < FOREVER {
            assert!(
                tokio::time::Instant::now() < deadline,
                "keep_alive never restored"
            );
            rig.events.ticks(1).await;
        }
        // Exactly one re-assert for one override, and no reload by anyone.
        rig.events.ticks(5).await;
        assert_eq!(
            rig.events.count_since(0, |e| matches!(
                e,
                Event::Warm(WarmEvent::Reasserted { .. })
            )),
            1,
            "{}",
            rig.events.describe()
        );
        assert_eq!(rig.sim.reload_count(), 0);
        assert_eq!(rig.sim.load_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn eviction_gets_one_rewarm_then_contention_not_a_loop() {
    bounded(async {
        let scenario = Scenario {
            max_loaded_models: 1,
            ..fast_scenario()
        };
        let mut rig = Rig::start(scenario, settings()).await;
        rig.wait_warm().await;
        let other = common::client(&rig.sim);

        // First eviction: another client loads its model; we re-warm once.
        let mark = rig.events.mark();
        other.load(OTHER, None, None).await.expect("load other");
        let (_, e) = rig.events.wait_for_since(mark, "re-warm", is_started).await;
        assert_eq!(
            warm_of(&e),
            Some(&WarmEvent::Started {
                model: MODEL.into(),
                reason: WarmReason::Evicted {
                    by: vec![OTHER.into()]
                },
            })
        );
        rig.wait_warm().await;
        assert_eq!(rig.sim.loaded_models(), vec![MODEL.to_owned()]);

        // The other client comes back and evicts us again: contention, not a second re-warm.
        let mark = rig.events.mark();
        other.load(OTHER, None, None).await.expect("reload other");
        let e = rig
            .events
            .wait_for("contention", |e| {
                matches!(
                    e,
                    Event::Warm(WarmEvent::Contention { .. })
                        | Event::Warm(WarmEvent::Started { .. })
                )
            })
            .await;
        assert_eq!(
            warm_of(&e),
            Some(&WarmEvent::Contention {
                model: MODEL.into(),
                with: vec![OTHER.into()]
            })
        );
        let loads = rig.sim.load_count();
        rig.events.ticks(8).await;
        assert_eq!(
            rig.events.count_since(mark, is_started),
            0,
            "re-warmed despite contention:\n{}",
            rig.events.describe()
        );
        assert_eq!(
            rig.events.count_since(mark, |e| matches!(
                e,
                Event::Warm(WarmEvent::Contention { .. })
            )),
            1
        );
        assert_eq!(rig.sim.load_count(), loads, "no load while contended");
        assert_eq!(rig.sim.loaded_models(), vec![OTHER.to_owned()]);
        assert_eq!(rig.watchdog.latest().verdict, Verdict::NotLoaded);

        // Once the other model is gone, keeping warm resumes.
        other.unload(OTHER).await.expect("unload other");
        let e = rig.events.wait_for("resumed warm", is_started).await;
        assert!(matches!(e, Event::Warm(WarmEvent::Started { .. })), "{e:?}");
        rig.wait_warm().await;
        assert_eq!(rig.sim.reload_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn ollama_restart_is_one_down_event_then_a_rewarm() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;

        rig.sim.stop().await;
        let down = rig
            .events
            .wait_for("Ollama down", |e| matches!(e, Event::OllamaDown { .. }))
            .await;
        assert!(
            matches!(&down, Event::OllamaDown { url, .. } if url == &rig.sim.url()),
            "{down:?}"
        );
        assert_eq!(rig.watchdog.latest().verdict, Verdict::Down);
        assert!(matches!(
            rig.watchdog.latest().ollama,
            OllamaState::Down { .. }
        ));
        // Several ticks while down: forced, so they certainly happen.
        for _ in 0..6 {
            rig.watchdog.kick_and_wait(Duration::from_secs(3)).await;
        }
        rig.events.drain();
        let outage = rig.events.mark();

        rig.sim.restart().await;
        rig.events
            .wait_for("Ollama up", |e| matches!(e, Event::OllamaUp { .. }))
            .await;
        let e = rig.events.wait_for("re-warm", is_started).await;
        assert_eq!(
            warm_of(&e),
            Some(&WarmEvent::Started {
                model: MODEL.into(),
                reason: WarmReason::OllamaRestarted
            })
        );
        rig.wait_warm().await;
        assert_eq!(rig.sim.loaded_models(), vec![MODEL.to_owned()]);
        rig.events
            .wait_snapshot("back on the GPU", |s| s.verdict == Verdict::Gpu)
            .await;

        let all = &rig.events;
        assert_eq!(
            all.count_since(0, |e| matches!(e, Event::OllamaDown { .. })),
            1,
            "one outage, one down event:\n{}",
            all.describe()
        );
        assert_eq!(
            all.count_since(0, |e| matches!(e, Event::OllamaUp { .. })),
            2,
            "first contact and the restart"
        );
        assert_eq!(all.count_since(0, is_raised), 0, "{}", all.describe());
        assert_eq!(all.count_since(0, is_resolved), 0);
        // While down, at most the one "down" snapshot (published on the change, not per tick).
        let down_snaps = all.seen[..outage]
            .iter()
            .filter(|e| matches!(e, Event::Snapshot(s) if s.verdict == Verdict::Down))
            .count();
        assert_eq!(down_snaps, 1, "{}", all.describe());
        assert_eq!(rig.sim.reload_count(), 0);
    })
    .await;
}

/// A scenario where another process holds most of the 12 GiB, so the warm-up spills to CPU.
fn crowded_gpu() -> Scenario {
    Scenario {
        other_processes: vec![OtherProcess::new("python3", 4242, 10 << 30)],
        ..fast_scenario()
    }
}

#[tokio::test]
async fn partial_offload_is_one_alert_and_one_resolution() {
    bounded(async {
        let mut rig = Rig::start(crowded_gpu(), settings()).await;
        rig.wait_warm().await;
        // The alert may come while the model is still loading (ps lists it at once).
        let (_, raised) = rig.events.wait_for_since(0, "alert", is_raised).await;
        let Event::AlertRaised(alert) = raised else {
            unreachable!()
        };
        assert_eq!(alert.model, MODEL);
        assert!(alert.notify, "first incident is notified");
        assert!(
            matches!(
                alert.placement,
                yollayah_core::placement::Placement::Partial { .. }
            ),
            "{alert:?}"
        );
        assert_eq!(alert.code, Some(Code::VramHeldByOtherProcess), "{alert:?}");
        assert!(
            alert.body.contains("python3"),
            "body names the cause: {}",
            alert.body
        );
        // 10 GiB are held on a 12 GiB GPU: a reload would not help, so none is offered.
        assert!(alert.actions.is_empty(), "{alert:?}");
        let snap = rig.watchdog.latest();
        assert!(
            matches!(snap.verdict, Verdict::Partial { .. }),
            "{:?}",
            snap.verdict
        );
        assert_eq!(snap.open_incidents, 1);

        // The other process exits, but the runner stays where it was placed: still one incident.
        rig.sim.set_other_vram(Vec::new());
        rig.events.ticks(8).await;
        // Now it would fit: the snapshot offers the reload, and says so.
        let snap = rig.watchdog.latest();
        assert_eq!(
            snap.fixes,
            vec![FixAction::ReloadOnGpu],
            "{:?}",
            snap.advice
        );
        assert_eq!(
            rig.events.count_since(0, is_raised),
            1,
            "{}",
            rig.events.describe()
        );
        assert_eq!(rig.events.count_since(0, is_resolved), 0);

        // Reloading now lands fully on the GPU: one resolution with the alert's incident id.
        let outcome = rig.watchdog.reload().await.expect("reload");
        assert_eq!(outcome.model, MODEL);
        let resolved = rig.events.wait_for("resolution", is_resolved).await;
        let Event::AlertResolved(resolution) = resolved else {
            unreachable!()
        };
        assert_eq!(resolution.incident, alert.incident);
        assert_eq!(resolution.model, MODEL);
        assert!(resolution.notify);
        rig.events
            .wait_snapshot("verdict GPU", |s| {
                s.verdict == Verdict::Gpu && ours_loaded(s)
            })
            .await;
        rig.events.ticks(5).await;
        assert_eq!(
            rig.events.count_since(0, is_raised),
            1,
            "{}",
            rig.events.describe()
        );
        assert_eq!(rig.events.count_since(0, is_resolved), 1);
        assert_eq!(rig.watchdog.latest().open_incidents, 0);
    })
    .await;
}

/// The demo's swallowed CPU fallback: a partial incident is resolved, then the model falls to
/// the CPU seconds later, well inside the cooldown. The fallback is a new cause, so it is
/// notified, exactly once.
#[tokio::test]
async fn cpu_fallback_inside_the_cooldown_of_a_partial_incident_is_notified_once() {
    bounded(async {
        let mut rig = Rig::start(crowded_gpu(), settings()).await;
        rig.wait_warm().await;
        let (_, raised) = rig
            .events
            .wait_for_since(0, "partial alert", is_raised)
            .await;
        let Event::AlertRaised(partial) = raised else {
            unreachable!()
        };
        assert!(partial.notify);
        rig.sim.set_other_vram(Vec::new());
        rig.watchdog.reload().await.expect("reload");
        let Event::AlertResolved(resolved) = rig.events.wait_for("resolution", is_resolved).await
        else {
            unreachable!()
        };
        assert_eq!(resolved.incident, partial.incident);
        let mark = rig.events.mark();

        // The default cooldown is 60 s; this happens within a few ticks.
        rig.sim.fault(Fault::PsLiesGpu {
            model: MODEL.into(),
        });
        let (_, raised) = rig
            .events
            .wait_for_since(mark, "CPU alert", is_raised)
            .await;
        let Event::AlertRaised(cpu) = raised else {
            unreachable!()
        };
        assert_eq!(cpu.placement, yollayah_core::placement::Placement::Cpu);
        assert_ne!(cpu.incident, partial.incident);
        assert!(cpu.notify, "a new cause is never swallowed by the cooldown");
        rig.events.ticks(6).await;
        let notified = rig
            .events
            .count_since(mark, |e| matches!(e, Event::AlertRaised(a) if a.notify));
        assert_eq!(notified, 1, "{}", rig.events.describe());
        assert_eq!(rig.watchdog.latest().verdict, Verdict::Cpu);
    })
    .await;
}

#[tokio::test]
async fn cpu_fallback_behind_a_lying_ps_is_one_alert_and_one_resolution() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        rig.events
            .wait_snapshot("verdict GPU", |s| s.verdict == Verdict::Gpu)
            .await;

        rig.sim.fault(Fault::PsLiesGpu {
            model: MODEL.into(),
        });
        let raised = rig.events.wait_for("alert", is_raised).await;
        let Event::AlertRaised(alert) = raised else {
            unreachable!()
        };
        assert_eq!(
            alert.placement,
            yollayah_core::placement::Placement::Cpu,
            "{alert:?}"
        );
        assert!(alert.title.contains("CPU"), "{}", alert.title);
        assert!(
            alert.code.is_some(),
            "the alert carries the diagnosis: {alert:?}"
        );
        let snap = rig.watchdog.latest();
        assert_eq!(snap.verdict, Verdict::Cpu);
        let top = snap
            .target()
            .and_then(|d| d.top())
            .expect("a diagnosis finding");
        assert_eq!(alert.code, Some(top.code), "{} / {}", alert.body, top.title);
        assert!(!alert.body.is_empty());

        rig.events.ticks(10).await;
        assert_eq!(
            rig.events.count_since(0, is_raised),
            1,
            "{}",
            rig.events.describe()
        );

        rig.sim.clear_faults();
        let resolved = rig.events.wait_for("resolution", is_resolved).await;
        let Event::AlertResolved(resolution) = resolved else {
            unreachable!()
        };
        assert_eq!(resolution.incident, alert.incident);
        assert_eq!(rig.watchdog.latest().verdict, Verdict::Gpu);
        rig.events.ticks(5).await;
        assert_eq!(rig.events.count_since(0, is_raised), 1);
        assert_eq!(rig.events.count_since(0, is_resolved), 1);
    })
    .await;
}

#[tokio::test]
async fn muted_incident_is_published_without_notification() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        rig.watchdog.set_muted(true).await;
        rig.events
            .wait_snapshot("muted snapshot", |s| s.muted)
            .await;

        rig.sim.fault(Fault::PsLiesGpu {
            model: MODEL.into(),
        });
        let Event::AlertRaised(alert) = rig.events.wait_for("alert", is_raised).await else {
            unreachable!()
        };
        assert!(!alert.notify, "muted: no notification");
        assert_eq!(alert.model, MODEL);
        assert!(rig.watchdog.latest().muted);

        rig.sim.clear_faults();
        let Event::AlertResolved(resolution) = rig.events.wait_for("resolution", is_resolved).await
        else {
            unreachable!()
        };
        assert_eq!(resolution.incident, alert.incident);
        assert!(!resolution.notify, "a muted alert gets a quiet resolution");
    })
    .await;
}

#[tokio::test]
async fn reload_by_another_client_is_reported_once_not_fought() {
    bounded(async {
        // Only a pinned context can be fought over; unpinned, Yollayah adopts the loaded one.
        let mut rig =
            Rig::start_with(fast_scenario(), settings(), common::pinned_profile(8192)).await;
        rig.wait_warm().await;
        let mark = rig.events.mark();
        // Like `ollama run`: no num_ctx, so Ollama reloads with its default context.
        let other = common::client(&rig.sim);
        other.load(MODEL, None, None).await.expect("other load");
        assert_eq!(rig.sim.reload_count(), 1);
        let (_, e) = rig
            .events
            .wait_for_since(mark, "drift", |e| {
                matches!(e, Event::Warm(WarmEvent::OptionsDrifted { .. }))
            })
            .await;
        let Some(WarmEvent::OptionsDrifted {
            model,
            expected_num_ctx: 8192,
            loaded_num_ctx: 4096,
            advice,
        }) = warm_of(&e)
        else {
            panic!("{e:?}")
        };
        assert_eq!(model, MODEL);
        assert!(
            advice.contains("OLLAMA_CONTEXT_LENGTH=8192") && advice.contains("PARAMETER num_ctx"),
            "the server-side fix: {advice}"
        );
        rig.events.ticks(6).await;
        assert_eq!(
            rig.events.count_since(mark, |e| matches!(
                e,
                Event::Warm(WarmEvent::OptionsDrifted { .. })
            )),
            1
        );
        assert_eq!(rig.events.count_since(mark, is_started), 0, "not fought");
        assert_eq!(rig.sim.reload_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn failed_warm_backs_off_then_succeeds() {
    bounded(async {
        let rig = Rig::start(fast_scenario(), settings()).await;
        // Staged before the watchdog task first runs (current-thread runtime).
        rig.sim.fault(Fault::LoadFailure {
            message: "llama-server process has terminated: exit status 2".into(),
        });
        let mut rig = rig;
        let e = rig
            .events
            .wait_for("failed warm", |e| {
                matches!(e, Event::Warm(WarmEvent::Failed { .. }))
            })
            .await;
        assert!(
            matches!(&e, Event::Warm(WarmEvent::Failed { error, retry: true, .. }) if error.contains("exit status 2")),
            "{e:?}"
        );
        let failed_at = tokio::time::Instant::now();
        rig.wait_warm().await;
        assert!(
            failed_at.elapsed() >= Duration::from_millis(900),
            "the retry waited for the backoff"
        );
        let retries = rig.events.count_since(0, is_started);
        assert_eq!(retries, 2, "the first try and one retry:\n{}", rig.events.describe());
        assert_eq!(
            rig.events.count_since(0, |e| matches!(e, Event::Warm(WarmEvent::Failed { .. }))),
            1
        );
    })
    .await;
}

/// An embedding model is warmed through `/api/embed` (no input), never generate or chat, which
/// answer 400 for it.
#[tokio::test]
async fn embedding_model_is_warmed_with_embed() {
    bounded(async {
        const EMBED: &str = "nomic-embed-text:latest";
        let mut scenario = fast_scenario();
        scenario.models.push(ollama_sim::ModelSpec {
            name: EMBED.into(),
            arch: Some("nomic-bert".into()),
            family: Some("nomic-bert".into()),
            file_size: Some(274_302_450),
            block_count: Some(12),
            context_length: Some(2048),
            embedding_length: Some(768),
            head_count: Some(12),
            head_count_kv: Some(12),
            capabilities: Some(vec!["embedding".into()]),
            ..ollama_sim::ModelSpec::default()
        });
        let profile = yollayah_core::profile::ModelProfile::new(
            EMBED,
            KeepAlive::FOREVER,
            yollayah_core::config::LoadOptions::default(),
        );
        let mut rig = Rig::start_with(scenario, settings(), profile).await;
        rig.wait_warm().await;
        assert!(
            rig.sim.loaded_models().iter().any(|m| m == EMBED),
            "{:?}",
            rig.sim.loaded_models()
        );
        let requests = rig.sim.requests();
        let embeds: Vec<_> = requests.iter().filter(|r| r.path == "/api/embed").collect();
        assert_eq!(embeds.len(), 1);
        assert_eq!(embeds[0].body.get("model"), Some(&EMBED.into()));
        assert!(embeds[0].body.get("input").is_none());
        assert!(embeds[0].body.get("keep_alive").is_some());
        assert!(
            !requests
                .iter()
                .any(|r| r.path == "/api/generate" || r.path == "/api/chat"),
            "never generate or chat"
        );

        // The simulator answers generate and chat for it as Ollama does.
        let err = rig
            .client
            .load(EMBED, None, None)
            .await
            .expect_err("generate on an embedding model");
        assert!(
            err.to_string()
                .contains(&format!("\"{EMBED}\" does not support generate")),
            "{err}"
        );
    })
    .await;
}

/// Loads that take long enough for a request to arrive while one runs.
fn slow_load() -> Scenario {
    Scenario {
        load_ms: 600,
        ..fast_scenario()
    }
}

/// Ollama carries out an unload that arrives during a load once that load's request ends
/// (fact sheet §5). A warm asked for after such an unload must load again: answering it with
/// the earlier load's result said "loaded" about a model that was gone (seen in CI through the
/// agent's `POST /api/v1/warm`, which answered `placement: null`).
#[tokio::test]
async fn a_warm_after_an_unload_is_not_answered_by_the_load_before_it() {
    bounded(async {
        let mut rig = Rig::start(slow_load(), settings()).await;
        rig.events.wait_for("the start-up warm", is_started).await;
        rig.watchdog.unload().await.expect("unload");
        let outcome = rig.watchdog.warm().await.expect("warm");
        assert!(
            rig.sim.loaded_models().iter().any(|m| m == MODEL),
            "answered {outcome:?} but the simulator has {:?}",
            rig.sim.loaded_models()
        );
        // The answer comes after the tick that follows the load, so it says where it landed.
        assert_eq!(
            outcome.placement,
            Some(yollayah_core::placement::Placement::Gpu)
        );
        assert!(rig.watchdog.latest().target().is_some_and(|d| d.loaded));
    })
    .await;
}

/// Switching the watched model while the old one is still loading: the switch's warm used to be
/// skipped (one warm at a time) and the old load's end was reported under the new name.
#[tokio::test]
async fn a_switch_during_a_warm_warms_the_new_model() {
    bounded(async {
        let mut rig = Rig::start(slow_load(), settings()).await;
        rig.events.wait_for("the start-up warm", is_started).await;
        rig.watchdog.watch_model(OTHER).await.expect("watch");
        let finished = |name: &'static str| {
            move |e: &Event| {
                matches!(e, Event::Warm(WarmEvent::Finished { model, .. }) if model == name)
            }
        };
        rig.events
            .wait_for("the old load reported as itself", finished(MODEL))
            .await;
        rig.events
            .wait_for("the new model warmed", finished(OTHER))
            .await;
        assert!(rig.sim.loaded_models().iter().any(|m| m == OTHER));
    })
    .await;
}

/// The other order: Warm, then Unload while that load runs. The later request wins: the warm
/// is answered with its load, and the model ends up unloaded, not warmed again for the waiter,
/// even when the unload reached the server before the load did (the warm first asks
/// `/api/show`, so either can arrive first).
#[tokio::test]
async fn an_unload_during_a_requested_warm_wins() {
    bounded(async {
        let settings = yollayah_core::watchdog::WatchdogSettings {
            warm_on_start: false,
            ..settings()
        };
        let mut rig = Rig::start(slow_load(), settings).await;
        let watchdog = rig.watchdog.clone();
        let warm = tokio::spawn(async move { watchdog.warm().await });
        rig.events.wait_for("the requested warm", is_started).await;
        rig.watchdog.unload().await.expect("unload");
        let outcome = warm.await.expect("join").expect("warm answered");
        assert_eq!(outcome.model, MODEL);
        // Its placement may still show the model: the server unloads once that request has
        // ended, which can come after the tick that followed it.
        rig.watchdog.kick_and_wait(Duration::from_secs(3)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        rig.watchdog.kick_and_wait(Duration::from_secs(3)).await;
        assert!(
            rig.sim.loaded_models().is_empty(),
            "warmed again: {} loads, events {}",
            rig.sim.load_count(),
            rig.events.describe()
        );
        assert_eq!(rig.sim.load_count(), 1);
    })
    .await;
}

/// ollama/ollama#17290 through the watchdog: the headline, the verdict and the alert agree (CPU,
/// the driver named as the cause) and nothing offers a reload that would land on the CPU again.
#[tokio::test]
async fn a_driver_the_server_refuses_raises_one_cpu_alert_naming_the_driver() {
    bounded(async {
        let scenario = Scenario {
            version: "0.32.1".into(),
            driver_version: Some("535.309.01".into()),
            ..fast_scenario()
        };
        let mut rig = Rig::start(scenario, settings()).await;
        rig.wait_warm().await;
        // Raised as soon as the load shows, which may be before the warm's own event.
        let (_, raised) = rig
            .events
            .wait_for_since(0, "the CPU alert", is_raised)
            .await;
        let Event::AlertRaised(alert) = raised else {
            unreachable!()
        };
        assert_eq!(alert.code, Some(Code::DriverTooOld), "{alert:?}");
        assert_eq!(alert.placement, yollayah_core::placement::Placement::Cpu);
        assert!(alert.body.contains("driver"), "{}", alert.body);
        assert!(alert.actions.is_empty(), "{:?}", alert.actions);
        let snap = rig.watchdog.latest();
        assert_eq!(snap.verdict, Verdict::Cpu, "{}", snap.headline);
        let d = snap.target().expect("diagnosis");
        assert_eq!(d.top().map(|f| f.code), Some(Code::DriverTooOld));
    })
    .await;
}
