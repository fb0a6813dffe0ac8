// The whole app lives in the library so tests can boot it with the mock runtime.
fn main() {
    yollayah_chat::run();
}
