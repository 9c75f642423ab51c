//! Parsing and validation: the errors a bad config gets, with their keys and lines.

use super::*;

/// `experiments/quick.toml`, shortened: an MLP and the toy network pretrained on one teacher
/// task and fine-tuned on another.
const QUICK: &str = r#"
name = "quick"
seeds = [0, 1]

[grid]
eta_a = { from = 1e-4, to = 3e-2, points = 5 }
ratio = [1, 4, 16, 64, 256]

[train]
steps = 500
batch_size = 32

[lora]
rank = 4

[[task]]
name = "teacher"
kind = "teacher"
d_input = 32
n_classes = 4
teacher_width = 32
n_train = 8000
n_val = 1000
n_test = 1000

[[task]]
name = "shift-r2"
kind = "teacher"
d_input = 32
n_classes = 4
teacher_width = 32
shift_rank = 2
shift_scale = 2.0
n_train = 2000
n_val = 1000
n_test = 1000

[[model]]
name = "mlp"
kind = "mlp"
hidden = [256, 256]
pretrain = { task = "teacher", steps = 2000 }

[[model]]
name = "toy512"
kind = "toy"
width = 512
pretrain = { task = "teacher", steps = 2000 }
"#;

/// The error `text` (`QUICK` with `from` replaced by `to`) fails with, after checking that it
/// names the file.
fn error(from: &str, to: &str) -> String {
    assert!(QUICK.contains(from), "`{from}` is in the config");
    let error = SweepConfig::parse(&QUICK.replace(from, to), Path::new("quick.toml")).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("quick.toml:"), "{message}");
    message
}

#[test]
fn the_base_config_parses() {
    SweepConfig::parse(QUICK, Path::new("quick.toml")).unwrap();
}

// The tests below are the inputs that made the `config_values` fuzz target (`scripts/fuzz.sh`)
// exhaust memory, time out or panic, cut down to the one value that did it, and pin the error
// that now stops them before anything is allocated.

#[test]
fn a_log_range_of_too_many_points_is_an_error_before_it_is_made() {
    let message = error("points = 5 }", "points = 5000000000000 }");
    assert!(
        message.starts_with("quick.toml:6: `grid.eta_a`: the grid has up to 140000000000000 trials"),
        "{message}"
    );
    assert!(message.contains("5000000000000 eta_a"), "{message}");
    assert!(message.contains("at most 100000 are allowed"), "{message}");
}

#[test]
fn axes_whose_product_exceeds_the_trial_cap_are_an_error() {
    let ten = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]";
    let text = QUICK
        .replace("seeds = [0, 1]", &format!("seeds = {ten}"))
        .replace("batch_size = 32", &format!("batch_size = {ten}\nwarmup_steps = {ten}"))
        .replace("rank = 4", &format!("rank = {ten}\nalpha = {ten}"));
    let message = SweepConfig::parse(&text, Path::new("quick.toml"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("the grid has up to 7000000 trials"), "{message}");
    // The list-valued keys follow the four grid sizes, in no promised order.
    assert!(
        message.contains("(2 pairs x 10 seeds x 5 eta_a x 7 ratio x "),
        "{message}"
    );
    for axis in ["10 batch_size", "10 warmup_steps", "10 rank", "10 alpha"] {
        assert!(message.contains(axis), "{axis} in {message}");
    }
}

#[test]
fn axes_whose_product_overflows_are_an_error() {
    let message = error("points = 5 }", &format!("points = {} }}", usize::MAX));
    assert!(
        message.contains("the grid has up to more than 18446744073709551615 trials"),
        "{message}"
    );
}

#[test]
fn a_model_too_large_to_build_is_an_error_before_it_is_built() {
    let message = error("hidden = [256, 256]", "hidden = [256000000, 256]");
    assert!(
        message.contains("`model.hidden`: model `mlp` has 73984001284 parameters on the inputs of task `teacher`"),
        "{message}"
    );
    assert!(message.contains("at most 1000000000"), "{message}");

    let message = error("width = 512", "width = 99999999999");
    assert!(message.contains("`model.width`: model `toy512` has"), "{message}");
}

