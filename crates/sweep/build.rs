//! Bakes the code version (`git describe --always --dirty`) into the binary, so every trial
//! record says which code produced it.

use std::process::Command;

fn main() {
    let described = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|version| !version.is_empty());
    let version = described.unwrap_or_else(|| format!("v{}", env!("CARGO_PKG_VERSION")));
    println!("cargo:rustc-env=LORAPLUS_CODE_VERSION={version}");
    for git_file in ["../../.git/HEAD", "../../.git/index"] {
        println!("cargo:rerun-if-changed={git_file}");
    }
}
