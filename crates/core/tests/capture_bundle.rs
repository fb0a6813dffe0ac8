//! Capture bundles: round trip, version and format checks, clear errors.

use std::path::PathBuf;

use yollayah_core::Error;
use yollayah_core::capture::{CaptureBundle, FORMAT, VERSION};
use yollayah_core::diagnose::diagnose;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn round_trip_keeps_everything_the_diagnosis_reads() {
    let b = CaptureBundle::read(fixture("incident_9902.json")).unwrap();
    assert_eq!((b.format.as_str(), b.version), (FORMAT, VERSION));
    assert_eq!(b.ps.models.len(), 1);
    assert!(b.show.contains_key("deepseek-r1:32b"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.json");
    b.write(&p).unwrap();
    let again = CaptureBundle::read(&p).unwrap();
    assert_eq!(again, b);
    assert_eq!(diagnose(&again.observation()), diagnose(&b.observation()));
}

#[test]
fn unsupported_version_is_a_typed_error_naming_it() {
    let text = std::fs::read_to_string(fixture("full_gpu.json"))
        .unwrap()
        .replacen("\"version\": 1", "\"version\": 7", 1);
    match CaptureBundle::from_json(&text) {
        Err(Error::UnsupportedCapture {
            version, format, ..
        }) => {
            assert_eq!((version, format.as_str()), (7, FORMAT));
        }
        other => panic!("expected UnsupportedCapture, got {other:?}"),
    }
    let e = CaptureBundle::from_json(r#"{"format":"something-else","version":1}"#).unwrap_err();
    assert!(e.to_string().contains("something-else"), "{e}");
}

#[test]
fn malformed_bundle_and_missing_file_are_clear() {
    let e = CaptureBundle::from_json(r#"{"format":"yollayah-capture","version":1}"#).unwrap_err();
    assert!(matches!(e, Error::InvalidSnapshot { .. }), "{e}");
    assert!(e.to_string().contains("captured_at"), "{e}");
    let e = CaptureBundle::read("/nonexistent/bundle.json").unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(CaptureBundle::from_json("not json").is_err());
}

#[test]
fn new_bundle_is_stamped_with_format_and_version() {
    let b = CaptureBundle::new(
        "http://127.0.0.1:11434",
        yollayah_core::gpu::GpuSnapshot::unavailable("no driver"),
    );
    let j: serde_json::Value = serde_json::from_str(&b.to_json().unwrap()).unwrap();
    assert_eq!(j["format"], "yollayah-capture");
    assert_eq!(j["version"], 1);
    assert_eq!(j["gpu"]["nvml"]["reason"], "no driver");
    assert!(CaptureBundle::from_json(&b.to_json().unwrap()).is_ok());
}

#[test]
fn bundles_before_the_scope_load_as_local_and_new_ones_carry_it() {
    use yollayah_core::capture::MINOR_VERSION;
    use yollayah_core::placement::{Placement, UnverifiedReason};
    use yollayah_core::scope::Scope;

    // The fixtures predate the scope (minor version 0): captured next to their server.
    let text = std::fs::read_to_string(fixture("full_gpu.json")).unwrap();
    assert!(!text.contains("\"scope\""));
    let old = CaptureBundle::from_json(&text).unwrap();
    assert_eq!((old.scope.clone(), old.minor_version), (Scope::Local, 0));
    let local = diagnose(&old.observation());
    assert_eq!(local[0].placement.placement, Placement::Gpu);

    // The same facts marked remote: the GPU in the bundle is not the server's.
    let mut remote = old.clone();
    remote.scope = Scope::Remote;
    remote.minor_version = MINOR_VERSION;
    let json = remote.to_json().unwrap();
    assert!(json.contains("\"minor_version\": 1"), "{json}");
    let back = CaptureBundle::from_json(&json).unwrap();
    assert_eq!(back.scope, Scope::Remote);
    let d = diagnose(&back.observation());
    assert_eq!(
        d[0].placement.placement,
        Placement::Unverified {
            reason: UnverifiedReason::Remote
        }
    );
    assert_eq!(d[0].placement.nvml_agrees, None);
}

/// A GPU claim that cannot be checked is not evidence of the CPU: a remote F16 model that
/// `/api/ps` puts 100 % on the GPU gets PLACEMENT_UNVERIFIED and no CPU-cause finding such
/// as F16_WEIGHTS_ON_CPU ("part of them sit in CPU memory"), seen on an H200 proof run.
#[test]
fn an_unverified_gpu_claim_gets_no_cpu_cause_findings() {
    use yollayah_core::placement::Placement;
    use yollayah_core::scope::Scope;

    let text = std::fs::read_to_string(fixture("full_gpu.json"))
        .unwrap()
        .replace(
            "\"quantization_level\": \"Q4_K_M\"",
            "\"quantization_level\": \"F16\"",
        );
    let mut b = CaptureBundle::from_json(&text).unwrap();
    b.scope = Scope::Remote;
    let d = diagnose(&b.observation());
    assert!(matches!(
        d[0].placement.placement,
        Placement::Unverified { .. }
    ));
    let codes: Vec<String> = d[0].findings.iter().map(|f| f.code.to_string()).collect();
    assert!(
        codes.iter().any(|c| c == "PLACEMENT_UNVERIFIED"),
        "{codes:?}"
    );
    assert!(
        !codes.iter().any(|c| c == "F16_WEIGHTS_ON_CPU"),
        "{codes:?}"
    );

    // The same F16 model partly on the CPU by ps's own figures is a CPU case, remote or not.
    let mut partial = b.clone();
    let ps = &mut partial.ps.models[0];
    ps.size_vram = ps.size / 2;
    let d = diagnose(&partial.observation());
    let codes: Vec<String> = d[0].findings.iter().map(|f| f.code.to_string()).collect();
    assert!(codes.iter().any(|c| c == "F16_WEIGHTS_ON_CPU"), "{codes:?}");
}

/// A replaced runner that is still exiting (lower pid, its GPU memory already freed) next to
/// its successor: the diagnosis judges the successor, so no one-tick "GPU backend lost"
/// (seen on an H200 proof run, s6).
#[test]
fn an_exiting_runner_of_the_same_blob_is_not_the_model_s_runner() {
    use yollayah_core::placement::Placement;

    let mut b =
        CaptureBundle::from_json(&std::fs::read_to_string(fixture("full_gpu.json")).unwrap())
            .unwrap();
    let mut exiting = b.runners[0].clone();
    exiting.pid = 4100;
    b.runners.insert(0, exiting);
    let d = diagnose(&b.observation());
    assert_eq!(d[0].placement.placement, Placement::Gpu);
    assert_eq!(d[0].placement.runner_pid, Some(4242));
    let codes: Vec<String> = d[0].findings.iter().map(|f| f.code.to_string()).collect();
    assert!(!codes.iter().any(|c| c == "GPU_BACKEND_LOST"), "{codes:?}");
}
