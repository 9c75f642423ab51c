//! The `loraplus` command line: parse -> validate -> run -> report.
//!
//! Exit codes: 0 success, 1 any error (bad config, unreadable results, failed run), 2 bad
//! command-line usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use loraplus::adaptive::{self, Stage};
use loraplus::cluster::slurm::{self, SlurmOptions};
use loraplus::cluster::{merge, status};
use loraplus::config::{ConfigFile, DeviceChoice, GroupSize, Metric, Protocol, ReportSettings, SweepConfig};
use loraplus::export::predict::{self, PredictOptions};
use loraplus::export::{self, ExportOptions};
use loraplus::plan::shard::Shard;
use loraplus::plan::{Method, TrialSpec};
use loraplus::report;
use loraplus::run::bench::{self, BenchOptions};
use loraplus::run::device::device;
use loraplus::run::setup::load_config;
use loraplus::run::sweep::{self, SweepOptions};
use loraplus::run::trial::CODE_VERSION;
use loraplus::store::Store;
use loraplus_data::TableFormat;

/// Learning-rate ratio sweeps for LoRA and LoRA+ (eta_B = lambda * eta_A).
#[derive(Parser)]
#[command(version = CODE_VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the trials a config expands to, without running anything.
    Plan {
        /// The sweep config (TOML).
        config: PathBuf,
        /// List every trial, not only the counts.
        #[arg(long)]
        list: bool,
        /// A sweep directory whose results plan an adaptive sweep's further stages.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a sweep (resuming: finished trials are skipped), then write its reports.
    Sweep {
        /// The sweep config (TOML).
        config: PathBuf,
        #[command(flatten)]
        args: SweepArgs,
    },
    /// Count a sweep directory's trials: done, diverged, failed, running, missing; with the
    /// missing shards as a Slurm range list, ready for resubmission.
    Status {
        /// A sweep's output directory.
        dir: PathBuf,
        /// Shard count. Default: the one the directory's sharded runs used.
        #[arg(long)]
        shards: Option<usize>,
    },
    /// Combine the results of one sweep from several directories (deduplicated by trial id;
    /// directories of different configs are refused), then write the reports.
    Merge {
        /// Sweep output directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged results go (if it holds results of the same sweep, they are kept).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write sbatch scripts that run a sweep as a Slurm job array, one shard per task, and a
    /// report step after it.
    Slurm {
        /// The sweep config (TOML).
        config: PathBuf,
        /// Output directory (the scripts go to OUT/slurm). Default: runs/<config file stem>.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        options: SlurmOptions,
    },
    /// Time a config's first group of stackable trials, one by one and stacked, and print
    /// trials per hour for both.
    Bench {
        /// The sweep config (TOML).
        config: PathBuf,
        /// Trials in the group.
        #[arg(long, default_value_t = 8)]
        members: usize,
        /// Only trials of this model (its name in the config). Default: the first model's.
        #[arg(long)]
        model: Option<String>,
        /// Updates per trial.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Rounds (each runs both ways); medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The compute device, instead of the config's `device`.
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
        /// Where pretrained bases are cached. Default: runs/bench-<config file stem>.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export each pair's best adapter (or one trial's) as a folder PEFT loads as it is, with a
    /// model card; with --merged, also the base with the adapter merged in, for transformers alone.
    Export {
        /// A sweep's output directory.
        dir: PathBuf,
        /// Where the folders go, one per pair (or `trial-<id>` for --trial).
        #[arg(long)]
        out: PathBuf,
        /// Export this trial instead of each pair's best cell.
        #[arg(long)]
        trial: Option<String>,
        /// The best cell's trial of this seed. Default: the seed whose metric is closest to the
        /// cell's mean (ties: the smaller seed).
        #[arg(long, conflicts_with = "trial")]
        seed: Option<u64>,
        /// Also write `merged/`: a Hugging Face checkpoint with the adapter merged into the base.
        #[arg(long)]
        merged: bool,
    },
    /// Classify the texts of a CSV / TSV / JSON-lines / `.tab` file with a trained adapter (an
    /// exported folder or a sweep's `trials/<id>/`); prints the accuracy when the file has labels.
    Predict {
        /// An exported adapter folder, or a trial's folder in a sweep.
        model_dir: PathBuf,
        /// The file to classify.
        file: PathBuf,
        #[command(flatten)]
        args: PredictArgs,
    },
    /// Rebuild the CSV tables, plots and summary of a sweep directory from its trial records.
    Report {
        /// A sweep's output directory.
        dir: PathBuf,
        /// Rank by this metric instead of the sweep's own.
        #[arg(long, value_enum)]
        metric: Option<Metric>,
        /// Cells per pair in the ratio distribution, instead of the sweep's own.
        #[arg(long)]
        top_k: Option<usize>,
        /// How best cells are chosen, instead of the sweep's own: seed means, or the LoRA+
        /// paper's single-seed protocol.
        #[arg(long, value_enum)]
        protocol: Option<Protocol>,
    },
}

/// `loraplus sweep`'s options.
#[derive(clap::Args)]
struct SweepArgs {
    /// Output directory. Default: runs/<config file stem>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Trials (or stacked groups of trials) run at a time. Default: the number of CPU cores.
    #[arg(long)]
    jobs: Option<usize>,
    /// Trials trained together in one stacked pass: `auto` or a number (1: each alone).
    /// Default: the config's `group_size`.
    #[arg(long)]
    group_size: Option<GroupSize>,
    /// The compute device, instead of the config's `device`.
    #[arg(long, value_enum)]
    device: Option<DeviceChoice>,
    /// Run only shard I of N (0-based), e.g. 0/4. Default: the shard a Slurm job array
    /// (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) assigns,
    /// else every trial.
    #[arg(long, conflicts_with = "shards")]
    shard: Option<Shard>,
    /// The shard count, where the environment gives only the index: then the Slurm array
    /// task id (or JOB_COMPLETION_INDEX) is the shard index itself.
    #[arg(long)]
    shards: Option<usize>,
    /// Run trials recorded as failed again.
    #[arg(long)]
    retry_failed: bool,
}

/// `loraplus predict`'s options.
#[derive(clap::Args)]
struct PredictArgs {
    /// The predictions CSV. Default: FILE with `.predictions.csv` in place of its extension.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// The text column. Default: the trial's task's.
    #[arg(long)]
    text: Option<String>,
    /// The second text of a pair. Default: the trial's task's.
    #[arg(long)]
    text_pair: Option<String>,
    /// The label column, used when the file has it. Default: the trial's task's.
    #[arg(long)]
    label: Option<String>,
    /// The file's format. Default: from its extension.
    #[arg(long, value_enum)]
    format: Option<TableFormatArg>,
    /// Tokens per example at most. Default: the trial's task's.
    #[arg(long)]
    max_seq_len: Option<usize>,
}

/// `--format`'s values, the text task's `format` names.
#[derive(Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
enum TableFormatArg {
    Csv,
    Tsv,
    Jsonl,
    OrangeTab,
}

impl From<TableFormatArg> for TableFormat {
    fn from(format: TableFormatArg) -> Self {
        match format {
            TableFormatArg::Csv => TableFormat::Csv,
            TableFormatArg::Tsv => TableFormat::Tsv,
            TableFormatArg::Jsonl => TableFormat::Jsonl,
            TableFormatArg::OrangeTab => TableFormat::OrangeTab,
        }
    }
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `loraplus plan ... | head` would panic printing to the closed pipe;
    // the default action ends the process quietly, like any Unix filter.
    #[cfg(unix)]
    // SAFETY: called first thing, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    loraplus_model::keep_freed_buffers();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Plan { config, list, out } => plan(&config, list, out.as_deref()),
        Command::Sweep { config, args } => run_sweep(&config, args),
        Command::Status { dir, shards } => {
            anyhow::ensure!(shards != Some(0), "--shards must be at least 1");
            print!("{}", status::status(&dir, shards)?);
            Ok(())
        }
        Command::Merge { dirs, out } => {
            print!("{}", merge::merge(&dirs, &out)?);
            println!("\nmerged results and reports in {}", out.display());
            Ok(())
        }
        Command::Slurm { config, out, options } => write_slurm_scripts(&config, out, &options),
        Command::Bench {
            config,
            members,
            model,
            steps,
            rounds,
            device,
            out,
        } => {
            let options = BenchOptions {
                members,
                model,
                steps,
                rounds,
            };
            run_bench(&config, &options, device, out)
        }
        Command::Export {
            dir,
            out,
            trial,
            seed,
            merged,
        } => {
            let options = ExportOptions { trial, seed, merged };
            print!("{}", export::export(&Store::existing(&dir)?, &out, &options)?);
            Ok(())
        }
        Command::Predict { model_dir, file, args } => {
            let options = PredictOptions {
                out: args.out.unwrap_or_else(|| file.with_extension("predictions.csv")),
                batch_size: args.batch_size,
                text: args.text,
                text_pair: args.text_pair,
                label: args.label,
                format: args.format.map(TableFormat::from),
                max_seq_len: args.max_seq_len,
            };
            run_predict(&model_dir, &file, &options)
        }
        Command::Report {
            dir,
            metric,
            top_k,
            protocol,
        } => rebuild_report(&dir, metric, top_k, protocol),
    }
}

/// `loraplus report`: the reports again, with the stored settings or those given.
fn rebuild_report(dir: &Path, metric: Option<Metric>, top_k: Option<usize>, protocol: Option<Protocol>) -> Result<()> {
    let store = Store::existing(dir)?;
    let mut settings = store.report_settings()?;
    settings.metric = metric.unwrap_or(settings.metric);
    settings.protocol = protocol.unwrap_or(settings.protocol);
    if let Some(top_k) = top_k {
        anyhow::ensure!(top_k >= 1, "--top-k must be at least 1");
        settings.top_k = top_k;
    }
    print!("{}", report::write_reports(&store, &settings)?);
    Ok(())
}

/// `loraplus predict`: the predictions, and the accuracy when the file has labels.
fn run_predict(model_dir: &Path, file: &Path, options: &PredictOptions) -> Result<()> {
    let predicted = predict::predict(model_dir, file, options)?;
    print!(
        "{} examples classified -> {}",
        predicted.examples,
        predicted.out.display()
    );
    match predicted.accuracy {
        Some((correct, n)) => println!("; accuracy {:.4} ({correct} of {n})", correct as f64 / n as f64),
        None => println!(" (the file has no labels: no accuracy)"),
    }
    Ok(())
}

/// `loraplus slurm`: the job array's scripts.
fn write_slurm_scripts(config: &Path, out: Option<PathBuf>, options: &SlurmOptions) -> Result<()> {
    let file = load_config(config)?;
    let out = out.unwrap_or_else(|| default_out(config));
    let binary = std::env::current_exe().context("cannot locate the loraplus binary")?;
    let scripts = slurm::write_scripts(config, &file.config, &out, &binary, options)?;
    println!(
        "{}: {} trials in {} array tasks; scripts in {}",
        file.config.name,
        scripts.trials,
        scripts.shards,
        scripts.dir.display()
    );
    println!("submit: bash {}", scripts.dir.join("submit.sh").display());
    Ok(())
}

/// `loraplus bench`: one group of the config's trials, one by one and stacked.
fn run_bench(config: &Path, options: &BenchOptions, choice: Option<DeviceChoice>, out: Option<PathBuf>) -> Result<()> {
    let file = load_config(config)?;
    anyhow::ensure!(
        options.members >= 1 && options.steps >= 1 && options.rounds >= 1,
        "--members, --steps and --rounds must be at least 1"
    );
    let device = device(choice.unwrap_or(file.config.device))?;
    let stem = config.file_stem().unwrap_or_default().to_string_lossy();
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(format!("bench-{stem}")));
    print!("{}", bench::bench(&file, options, device, &out)?);
    Ok(())
}

