//! Running a sweep: skip finished trials, pretrain the bases, run the rest in parallel, write
//! each record as soon as it exists, and report.

use std::io::IsTerminal;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::{DeviceChoice, SweepConfig};
use crate::data::{DataCache, InputShape};
use crate::grid::{self, TrialSpec};
use crate::report::{self, ReportSettings};
use crate::stacking::{self, GroupSize};
use crate::store::{Store, TrialRecord, write_atomic};
use crate::train::Status;
use crate::trial::{BaseInfo, CODE_VERSION, backend_name, failed_record, host_name, prepare_bases, run_group};

/// The autodiff device for a config's choice.
pub fn device(choice: DeviceChoice) -> Result<Device> {
    #[allow(deprecated)] // ndarray is deprecated upstream; kept selectable for comparison.
    let device = match choice {
        DeviceChoice::Cpu => Device::flex(),
        DeviceChoice::Ndarray => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        DeviceChoice::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(not(feature = "wgpu"))]
        DeviceChoice::Wgpu => anyhow::bail!(
            "device `wgpu` needs a build with the GPU backend: cargo build --release --features wgpu \
             (see the README's GPU section)"
        ),
    };
    Ok(device.autodiff())
}

/// Runs every unfinished trial of `config` into `out` with `jobs` trials at a time, then writes
/// the reports and returns the printed summary.
pub fn sweep(config: &SweepConfig, config_text: &str, out: &Path, jobs: usize) -> Result<String> {
    let trials = grid::expand(config);
    // Data files are read before anything is written, so a bad file leaves `out` as it was.
    let data = DataCache::load(&trials, &|line| eprintln!("{line}"))?;
    let store = Store::open(out)?;
    write_atomic(&out.join("config.toml"), config_text.as_bytes())?;
    let settings = ReportSettings {
        name: config.name.clone(),
        metric: config.metric,
        top_k: config.top_k,
    };
    write_atomic(&out.join("sweep.json"), &serde_json::to_vec_pretty(&settings)?)?;

    let started = Instant::now();
    let pending: Vec<&TrialSpec> = trials.iter().filter(|t| store.finished(&t.id()).is_none()).collect();
    let ran = pending.len();
    let progress = Progress::new(trials.len(), trials.len() - pending.len());
    progress.log(format!(
        "{}: {} trials, {} already finished, {} to run on {jobs} job(s) -> {}",
        config.name,
        trials.len(),
        trials.len() - pending.len(),
        pending.len(),
        out.display()
    ));

    if !pending.is_empty() {
        let device = device(config.device)?;
        let owned: Vec<TrialSpec> = pending.iter().map(|t| (*t).clone()).collect();
        let bases = prepare_bases(&owned, &store, &data, &device, &|line| progress.log(line))?;
        let budget = match config.device {
            DeviceChoice::Cpu | DeviceChoice::Ndarray => stacking::memory_budget(jobs),
            // wgpu reports no device memory; 16 GiB fits every GPU this project was run on.
            DeviceChoice::Wgpu => 16 << 30,
        };
        let groups = stacking::groups(&pending, |spec| match config.group_size {
            GroupSize::Trials(n) => n,
            GroupSize::Auto => {
                let shape = InputShape::of(&spec.task.kind, data.get(&spec.task, &spec.model));
                let bytes = stacking::member_bytes(spec, &shape).unwrap_or(usize::MAX);
                stacking::auto_group_size(bytes, budget, usize::MAX)
            }
        });
        progress.log(format!(
            "{} trials in {} stacked group(s) of up to {} (group_size {})",
            pending.len(),
            groups.len(),
            groups.iter().map(Vec::len).max().unwrap_or(0),
            match config.group_size {
                GroupSize::Auto => "auto".to_string(),
                GroupSize::Trials(n) => n.to_string(),
            }
        ));
        // `jobs` groups run at once, each on its own thread; their tensor operations share
        // rayon's global pool, so even one job uses every core. (Running them inside a
        // `jobs`-thread rayon pool would confine their tensor work to that pool.)
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..jobs.min(groups.len()) {
                scope.spawn(|| {
                    while let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let spec = group[0];
                        let base = &bases[&BaseInfo::of(spec).key()];
                        let outcome = catch_unwind(AssertUnwindSafe(|| {
                            run_group(group, base, data.get(&spec.task, &spec.model), &device)
                        }));
                        let failed = |message: String| {
                            group
                                .iter()
                                .map(|spec| failed_record(spec, message.clone(), &device, group.len()))
                                .collect()
                        };
                        let records = match outcome {
                            Ok(Ok(records)) => records,
                            Ok(Err(error)) => failed(format!("{error:#}")),
                            Err(panic) => failed(format!("panicked: {}", panic_message(&panic))),
                        };
                        for record in records {
                            if let Err(error) = store.save(&record) {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("trial {}: {error:#}", record.trial_id));
                            }
                            progress.finished(&record);
                        }
                    }
                });
            }
        });
        progress.done();
        let failures = failures.into_inner().unwrap();
        anyhow::ensure!(
            failures.is_empty(),
            "some records could not be written:\n{}",
            failures.join("\n")
        );
    }
    record_run(out, config, trials.len(), ran, jobs, started.elapsed().as_secs_f64())?;
    report::write_reports(&store, &settings)
}

