//! The LoRA+ parameter groups, assigned exactly as the reference code assigns them.

use std::fmt;

use loraplus_model::ParamInfo;

/// The four groups of the LoRA+ reference (`lora_plus.py`, PEFT `create_loraplus_optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// `lora_A` and every other trainable matrix (e.g. the task head): rate `eta_A`.
    A,
    /// `lora_B` and every trainable 1-D tensor: rate `eta_A * ratio`.
    B,
    /// The part of `B` excluded from weight decay (biases, LayerNorm): rate `eta_A * ratio`,
    /// decay 0.
    BNoDecay,
    /// Both factors of embedding adapters: their own rate (`lr_embedding`).
    Embedding,
}

impl Group {
    /// All groups, in table order.
    pub const ALL: [Group; 4] = [Group::A, Group::B, Group::BNoDecay, Group::Embedding];

    /// The group of a parameter, or `None` if it is frozen.
    ///
    /// The order of the tests is the reference's: embedding adapter first, then `lora_B` or 1-D
    /// (split by decay), and everything else is `A`. Decay exclusion follows Hugging Face's
    /// `get_parameter_names(model, ALL_LAYERNORM_LAYERS)` minus names containing `bias`.
    pub fn of(param: &ParamInfo) -> Option<Group> {
        if !param.trainable {
            return None;
        }
        // `lora_b` here; `b` inside Burn's own `LoraAdapter` (from `Module::apply_lora`).
        let is_lora_b = param.name() == "lora_b" || (param.name() == "b" && param.is_inside("LoraAdapter"));
        let group = if param.is_inside("LoraEmbedding") && param.is_inside("LowRank") {
            Group::Embedding
        } else if is_lora_b || param.shape.len() == 1 {
            let no_decay = param.is_inside("LayerNorm") || param.name().contains("bias");
            if no_decay { Group::BNoDecay } else { Group::B }
        } else {
            Group::A
        };
        Some(group)
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Group::A => "A",
            Group::B => "B",
            Group::BNoDecay => "B (no decay)",
            Group::Embedding => "embedding",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::ParamId;

    fn param(path: &str, shape: &[usize], modules: &[&str]) -> ParamInfo {
        ParamInfo {
            id: ParamId::new(),
            path: path.into(),
            shape: shape.to_vec(),
            trainable: true,
            modules: modules.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn reference_rules() {
        let lora_a = param("q.adapter.lora_a", &[8, 2], &["LoraLinear", "LowRank"]);
        let lora_b = param("q.adapter.lora_b", &[2, 8], &["LoraLinear", "LowRank"]);
        let head_w = param("classifier.weight", &[8, 3], &["Linear"]);
        let head_b = param("classifier.bias", &[3], &["Linear"]);
        let ln = param("ln.gamma", &[8], &["LayerNorm"]);
        let scale = param("gate.scale", &[8], &["Gate"]);
        let emb_a = param("w.adapter.lora_a", &[100, 2], &["LoraEmbedding", "LowRank"]);
        let emb_b = param("w.adapter.lora_b", &[2, 8], &["LoraEmbedding", "LowRank"]);
        assert_eq!(Group::of(&lora_a), Some(Group::A));
        assert_eq!(Group::of(&lora_b), Some(Group::B));
        assert_eq!(Group::of(&head_w), Some(Group::A));
        assert_eq!(
            Group::of(&head_b),
            Some(Group::BNoDecay),
            "a 1-D bias is in B, without decay"
        );
        assert_eq!(Group::of(&ln), Some(Group::BNoDecay));
        assert_eq!(
            Group::of(&scale),
            Some(Group::B),
            "1-D, neither bias nor LayerNorm: B with decay"
        );
        assert_eq!(Group::of(&emb_a), Some(Group::Embedding));
        assert_eq!(Group::of(&emb_b), Some(Group::Embedding));
        let frozen = ParamInfo {
            trainable: false,
            ..lora_a
        };
        assert_eq!(Group::of(&frozen), None);
    }
}