#[test]
fn a_bert_too_large_to_build_is_an_error() {
    let text = r#"
name = "bert"
[grid]
eta_a = [1e-3]
ratio = [16]
[train]
steps = 30
[lora]
rank = 1
[[task]]
name = "tokens"
kind = "bag_of_tokens"
vocab = 30
seq_len = 8
n_classes = 2
n_train = 200
n_val = 40
n_test = 40
[[task]]
name = "tokens-shift"
kind = "bag_of_tokens"
vocab = 30
seq_len = 8
n_classes = 2
n_train = 100
n_val = 40
n_test = 40
[[model]]
name = "bert"
kind = "bert"
hidden_size = 1
num_hidden_layers = 100000000
num_attention_heads = 1
intermediate_size = 1
pretrain = { task = "tokens" }
"#;
    let message = SweepConfig::parse(text, Path::new("bert.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("`model.num_hidden_layers`: model `bert`: 100000000 is too many; at most 1000"),
        "{message}"
    );
    let fewer = text.replace("num_hidden_layers = 100000000", "num_hidden_layers = 2");
    SweepConfig::parse(&fewer, Path::new("bert.toml")).unwrap();

    let wide = fewer.replace("hidden_size = 1\n", "hidden_size = 100000\n");
    let message = SweepConfig::parse(&wide, Path::new("bert.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("`model.hidden_size`: model `bert` has 80006600004 parameters on the inputs of task `tokens`"),
        "{message}"
    );
}

#[test]
fn epochs_whose_step_count_overflows_are_an_error() {
    let message = error("steps = 500\n", "epochs = 1000000000000000000\n");
    assert!(
        message.contains("`train.epochs`: 1000000000000000000 epochs of 63 batches (task `shift-r2`)"),
        "{message}"
    );
    let fine = QUICK.replace("steps = 500\n", "epochs = 3\n");
    let config = SweepConfig::parse(&fine, Path::new("quick.toml")).unwrap();
    assert_eq!(crate::plan::expand(&config)[0].steps(), 3 * 63);
}

#[test]
fn an_error_points_at_the_line_of_the_task_or_model_it_is_about() {
    // The second `[[task]]` repeats the first's name: the error is at that task's `name`.
    let text = QUICK.replace("name = \"shift-r2\"", "name = \"teacher\"");
    let line = |text: &str| {
        let message = SweepConfig::parse(text, Path::new("quick.toml"))
            .unwrap_err()
            .to_string();
        let line: usize = message.split(':').nth(1).unwrap().parse().unwrap();
        (line, message)
    };
    let (at, message) = line(&text);
    assert!(
        message.contains("`task.name`: task `teacher` is defined twice"),
        "{message}"
    );
    assert_eq!(
        text[..text.rfind("name = \"teacher\"").unwrap()].lines().count() + 1,
        at
    );

    // The second model's pretraining recipe is wrong: the error is at its own `pretrain`.
    let second = QUICK.rfind("pretrain = { task = \"teacher\", steps = 2000 }").unwrap();
    let text = format!(
        "{}pretrain = {{ task = \"teacher\", steps = 0 }}{}",
        &QUICK[..second],
        &QUICK[second + "pretrain = { task = \"teacher\", steps = 2000 }".len()..]
    );
    let (at, message) = line(&text);
    assert!(
        message.contains("`model.pretrain`: model `toy512`: pretraining needs steps >= 1"),
        "{message}"
    );
    assert_eq!(text[..second].lines().count() + 1, at, "{message}");
}

#[test]
fn validation_reads_no_file_and_builds_no_model() {
    // A checkpoint that does not exist and a rank no layer of it could take: both are for the
    // training commands to find (`run::setup::load_config`), not for parsing.
    let text = r#"
name = "text"
[grid]
eta_a = [1e-3]
ratio = [4]
[train]
steps = 3
[lora]
rank = 100000
[[model]]
name = "minilm"
kind = "bert_checkpoint"
path = "/nonexistent/checkpoint"
[[task]]
name = "sentences"
kind = "text"
train = "/nonexistent/train.csv"
n_val = 2
n_test = 3
"#;
    SweepConfig::parse(text, Path::new("text.toml")).unwrap();
}

/// The name serde writes for `value` in configs and records.
fn serde_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value).unwrap().as_str().unwrap().to_string()
}

#[test]
fn each_enum_has_one_name_in_configs_tables_and_records() {
    use clap::ValueEnum;
    for metric in Metric::value_variants() {
        assert_eq!(serde_name(metric), metric.as_str());
        assert_eq!(metric.to_string(), metric.as_str().replace('_', " "));
    }
    for protocol in Protocol::value_variants() {
        assert_eq!(serde_name(protocol), protocol.as_str());
    }
    for device in DeviceChoice::value_variants() {
        assert_eq!(serde_name(device), device.as_str());
        let flag = device.to_possible_value().unwrap();
        assert_eq!(flag.get_name(), device.as_str(), "--device takes the config's name");
    }
    use crate::analysis::Edge;
    use crate::plan::Method;
    use crate::store::{Outcome, Status};
    for method in [Method::Lora, Method::HeadOnly] {
        assert_eq!(serde_name(method), method.as_str());
    }
    for status in [Status::Ok, Status::Diverged, Status::Failed] {
        assert_eq!(serde_name(status), status.as_str());
    }
    for outcome in [Outcome::Ok, Outcome::NoLearning, Outcome::Diverged, Outcome::Failed] {
        assert_eq!(serde_name(outcome), outcome.as_str());
    }
    for edge in [Edge::EtaAMin, Edge::EtaAMax, Edge::RatioMin, Edge::RatioMax] {
        assert_eq!(serde_name(edge), edge.as_str());
    }
}
