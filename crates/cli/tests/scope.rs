//! Observation scope, end to end: the simulator inside a network namespace (an address that is
//! not this machine's) is a remote server and is never cross-checked against this machine's
//! GPU; the same simulator on 127.0.0.1, on `localhost` and on one of this machine's own
//! interface addresses is local and is cross-checked. The GPU facts are a recorded idle GPU
//! (`--gpu-source FILE`), so a cross-check finds nothing of the model there.
//!
//! The namespace tests need root and `ip`; without them they print why and skip.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use yollayah_testkit::netns::NetNs;

const MODEL: &str = "llama3.2:3b";
const SIM_ENTRY: &str = "netns_sim_entry";

/// Not a test: the entry point of the simulator that [`NsSim`] starts inside a namespace by
/// re-running this binary there.
#[test]
#[ignore = "entry point of the simulator inside a network namespace"]
fn netns_sim_entry() {
    serve_sim_in_netns();
}

/// An idle 80 GiB GPU on this machine: nothing of any model is on it.
fn idle_gpu_file(home: &Home) -> String {
    let path = home.dir.path().join("idle-gpu.json");
    std::fs::write(
        &path,
        r#"{"nvml":{"status":"ok"},"driver_version":"580.65.06","gpus":[{"index":0,
        "name":"NVIDIA H100 80GB HBM3","memory_total":85899345920,"memory_used":4194304,
        "memory_free":85895151616,"utilization_gpu":0,"utilization_memory":0,"processes":[]}]}"#,
    )
    .unwrap();
    path.display().to_string()
}

async fn doctor(home: &Home, url: &str, gpu_file: &str) -> Run {
    home.run(&[
        "--url",
        url,
        "--model",
        MODEL,
        "doctor",
        "--load",
        "--gpu-source",
        gpu_file,
        "--json",
    ])
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_in_another_network_namespace_is_remote_and_never_cross_checked() {
    let ns = match NetNs::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let sim = NsSim::start(&ns, SIM_ENTRY);
    bounded(async {
        let home = Home::new();
        let gpu = idle_gpu_file(&home);
        let r = doctor(&home, &sim.url, &gpu).await;
        assert_eq!(r.code, 7, "{r:?}");
        let j = r.json();
        assert_eq!(j["scope"]["kind"], "remote", "{j:#}");
        assert_eq!(j["verdict"], "unverified");
        assert_eq!(j["exit_code"], 7);
        let d = diagnosis(&j, MODEL);
        assert_eq!(d["placement"]["ps_processor"], "100% GPU");
        assert_eq!(d["placement"]["placement"]["kind"], "unverified");
        assert_eq!(d["placement"]["placement"]["reason"], "remote");
        assert_eq!(d["placement"]["contradiction"], false);
        assert_eq!(d["placement"]["nvml_agrees"], Value::Null);
        let c = codes(d);
        assert!(!c.contains(&"PS_CONTRADICTS_NVML".to_owned()), "{c:?}");
        assert!(!c.contains(&"NVML_UNAVAILABLE".to_owned()), "{c:?}");
        assert_eq!(c[0], "PLACEMENT_UNVERIFIED", "{d:#}");
        assert!(
            d["findings"][0]["remedy"]
                .as_str()
                .unwrap()
                .contains("yollayah agent"),
            "{d:#}"
        );
        // This machine's GPU was not even read.
        assert_eq!(j["gpu"]["nvml"]["status"], "unavailable");
        assert!(j["runners"].as_array().unwrap().is_empty());

        // The text says it too, with the way to the truth.
        let r = home
            .run(&[
                "--url",
                &sim.url,
                "--model",
                MODEL,
                "doctor",
                "--gpu-source",
                &gpu,
            ])
            .await;
        assert_eq!(r.code, 7, "{r:?}");
        assert!(r.stdout.contains("remote scope"), "{}", r.stdout);
        assert!(r.stdout.contains("UNVERIFIED"), "{}", r.stdout);
        assert!(!r.stdout.contains("fully on the GPU"), "{}", r.stdout);

        // `watch` publishes the scope with every snapshot and raises nothing.
        home.write_config("[watchdog]\ntick_ms = 250\n");
        let mut child = home
            .command(&[
                "--url",
                &sim.url,
                "--model",
                MODEL,
                "watch",
                "--json",
                "--no-warm",
                "--gpu-source",
                &gpu,
            ])
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        // Snapshots are published on change only: wait for the first one of the loaded
        // model, then watch a few more ticks for any alert.
        let mut seen_snapshot = false;
        loop {
            let wait = if seen_snapshot { 2 } else { 30 };
            let line =
                match tokio::time::timeout(Duration::from_secs(wait), lines.next_line()).await {
                    Ok(line) => line.unwrap(),
                    Err(_) if seen_snapshot => break,
                    Err(_) => panic!("watch went quiet"),
                };
            let Some(line) = line else {
                let out = child.wait_with_output().await.unwrap();
                panic!(
                    "watch ended early: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            let e: Value = serde_json::from_str(&line).unwrap();
            assert_ne!(e["type"], "alert_raised", "{e:#}");
            if e["type"] == "snapshot" && e["ollama"]["state"] == "up" {
                assert_eq!(e["scope"]["kind"], "remote", "{e:#}");
                assert_eq!(e["verdict"]["kind"], "unverified", "{e:#}");
                assert!(e["headline"].as_str().unwrap().contains("remote"), "{e:#}");
                seen_snapshot = true;
            }
        }
        child.kill().await.unwrap();
    })
    .await;
    drop(sim);
    drop(ns);
}

/// Local by every route: loopback literal, a name, and this machine's own non-loopback address.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_server_on_this_machine_is_local_and_cross_checked() {
    bounded(async {
        let home = Home::new();
        let gpu = idle_gpu_file(&home);
        let sim = sim(demo()).await;
        let port = sim.addr().port();
        for url in [
            format!("http://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
        ] {
            let r = doctor(&home, &url, &gpu).await;
            let j = r.json();
            assert_eq!(j["scope"]["kind"], "local", "{url}: {j:#}");
            // ps says 100% GPU, the GPU holds nothing and no runner is there: a contradiction,
            // never "gpu" with exit 0.
            assert_eq!(j["verdict"], "cpu", "{url}: {j:#}");
            assert_eq!(r.code, 6, "{url}: {r:?}");
            let c = codes(diagnosis(&j, MODEL));
            assert!(c.contains(&"PS_CONTRADICTS_NVML".to_owned()), "{c:?}");
        }
        sim.shutdown().await;
    })
    .await;
}

/// The host end of the namespace's veth pair is one of this machine's addresses (exactly what
/// a docker bridge address is): a server there is local.
#[tokio::test(flavor = "multi_thread")]
async fn this_machines_own_bridge_address_is_local() {
    let ns = match NetNs::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    bounded(async {
        let home = Home::new();
        let gpu = idle_gpu_file(&home);
        let sim = ollama_sim::start_on(demo(), SocketAddr::new(ns.host_addr().into(), 0))
            .await
            .unwrap();
        let url = sim.url();
        assert!(url.contains(&ns.host_addr().to_string()), "{url}");
        let r = doctor(&home, &url, &gpu).await;
        let j = r.json();
        assert_eq!(j["scope"]["kind"], "local", "{j:#}");
        assert_eq!(r.code, 6, "{r:?}");
        sim.shutdown().await;
    })
    .await;
    drop(ns);
}
