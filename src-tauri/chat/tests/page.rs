//! The page's module list in `ui/index.html` stays in step with `ui/`: every module app.js can
//! import is preloaded (else it loads late, as a waterfall, on the "Open chat" path), and every
//! preload names a module that exists.

use std::path::Path;

#[test]
fn every_module_is_preloaded_and_every_preload_exists() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui");
    let html = std::fs::read_to_string(ui.join("index.html")).expect("ui/index.html");
    let preloaded: Vec<&str> = html
        .split("<link rel=\"modulepreload\" href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    let mut modules: Vec<String> = std::fs::read_dir(&ui)
        .expect("ui/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".js") && name != "app.js")
        .collect();
    modules.sort();
    for m in &modules {
        assert!(
            preloaded.contains(&m.as_str()),
            "ui/{m} is not preloaded in ui/index.html"
        );
    }
    for p in &preloaded {
        assert!(
            modules.iter().any(|m| m == p),
            "ui/index.html preloads {p}, which is not a module in ui/"
        );
    }
    assert!(html.contains("<script type=\"module\" src=\"app.js\"></script>"));
}