/// `loraplus sweep`: the config with the command line's overrides, swept.
fn run_sweep(config: &Path, args: SweepArgs) -> Result<()> {
    let mut file = load_config(config)?;
    file.config.group_size = args.group_size.unwrap_or(file.config.group_size);
    file.config.device = args.device.unwrap_or(file.config.device);
    let out = args.out.unwrap_or_else(|| default_out(config));
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    anyhow::ensure!(jobs >= 1, "--jobs must be at least 1");
    anyhow::ensure!(args.shards != Some(0), "--shards must be at least 1");
    let shard = match args.shard {
        Some(shard) => Some(shard),
        None => Shard::from_env(args.shards)?,
    };
    let options = SweepOptions {
        jobs,
        shard,
        retry_failed: args.retry_failed,
    };
    sweep_and_report(&file, &out, options)
}

/// `loraplus sweep`: runs the sweep, then writes its reports; a shard leaves them to
/// `loraplus report`, once every shard is done.
fn sweep_and_report(file: &ConfigFile, out: &Path, options: SweepOptions) -> Result<()> {
    let swept = sweep::sweep(file, out, options)?;
    match options.shard {
        Some(shard) => print!(
            "shard {shard}: {} of its {} trials finished here\n\
             once every shard is done: loraplus report {dir}   (progress: loraplus status {dir})\n",
            swept.ran,
            swept.owned,
            dir = out.display()
        ),
        None => {
            let settings = ReportSettings::from(&file.config);
            print!("{}", report::write_reports(&Store::at(out), &settings)?);
            println!("\nreports in {}", out.display());
        }
    }
    Ok(())
}

