//! What a running sweep shows: a progress bar on a terminal (done / total, ETA, the best trial
//! so far), one log line per finished trial otherwise (CI, `nohup`, a pipe).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::store::{Status, TrialRecord};

/// A progress bar on a terminal; one log line per finished trial otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: AtomicUsize,
    done: Mutex<(usize, Option<(f64, String)>)>,
    started: Instant,
}

impl Progress {
    /// `total` trials, `already_done` of them before this run.
    pub fn new(total: usize, already_done: usize) -> Self {
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
            total: AtomicUsize::new(total),
            done: Mutex::new((already_done, None)),
            started: Instant::now(),
        }
    }

    /// More trials to run than planned (an adaptive sweep's next stage).
    pub fn grow(&self, more: usize) {
        let total = self.total.fetch_add(more, Ordering::Relaxed) + more;
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
        }
    }

    /// A line of the log, above the bar while there is one.
    pub fn log(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// One more trial recorded, with its result.
    pub fn finished(&self, record: &TrialRecord) {
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
                format!("{} ratio {} eta_A {:.1e}", spec.pair_name(), spec.ratio, spec.eta_a),
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
        let line = format!(
            "[{}/{}] {} {} {} eta_A {:.2e} ratio {} seed {}: test {}{status} ({:.1}s)",
            done.0,
            self.total.load(Ordering::Relaxed),
            record.trial_id,
            spec.pair_name(),
            spec.method.as_str(),
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

    /// The run ended: the bar goes, the totals stay.
    pub fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let done = self.done.lock().unwrap();
        eprintln!(
            "{} of {} trials finished in {:.1}s",
            done.0,
            self.total.load(Ordering::Relaxed),
            self.started.elapsed().as_secs_f64()
        );
    }
}
