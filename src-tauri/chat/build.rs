fn main() {
    // Declaring the app's commands makes Tauri generate `allow-<command>` permissions and enforce
    // the capability files for them, instead of allowing every app command to every window.
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(
        tauri_build::AppManifest::new().commands(&[
            "status",
            "send_message",
            "cancel_reply",
            "retry_reply",
            "list_conversations",
            "load_conversation",
            "warm",
            "unload",
            "open_external",
            "gpu_history",
            "list_models",
            "painted",
            "chat_choice",
            "choose_model",
            "set_think",
            "watch_model",
            "choose_host",
            "pull_model",
            "cancel_pull",
            "pull_state",
            "check_now",
            "image_support",
            "attach_image",
            "discard_image",
        ]),
    ))
    .expect("tauri build script failed: see the message above");
}