fn default_out(config: &Path) -> PathBuf {
    let stem = config.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
    PathBuf::from("runs").join(stem)
}

/// `loraplus plan`: the grid's axes, its stages (planned from the records in `out`), each pair's
/// trials, and with `list` every trial.
fn plan(path: &Path, list: bool, out: Option<&Path>) -> Result<()> {
    let config = load_config(path)?.config;
    let store = out.map(Store::at);
    let stages = adaptive::stages_in(&config, store.as_ref());
    let trials: Vec<&TrialSpec> = stages.iter().flat_map(|s| &s.trials).collect();
    println!("{}: {} trials", config.name, trials.len());
    println!("  eta_A:  {:?}", config.grid.eta_a.values());
    println!("  ratio:  {:?} (1 = plain LoRA)", config.grid.ratios());
    println!("  seeds:  {:?}", config.seeds);
    let axes = config.axes();
    if !axes.is_empty() {
        println!("  other axes: {}", axes.join(", "));
    }
    print_stages(&config, &stages, out);
    for (model, task) in config.pairs() {
        let of_pair: Vec<&&TrialSpec> = trials
            .iter()
            .filter(|t| t.model.name == model.name && t.task.name == task.name)
            .collect();
        let of_method = |method| of_pair.iter().filter(|t| t.method == method).count();
        println!(
            "  {}/{}: {} adapter trials + {} head-only baselines, {} steps each, base {}",
            model.name,
            task.name,
            of_method(Method::Lora),
            of_method(Method::HeadOnly),
            of_pair.first().map_or(0, |t| t.steps()),
            match &model.pretrain {
                Some(pretrain) => format!("pretrained on `{}`", pretrain.task),
                None => "from its checkpoint".into(),
            }
        );
    }
    if list {
        println!(
            "\n{:<16} {:<12} {:<14} {:<9} {:>4} {:>10} {:>7}  stage",
            "trial_id", "model", "task", "method", "seed", "eta_a", "ratio"
        );
        for (stage, t) in stages.iter().flat_map(|s| s.trials.iter().map(move |t| (s.kind, t))) {
            println!(
                "{:<16} {:<12} {:<14} {:<9} {:>4} {:>10.3e} {:>7}  {stage}",
                t.id(),
                t.model.name,
                t.task.name,
                t.method.as_str(),
                t.seed,
                t.eta_a,
                t.ratio
            );
        }
    }
    Ok(())
}

/// An adaptive sweep's bounds and its stages so far.
fn print_stages(config: &SweepConfig, stages: &[Stage], out: Option<&Path>) {
    let Some(adaptive) = config.adaptive.as_ref().filter(|a| a.enabled) else {
        return;
    };
    println!(
        "  adaptive: pairs whose best cell is on the grid's edge get the next grid line, up to {} rounds \
         (eta_A {:e} to {:e}, ratio {} to {}, at most {} added trials per pair){}",
        adaptive.max_rounds,
        adaptive.eta_a_min,
        adaptive.eta_a_max,
        adaptive.ratio_min,
        adaptive.ratio_max,
        adaptive.max_trials,
        if adaptive.refine {
            ", then a refinement at half the log step"
        } else {
            ""
        }
    );
    let stages: Vec<String> = stages.iter().map(Stage::to_string).collect();
    match out {
        Some(out) => println!(
            "  stages planned from the results in {}: {}",
            out.display(),
            stages.join(", ")
        ),
        None => println!(
            "  stages: {} (further stages are planned from results: --out DIR)",
            stages.join(", ")
        ),
    }
}
