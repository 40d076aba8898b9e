//! Compiles `src/bin/berth-relay.rs` a second time, as a static executable,
//! for `engine::relay` to embed and copy into workspace containers (it must
//! run in any image, with or without a C library). Only the standard
//! library is used, so plain `rustc` with `crt-static` is enough.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "src/bin/berth-relay.rs";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("berth-relay");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let status = Command::new(rustc)
        .args(["--edition=2021", "--crate-type=bin", "--target", &target])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(&out)
        .arg(src)
        .status()
        .expect("run rustc for berth-relay");
    assert!(status.success(), "building the static berth-relay failed");
}
