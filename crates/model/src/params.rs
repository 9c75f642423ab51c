//! What a model's parameters are: path, shape, owning module types, and whether they train.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use std::fmt::Write;

/// One float parameter of a module tree.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Burn's id, stable for the life of the module.
    pub id: ParamId,
    /// Dotted path of field names, e.g. `layers.0.adapter.lora_b`.
    pub path: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Whether it requires a gradient. Only an autodiff device tracks gradients, so on a plain
    /// device every parameter reads as frozen.
    pub trainable: bool,
    /// The struct types enclosing it, outermost first, e.g. `["Mlp", "LoraLinear", "LowRank"]`.
    pub modules: Vec<String>,
}

impl ParamInfo {
    /// The last path segment, e.g. `lora_b`, `bias`, `gamma`.
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether a module of type `name` encloses it.
    pub fn is_inside(&self, name: &str) -> bool {
        self.modules.iter().any(|m| m == name)
    }
}

/// Every float parameter of `module`, in visiting order.
pub fn param_table<M: Module>(module: &M) -> Vec<ParamInfo> {
    let mut visitor = TableVisitor::default();
    module.visit(&mut visitor);
    visitor.rows
}

/// `(trainable, total)` scalar counts.
pub fn param_counts(table: &[ParamInfo]) -> (usize, usize) {
    let trainable = table.iter().filter(|p| p.trainable).map(ParamInfo::numel).sum();
    (trainable, table.iter().map(ParamInfo::numel).sum())
}

/// A printable table: one row per parameter, then the totals, like PEFT's
/// `print_trainable_parameters`.
pub fn format_param_table(table: &[ParamInfo]) -> String {
    let width = table.iter().map(|p| p.path.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<width$}  {:>14}  {:>10}  trainable\n", "path", "shape", "params");
    for p in table {
        let shape = format!("{:?}", p.shape);
        let mark = if p.trainable { "yes" } else { "-" };
        writeln!(out, "{:<width$}  {shape:>14}  {:>10}  {mark}", p.path, p.numel()).unwrap();
    }
    let (trainable, total) = param_counts(table);
    let percent = 100.0 * trainable as f64 / total.max(1) as f64;
    writeln!(
        out,
        "trainable params: {trainable} || all params: {total} || trainable%: {percent:.4}"
    )
    .unwrap();
    out
}

#[derive(Default)]
struct TableVisitor {
    path: Vec<String>,
    /// The struct type that declared each entered field; `None` for Vec/tuple indices.
    owners: Vec<Option<String>>,
    rows: Vec<ParamInfo>,
}

impl ModuleVisitor for TableVisitor {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.owners
            .push(container_type.strip_prefix("Struct:").map(str::to_string));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.owners.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        self.rows.push(ParamInfo {
            id: param.id,
            path: self.path.join("."),
            shape: value.dims().to_vec(),
            trainable: value.is_require_grad(),
            modules: self.owners.iter().flatten().cloned().collect(),
        });
    }
}
