//! Compiles the eBPF C programs under bpf/ into objects the crate embeds.

use std::{env, path::PathBuf, process::Command};

const PROGRAMS: &[&str] = &["bpf_lxc", "bpf_overlay", "bpf_host", "bpf_sock"];

fn main() {
    let bpf_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../bpf");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", bpf_dir.display());
    println!("cargo:rerun-if-env-changed=BPF_CLANG");

    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| pick_clang());
    for name in PROGRAMS {
        let src = bpf_dir.join(format!("{name}.c"));
        let obj = out_dir.join(format!("{name}.o"));
        let output = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {clang} (run `make setup`): {e}"));
        if !output.status.success() {
            panic!(
                "compiling {} failed:\n{}",
                src.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// clang-19 generates better BPF code than the distribution default.
fn pick_clang() -> String {
    let works = |c: &str| Command::new(c).arg("--version").output().is_ok();
    ["clang-19", "clang"]
        .into_iter()
        .find(|c| works(c))
        .unwrap_or("clang")
        .to_string()
}
