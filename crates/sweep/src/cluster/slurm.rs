//! `loraplus slurm CONFIG`: the sbatch scripts that run a sweep as a Slurm job array, one shard
//! per array task, then a report step once every task has ended.
//!
//! Slurm does the scheduling, retries and accounting; the scripts only call `loraplus`. Written
//! to `OUT/slurm/`:
//!
//! ```text
//! sweep.sbatch    the job array: task i runs `loraplus sweep CONFIG --out OUT --shards N` (shard i)
//! report.sbatch   `loraplus status OUT` and `loraplus report OUT`
//! submit.sh       submits the array, then the report step with --dependency=afterany on it
//! logs/           each task's output
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{DeviceChoice, SweepConfig};
use crate::plan::{self, TrialSpec};
use crate::run::trial::CODE_VERSION;
use crate::store::write_atomic;

/// What the array asks of the cluster (`loraplus slurm`'s options). Unset: the cluster's
/// defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SlurmOptions {
    /// Array tasks. Default: one per family of stackable trials.
    #[arg(long)]
    pub shards: Option<usize>,
    /// At most this many tasks at once (`--array=...%M`).
    #[arg(long)]
    pub max_running: Option<usize>,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// GPUs per task.
    #[arg(long)]
    pub gpus: Option<usize>,
    /// Time limit per task, e.g. 02:00:00.
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs per task.
    #[arg(long)]
    pub cpus_per_task: Option<usize>,
    /// Memory per task, e.g. 16G.
    #[arg(long)]
    pub mem: Option<String>,
    /// The compute device of every task, instead of the config's.
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
    /// A further #SBATCH option for both scripts, e.g. --sbatch=--account=abc (repeatable).
    #[arg(long = "sbatch", allow_hyphen_values = true)]
    pub extra: Vec<String>,
}

/// The scripts written.
#[derive(Debug)]
pub struct SlurmScripts {
    /// `OUT/slurm`.
    pub dir: PathBuf,
    /// Array tasks.
    pub shards: usize,
    /// Trials in the sweep.
    pub trials: usize,
}

/// One shard per family of trials that differ only in eta_A and ratio: as many tasks as the
/// sweep can use without splitting a stacked group.
pub fn default_shards(trials: &[TrialSpec]) -> usize {
    let refs: Vec<&TrialSpec> = trials.iter().collect();
    plan::groups(&refs, |_| usize::MAX).len().max(1)
}

/// Writes the scripts that sweep `config` (read from `config_path`) into `out` with `binary`.
/// Paths are made absolute and tasks start in the current directory, so relative data paths in
/// the config resolve as they do here.
pub fn write_scripts(
    config_path: &Path,
    config: &SweepConfig,
    out: &Path,
    binary: &Path,
    options: &SlurmOptions,
) -> Result<SlurmScripts> {
    let trials = plan::expand(config);
    let shards = options.shards.unwrap_or_else(|| default_shards(&trials));
    anyhow::ensure!(
        (1..=trials.len()).contains(&shards),
        "--shards {shards}: allowed 1 to {} (the sweep's trial count)",
        trials.len()
    );
    anyhow::ensure!(options.max_running != Some(0), "--max-running must be at least 1");
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let absolute = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    let paths = Paths {
        config: absolute(config_path),
        out: absolute(out),
        binary: absolute(binary),
        dir: absolute(out).join("slurm"),
    };
    let logs = paths.dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let header = |what: &str| {
        format!(
            "#!/bin/bash\n# {what} of sweep `{}` ({} trials in {shards} shards), written by loraplus {CODE_VERSION}\n\
             # from {}. Submit both steps with: bash {}\n",
            config.name,
            trials.len(),
            paths.config.display(),
            paths.dir.join("submit.sh").display()
        )
    };
    let (common, sweep_only) = sbatch_options(options, &cwd);
    let sweep = format!(
        "{}{}{}{}{}",
        header("The job array"),
        sbatch_lines(&[
            format!("--job-name=loraplus-{}", config.name),
            format!("--array={}", array_range(shards, options.max_running)),
            format!("--output={}", logs.join("sweep-%A_%a.out").display()),
        ]),
        sbatch_lines(&common),
        sbatch_lines(&sweep_only),
        sweep_body(&paths, shards, options.device)
    );
    let report = format!(
        "{}{}{}\
         set -euo pipefail\n\
         {bin} status {out} --shards {shards}\n\
         exec {bin} report {out}\n",
        header("The report step"),
        sbatch_lines(&[
            format!("--job-name=loraplus-{}-report", config.name),
            format!("--output={}", logs.join("report-%j.out").display()),
        ]),
        sbatch_lines(&common),
        bin = quote(&paths.binary),
        out = quote(&paths.out),
    );
    write_atomic(&paths.dir.join("sweep.sbatch"), sweep.as_bytes())?;
    write_atomic(&paths.dir.join("report.sbatch"), report.as_bytes())?;
    write_atomic(&paths.dir.join("submit.sh"), submit_script(&paths, shards).as_bytes())?;
    Ok(SlurmScripts {
        dir: paths.dir,
        shards,
        trials: trials.len(),
    })
}

