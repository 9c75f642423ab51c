//! The tasks a sweep can name: each kind of task and how its data is made.

use loraplus_data::{BagOfTokensTask, TaskData, TeacherTask};
use serde::{Deserialize, Serialize};

/// How a task's data is made.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    /// Vectors `x ~ N(0, I)` labelled by a one-hidden-layer ReLU teacher.
    Teacher(TeacherTask),
    /// Token sequences labelled by the mean of per-token class scores.
    BagOfTokens(BagOfTokensTask),
}

impl TaskKind {
    /// Checks sizes and scales; on failure returns the key and what is allowed.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let (sizes, shift_scale) = match self {
            TaskKind::Teacher(t) => (
                vec![
                    ("d_input", t.d_input),
                    ("teacher_width", t.teacher_width),
                    ("n_train", t.n_train),
                ],
                t.shift_scale,
            ),
            TaskKind::BagOfTokens(t) => {
                if t.vocab < 2 {
                    return Err((
                        "vocab".into(),
                        format!("{} is too small; need at least 2 (id 0 is padding)", t.vocab),
                    ));
                }
                (vec![("seq_len", t.seq_len), ("n_train", t.n_train)], t.shift_scale)
            }
        };
        for (key, value) in sizes {
            if value == 0 {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        if self.n_classes() < 2 {
            return Err((
                "n_classes".into(),
                format!("{} is too few; need at least 2", self.n_classes()),
            ));
        }
        let (n_val, n_test) = self.eval_sizes();
        if n_val == 0 || n_test == 0 {
            return Err((
                "n_val".into(),
                "validation and test splits need at least 1 example each".into(),
            ));
        }
        if !(shift_scale.is_finite() && shift_scale >= 0.0) {
            return Err((
                "shift_scale".into(),
                format!("{shift_scale} is not allowed; must be >= 0"),
            ));
        }
        Ok(())
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        match self {
            TaskKind::Teacher(t) => t.n_classes,
            TaskKind::BagOfTokens(t) => t.n_classes,
        }
    }

    fn eval_sizes(&self) -> (usize, usize) {
        match self {
            TaskKind::Teacher(t) => (t.n_val, t.n_test),
            TaskKind::BagOfTokens(t) => (t.n_val, t.n_test),
        }
    }

    /// Training examples.
    pub fn n_train(&self) -> usize {
        match self {
            TaskKind::Teacher(t) => t.n_train,
            TaskKind::BagOfTokens(t) => t.n_train,
        }
    }

    /// Generates the three splits; the same config always gives the same data.
    pub fn generate(&self) -> TaskData {
        match self {
            TaskKind::Teacher(t) => t.generate(),
            TaskKind::BagOfTokens(t) => t.generate(),
        }
    }
}
