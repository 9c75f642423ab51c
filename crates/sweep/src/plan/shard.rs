//! Shards: deterministic, disjoint slices of a sweep's trials, one per job of a Slurm job array
//! (or a Kubernetes Indexed Job), so that a cluster's scheduler runs the sweep and this crate
//! only decides which trials each job owns.
//!
//! The trials are put in family order (the families of [`super::groups`]: trials that differ only
//! in eta_A and ratio, in the order of [`super::expand`]) and cut into `N`
//! contiguous slices whose sizes differ by at most one. Whole families stay together as far as
//! the cut allows, so a shard's trials still train stacked.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result};

use super::identity::groups;
use super::spec::TrialSpec;

/// Shard `index` of `count` (0-based, `index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which slice, from 0.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        anyhow::ensure!(count >= 1, "a shard count must be at least 1, not {count}");
        anyhow::ensure!(
            index < count,
            "shard index {index} is out of range for {count} shards (allowed: 0 to {})",
            count - 1
        );
        Ok(Self { index, count })
    }

    /// The trials of `trials` (a config's whole expansion) that belong to this shard, in
    /// their original order.
    pub fn select<'a>(&self, trials: &'a [TrialSpec]) -> Vec<&'a TrialSpec> {
        let shards = assignment(trials, self.count);
        trials
            .iter()
            .zip(shards)
            .filter(|(_, s)| *s == self.index)
            .map(|(t, _)| t)
            .collect()
    }

    /// The shard a scheduler assigned to this process through its environment, if any.
    ///
    /// Slurm job arrays: with `count` given (`--shards N`), `SLURM_ARRAY_TASK_ID` is the shard
    /// index itself, so any subset of `0..N` can be submitted (`--array=0,3-5` reruns those
    /// shards); without it the array is taken to be whole: the index counts from
    /// `SLURM_ARRAY_TASK_MIN` and the count is `SLURM_ARRAY_TASK_COUNT`. Kubernetes Indexed
    /// Jobs give only `JOB_COMPLETION_INDEX`, so `count` must be given.
    pub fn from_env(count: Option<usize>) -> Result<Option<Self>> {
        Self::from_vars(|name| std::env::var(name).ok(), count)
    }

    /// [`Shard::from_env`] over any variable lookup (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, count: Option<usize>) -> Result<Option<Self>> {
        let number = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|value| {
                    value
                        .trim()
                        .parse::<usize>()
                        .with_context(|| format!("${name} is `{value}`, not a non-negative integer"))
                })
                .transpose()
        };
        if let Some(task_id) = number("SLURM_ARRAY_TASK_ID")? {
            if let Some(count) = count {
                return Self::new(task_id, count)
                    .map(Some)
                    .context("$SLURM_ARRAY_TASK_ID is not a shard of --shards (submit --array within 0-<N-1>)");
            }
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = number("SLURM_ARRAY_TASK_COUNT")?
                .context("$SLURM_ARRAY_TASK_ID is set but $SLURM_ARRAY_TASK_COUNT is not: pass --shards N")?;
            let index = task_id
                .checked_sub(min)
                .with_context(|| format!("$SLURM_ARRAY_TASK_ID {task_id} is below $SLURM_ARRAY_TASK_MIN {min}"))?;
            return Self::new(index, count).map(Some).context(
                "the Slurm array is not a contiguous range: pass --shards N, the shard count, to use task ids as shard indices",
            );
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = count.context(
                "$JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but the shard count is not: \
                 pass --shards N with the Job's `completions`",
            )?;
            return Self::new(index, count).map(Some);
        }
        Ok(None)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, e.g. `0/4` for the first of four shards.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        let Some((index, count)) = parsed else {
            return Err(format!("`{s}` is not a shard: write I/N, e.g. 0/4 (0-based I < N)"));
        };
        Shard::new(index, count).map_err(|e| e.to_string())
    }
}

