//! Bakes the code version into the binary, so every trial record says which code produced it:
//! the commit (`git describe --always`), marked `-dirty` when the code (not the results or
//! docs) differs from it.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let version = match git(&["describe", "--always", "--abbrev=12"]).filter(|v| !v.is_empty()) {
        Some(commit) => {
            let code = ["../../crates", "../../Cargo.toml", "../../Cargo.lock"];
            let changes = git(&[&["status", "--porcelain", "--"][..], &code[..]].concat());
            let dirty = changes.is_none_or(|c| !c.is_empty());
            format!("{commit}{}", if dirty { "-dirty" } else { "" })
        }
        None => format!("v{}", env!("CARGO_PKG_VERSION")),
    };
    println!("cargo:rustc-env=LORAPLUS_CODE_VERSION={version}");
    for git_file in ["../../.git/HEAD", "../../.git/index"] {
        println!("cargo:rerun-if-changed={git_file}");
    }
}
