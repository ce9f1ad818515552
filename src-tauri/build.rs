fn main() {
    // The UI is embedded at compile time: rebuild when `npm run build` refreshed it.
    println!("cargo:rerun-if-changed=../ui/dist");
    tauri_build::build()
}