/// The shard of each of `trials` (a config's whole expansion) among `count` shards.
pub fn assignment(trials: &[TrialSpec], count: usize) -> Vec<usize> {
    let refs: Vec<&TrialSpec> = trials.iter().collect();
    let position: HashMap<String, usize> = trials.iter().enumerate().map(|(i, t)| (t.id(), i)).collect();
    let mut shards = vec![0; trials.len()];
    let family_order = groups(&refs, |_| usize::MAX).into_iter().flatten();
    for (rank, trial) in family_order.enumerate() {
        shards[position[&trial.id()]] = rank * count / trials.len();
    }
    shards
}

/// Sorted indices as a Slurm range list, e.g. `[0, 1, 2, 5, 7, 8]` -> `0-2,5,7-8`, the form
/// `sbatch --array` takes.
pub fn range_list(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(if sorted[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn trials(seeds: usize) -> Vec<TrialSpec> {
        crate::plan::expand(&crate::config::tiny_config(seeds))
    }

    #[test]
    fn shards_are_disjoint_balanced_and_cover_every_trial() {
        let trials = trials(5); // 5 families (seeds) of 4 trials (2 eta_A x ratios 1, 4).
        for count in 1..=7 {
            let shards = assignment(&trials, count);
            let mut seen = Vec::new();
            let mut sizes = Vec::new();
            for index in 0..count {
                let selected = Shard::new(index, count).unwrap().select(&trials);
                sizes.push(selected.len());
                seen.extend(selected.iter().map(|t| t.id()));
                assert!(
                    selected
                        .iter()
                        .all(|t| shards[trials.iter().position(|u| u == *t).unwrap()] == index)
                );
            }
            seen.sort();
            let mut all: Vec<String> = trials.iter().map(TrialSpec::id).collect();
            all.sort();
            assert_eq!(seen, all, "{count} shards: every trial exactly once");
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{count} shards: sizes {sizes:?}");
        }
        // One shard per family: each shard is exactly one seed's trials, so they stack.
        for index in 0..5 {
            let selected = Shard::new(index, 5).unwrap().select(&trials);
            assert!(selected.iter().all(|t| t.seed == selected[0].seed), "shard {index}");
        }
        assert_eq!(assignment(&trials, 3), assignment(&trials, 3), "deterministic");
    }

    #[test]
    fn parsing_names_what_is_allowed() {
        assert_eq!("2/5".parse::<Shard>().unwrap(), Shard { index: 2, count: 5 });
        assert!(
            "5/5"
                .parse::<Shard>()
                .unwrap_err()
                .contains("out of range for 5 shards")
        );
        assert!("0/0".parse::<Shard>().unwrap_err().contains("at least 1"));
        assert!("two".parse::<Shard>().unwrap_err().contains("write I/N"));
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_environment_names_the_shard() {
        assert_eq!(Shard::from_vars(vars(&[]), None).unwrap(), None);
        let slurm = vars(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "4")]);
        assert_eq!(
            Shard::from_vars(slurm, None).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        let one_based = vars(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::from_vars(one_based, None).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        // A resubmitted subset of shards: the task id is the shard index.
        let subset = vars(&[("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "2")]);
        assert_eq!(
            Shard::from_vars(&subset, Some(8)).unwrap(),
            Some(Shard { index: 5, count: 8 })
        );
        let error = format!("{:#}", Shard::from_vars(&subset, None).unwrap_err());
        assert!(error.contains("pass --shards N"), "{error}");
        let k8s = vars(&[("JOB_COMPLETION_INDEX", "1")]);
        let error = Shard::from_vars(&k8s, None).unwrap_err().to_string();
        assert!(error.contains("pass --shards N"), "{error}");
        assert_eq!(
            Shard::from_vars(&k8s, Some(2)).unwrap(),
            Some(Shard { index: 1, count: 2 })
        );
        let garbage = vars(&[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "4")]);
        assert!(format!("{:#}", Shard::from_vars(garbage, None).unwrap_err()).contains("`x`"));
    }

    #[test]
    fn ranges_are_slurm_array_syntax() {
        assert_eq!(range_list(&[8, 0, 1, 2, 5, 7]), "0-2,5,7-8");
        assert_eq!(range_list(&[3]), "3");
        assert_eq!(range_list(&[]), "");
    }
}