/// One invocation of `loraplus sweep` on a directory, as `manifest.json` lists it.
#[derive(Serialize, Deserialize)]
struct Run {
    command: Vec<String>,
    code_version: String,
    backend: String,
    host: String,
    cpus: usize,
    jobs: usize,
    trials_total: usize,
    trials_run: usize,
    wall_seconds: f64,
    finished_at: u64,
}

/// Appends this invocation to `DIR/manifest.json`: what ran, with which code, where, how long.
/// With `config.toml` beside it, that is everything needed to reproduce the directory.
fn record_run(
    out: &Path,
    config: &SweepConfig,
    total: usize,
    ran: usize,
    jobs: usize,
    wall_seconds: f64,
) -> Result<()> {
    let path = out.join("manifest.json");
    let mut manifest: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(
            || serde_json::json!({ "name": config.name, "config": "config.toml", "seeds": config.seeds, "runs": [] }),
        );
    let run = Run {
        command: std::env::args().collect(),
        code_version: CODE_VERSION.into(),
        backend: backend_name(&device(config.device)?),
        host: host_name(),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        jobs,
        trials_total: total,
        trials_run: ran,
        wall_seconds,
        finished_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    if let Some(runs) = manifest["runs"].as_array_mut() {
        runs.push(serde_json::to_value(run)?);
    }
    write_atomic(&path, &serde_json::to_vec_pretty(&manifest)?)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A progress bar on a terminal; one log line per finished trial otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: Mutex<(usize, Option<(f64, String)>)>,
    started: Instant,
}

impl Progress {
    fn new(total: usize, already_done: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} trials  {elapsed_precise} elapsed, ETA {eta}  {msg}",
                )
                .expect("valid template"),
            );
            bar.set_position(already_done as u64);
            bar.reset_eta();
            bar
        });
        Self {
            bar,
            total,
            done: Mutex::new((already_done, None)),
            started: Instant::now(),
        }
    }

    fn log(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finished(&self, record: &TrialRecord) {
        let spec = &record.spec;
        let test = record.final_test_accuracy();
        let mut done = self.done.lock().unwrap();
        done.0 += 1;
        if record.status == Status::Ok
            && let Some(acc) = test
            && done.1.as_ref().is_none_or(|(best, _)| acc > *best)
        {
            done.1 = Some((
                acc,
                format!(
                    "{}/{} ratio {} eta_A {:.1e}",
                    spec.model.name, spec.task.name, spec.ratio, spec.eta_a
                ),
            ));
        }
        let best = done
            .1
            .as_ref()
            .map(|(acc, what)| format!("best so far {acc:.4} ({what})"))
            .unwrap_or_default();
        let status = match record.status {
            Status::Ok => String::new(),
            Status::Diverged => " DIVERGED".into(),
            Status::Failed => format!(" FAILED: {}", record.message.as_deref().unwrap_or("")),
        };
        let method = serde_json::to_value(spec.method)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let line = format!(
            "[{}/{}] {} {}/{} {method} eta_A {:.2e} ratio {} seed {}: test {}{status} ({:.1}s)",
            done.0,
            self.total,
            record.trial_id,
            spec.model.name,
            spec.task.name,
            spec.eta_a,
            spec.ratio,
            spec.seed,
            test.map(|t| format!("{t:.4}")).unwrap_or_else(|| "-".into()),
            record.wall_seconds,
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(done.0 as u64);
                bar.set_message(best);
            }
            None => eprintln!("{line}"),
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let done = self.done.lock().unwrap();
        eprintln!(
            "{} of {} trials finished in {:.1}s",
            done.0,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
    }
}