/// The absolute paths the scripts name.
struct Paths {
    config: PathBuf,
    out: PathBuf,
    binary: PathBuf,
    /// `OUT/slurm`, where the scripts go.
    dir: PathBuf,
}

/// The `#SBATCH` options of both scripts, and those of the array alone.
fn sbatch_options(options: &SlurmOptions, cwd: &Path) -> (Vec<String>, Vec<String>) {
    let mut common = vec![format!("--chdir={}", cwd.display())];
    let mut sweep_only = Vec::new();
    if let Some(partition) = &options.partition {
        common.push(format!("--partition={partition}"));
    }
    if let Some(time) = &options.time {
        common.push(format!("--time={time}"));
    }
    if let Some(gpus) = options.gpus {
        sweep_only.push(format!("--gpus={gpus}"));
    }
    if let Some(cpus) = options.cpus_per_task {
        sweep_only.push(format!("--cpus-per-task={cpus}"));
    }
    if let Some(mem) = &options.mem {
        sweep_only.push(format!("--mem={mem}"));
    }
    common.extend(options.extra.iter().cloned());
    (common, sweep_only)
}

fn sbatch_lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("#SBATCH {l}\n")).collect()
}

/// `--array`'s range: every shard, at most `max_running` at once.
fn array_range(shards: usize, max_running: Option<usize>) -> String {
    match max_running {
        Some(m) => format!("0-{}%{m}", shards - 1),
        None => format!("0-{}", shards - 1),
    }
}

/// What each array task runs: its shard of the sweep.
fn sweep_body(paths: &Paths, shards: usize, device: Option<DeviceChoice>) -> String {
    let mut sweep_args = vec![
        quote(&paths.binary),
        "sweep".into(),
        quote(&paths.config),
        "--out".into(),
        quote(&paths.out),
        "--shards".into(),
        shards.to_string(),
    ];
    if let Some(device) = device {
        sweep_args.extend(["--device".into(), device.as_str().to_string()]);
    }
    format!(
        "set -euo pipefail\n\
         # The array task id is the shard index (so `sbatch --array=3,5 {}` reruns shards 3 and 5).\n\
         # Finished trials are skipped, so a requeued or resubmitted task resumes.\n\
         exec {}\n",
        paths.dir.join("sweep.sbatch").display(),
        sweep_args.join(" ")
    )
}

/// Submits the array, then the report step once every task has ended.
fn submit_script(paths: &Paths, shards: usize) -> String {
    format!(
        "#!/bin/bash\n# Submits the sweep's job array, then its report step, which runs once every array task\n\
         # has ended (afterany: also when some failed; `loraplus status` then says which to resubmit).\n\
         # Extra arguments go to both sbatch calls, e.g. --account=abc.\n\
         set -euo pipefail\n\
         array=$(sbatch --parsable \"$@\" {sweep})\n\
         array=${{array%%;*}}\n\
         report=$(sbatch --parsable \"$@\" --dependency=afterany:\"$array\" {report})\n\
         echo \"submitted job array $array ({shards} tasks) and report job ${{report%%;*}}\"\n",
        sweep = quote(&paths.dir.join("sweep.sbatch")),
        report = quote(&paths.dir.join("report.sbatch")),
    )
}

/// `path` as one shell word.
fn quote(path: &Path) -> String {
    let s = path.display().to_string();
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c)) {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(quote(Path::new("/a/b-c_d.toml")), "/a/b-c_d.toml");
        assert_eq!(quote(Path::new("/my runs/it's")), r"'/my runs/it'\''s'");
    }
}
