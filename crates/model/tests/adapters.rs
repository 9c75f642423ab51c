//! Attaching adapters to whole models, merging them, and the PEFT on-disk format.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use loraplus_model::models::{
    self, BertClassifier, BertClassifierConfig, BertConfig, Mlp, MlpConfig, Pooling, ToyWidthConfig,
};
use loraplus_model::{
    AttachConfig, LoraConfig, LoraInit, LoraModel, LoraScaling, attach, format_param_table, init, members, merge,
    param_counts, param_table, peft, unmerge, with_dropout_seed, with_member_dropout,
};

fn tiny_bert() -> BertConfig {
    BertConfig::new(50, 16, 2, 4, 32)
        .with_hidden_dropout_prob(0.0)
        .with_attention_probs_dropout_prob(0.0)
        .with_max_position_embeddings(12)
}

fn bert(device: &Device, pooling: Pooling) -> BertClassifier {
    BertClassifierConfig::new(tiny_bert(), 3)
        .with_pooling(pooling)
        .init(&mut init::rng(0), device)
}

fn batch(device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let ids = Tensor::from_data(
        TensorData::new(vec![2i64, 7, 9, 4, 0, 0, 3, 8, 8, 1, 5, 6], [2, 6]),
        device,
    );
    let mask = Tensor::from_data(
        TensorData::new(vec![1i64, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1], [2, 6]),
        device,
    );
    (ids, mask)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

/// Gives every adapter a random `B` so that adapters change outputs.
fn randomize_adapters<M: LoraModel>(mut model: M, device: &Device) -> M {
    let mut rng = init::rng(99);
    for site in model.linear_sites() {
        if let Some(adapter) = site.layer.adapter.as_mut() {
            adapter.lora_b = Param::from_tensor(init::normal(adapter.lora_b.dims(), 0.3, &mut rng, device));
        }
    }
    for site in model.embedding_sites() {
        if let Some(adapter) = site.layer.adapter.as_mut() {
            adapter.lora_a = Param::from_tensor(init::normal(adapter.lora_a.dims(), 0.3, &mut rng, device));
        }
    }
    model
}

/// Collects every float parameter's values in visiting order.
struct Collect<'a>(&'a mut Vec<Vec<f32>>);

impl burn::module::ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(values(param.val()));
    }
}

/// Collects every trainable parameter's gradient in visiting order.
struct CollectGrads<'a>(&'a burn::tensor::Gradients, Vec<Vec<f32>>);

impl burn::module::ModuleVisitor for CollectGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = param.grad(self.0) {
            self.1.push(values(grad));
        }
    }
}

fn grads_of(model: &BertClassifier, loss: Tensor<1>) -> Vec<Vec<f32>> {
    let grads = loss.backward();
    let mut collect = CollectGrads(&grads, Vec::new());
    model.visit(&mut collect);
    collect.1
}

fn query_value(rank: usize) -> AttachConfig {
    AttachConfig::new(
        LoraConfig::new(rank).with_alpha(16.0),
        vec!["query".into(), "value".into()],
    )
}

#[test]
fn attach_by_target_freezes_everything_but_adapters_and_head() {
    let device = Device::flex().autodiff();
    let model = attach(bert(&device, Pooling::Mean), &query_value(4), &mut init::rng(1)).unwrap();
    let table = param_table(&model);
    let trainable: Vec<&str> = table.iter().filter(|p| p.trainable).map(|p| p.path.as_str()).collect();
    for path in &trainable {
        let ok = path.contains("query.adapter") || path.contains("value.adapter") || path.starts_with("classifier.");
        assert!(ok, "{path} should be frozen");
    }
    // 2 layers x (query, value) x (A: 16x4 + B: 4x16) + classifier 16x3 + 3.
    let (n_trainable, n_total) = param_counts(&table);
    assert_eq!(n_trainable, 2 * 2 * (64 + 64) + 48 + 3);
    assert_eq!(n_total, model.num_params());
    let printed = format_param_table(&table);
    assert!(
        printed.contains("bert.encoder.layer.0.attention.self_attention.query.adapter.lora_a"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("trainable params: {n_trainable} || all params: {n_total}")),
        "{printed}"
    );
}

#[test]
fn backward_computes_no_gradient_for_the_frozen_base() {
    let device = Device::flex().autodiff();
    let model = attach(bert(&device, Pooling::Cls), &query_value(2), &mut init::rng(1)).unwrap();
    let model = randomize_adapters(model, &device);
    let (ids, mask) = batch(&device);
    let grads = model.forward(ids, mask, None).sum().backward();
    let layer = &model.bert.encoder.layer[1];
    let query = &layer.attention.self_attention.query;
    assert!(query.base.weight.grad(&grads).is_none());
    assert!(layer.attention.self_attention.key.base.weight.grad(&grads).is_none());
    assert!(layer.output.dense.base.weight.grad(&grads).is_none());
    assert!(model.bert.embeddings.word_embeddings.base.weight.grad(&grads).is_none());
    assert!(layer.output.layer_norm.gamma.grad(&grads).is_none());
    assert!(query.adapter.as_ref().unwrap().lora_a.grad(&grads).is_some());
    assert!(model.classifier.weight.grad(&grads).is_some());
}

#[test]
fn unknown_target_and_oversized_rank_are_rejected_with_the_allowed_values() {
    let device = Device::flex().autodiff();
    let config = AttachConfig::new(LoraConfig::new(2), vec!["query".into(), "qkv".into()]);
    let err = attach(bert(&device, Pooling::Mean), &config, &mut init::rng(1))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown LoRA target `qkv` for BertClassifier; allowed: word_embeddings, query, key, value, output, ffn_in, ffn_out"
    );
    let err = attach(bert(&device, Pooling::Mean), &query_value(17), &mut init::rng(1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rank 17 is too large for layer `bert.encoder.layer.0.attention.self.query` (16 -> 16)"),
        "{err}"
    );
    let none = AttachConfig::new(LoraConfig::new(2), vec![]);
    assert!(
        attach(bert(&device, Pooling::Mean), &none, &mut init::rng(1))
            .unwrap_err()
            .to_string()
            .contains("no LoRA targets")
    );
}

#[test]
fn adapted_model_starts_at_the_base_model() {
    let device = Device::flex();
    let base = bert(&device, Pooling::Cls);
    let (ids, mask) = batch(&device);
    let expected = values(base.forward(ids.clone(), mask.clone(), None));
    let all = AttachConfig::new(
        LoraConfig::new(2).with_init(LoraInit::Gaussian),
        [
            "word_embeddings",
            "query",
            "key",
            "value",
            "output",
            "ffn_in",
            "ffn_out",
        ]
        .map(String::from)
        .to_vec(),
    );
    let adapted = attach(base, &all, &mut init::rng(1)).unwrap();
    assert_eq!(values(adapted.forward(ids, mask, None)), expected);
}

#[test]
fn merging_every_adapter_keeps_the_output_and_unmerging_restores_the_weights() {
    let device = Device::flex();
    let config = AttachConfig::new(
        LoraConfig::new(3).with_scaling(LoraScaling::RankStabilized),
        ["word_embeddings", "query", "value", "ffn_out"]
            .map(String::from)
            .to_vec(),
    );
    let model = randomize_adapters(
        attach(bert(&device, Pooling::Mean), &config, &mut init::rng(1)).unwrap(),
        &device,
    );
    let (ids, mask) = batch(&device);
    let expected = values(model.forward(ids.clone(), mask.clone(), None));
    let w0 = values(
        model.bert.encoder.layer[0]
            .attention
            .self_attention
            .query
            .base
            .weight
            .val(),
    );
    let merged = merge(model);
    let merged_w = values(
        merged.bert.encoder.layer[0]
            .attention
            .self_attention
            .query
            .base
            .weight
            .val(),
    );
    assert!(merged_w.iter().zip(&w0).any(|(a, b)| a != b), "merging changed W0");
    assert_close(&values(merged.forward(ids, mask, None)), &expected, 1e-5);
    let restored = unmerge(merged);
    assert_close(
        &values(
            restored.bert.encoder.layer[0]
                .attention
                .self_attention
                .query
                .base
                .weight
                .val(),
        ),
        &w0,
        1e-6,
    );
}

#[test]
fn padding_does_not_change_a_sequence_output() {
    let device = Device::flex();
    for pooling in [Pooling::Mean, Pooling::Cls] {
        let model = bert(&device, pooling);
        let (ids, mask) = batch(&device);
        let padded = values(model.forward(ids.clone().slice([0..1, 0..6]), mask.clone().slice([0..1, 0..6]), None));
        let trimmed = values(model.forward(ids.slice([0..1, 0..4]), mask.slice([0..1, 0..4]), None));
        assert_close(&padded, &trimmed, 1e-5);
    }
}

#[test]
fn peft_round_trip_is_exact_and_uses_peft_names_and_layouts() {
    let device = Device::flex().autodiff();
    let config = AttachConfig::new(
        LoraConfig::new(4).with_alpha(8.0).with_dropout(0.1),
        ["word_embeddings", "query", "value"].map(String::from).to_vec(),
    );
    let trained = randomize_adapters(
        attach(bert(&device, Pooling::Mean), &config, &mut init::rng(1)).unwrap(),
        &device,
    );
    let dir = tempfile::tempdir().unwrap();
    peft::save(&trained, &config, Some("SEQ_CLS"), Some("tiny-bert"), dir.path()).unwrap();

    // Key names and shapes, as PEFT writes them for BertForSequenceClassification.
    let bytes = std::fs::read(dir.path().join(peft::WEIGHTS_FILE)).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut keys: Vec<(String, Vec<usize>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect();
    keys.sort();
    let p = "base_model.model.bert";
    let mut expected = vec![
        ("base_model.model.classifier.bias".to_string(), vec![3]),
        ("base_model.model.classifier.weight".to_string(), vec![3, 16]),
        (format!("{p}.embeddings.word_embeddings.lora_embedding_A"), vec![4, 50]),
        (format!("{p}.embeddings.word_embeddings.lora_embedding_B"), vec![16, 4]),
    ];
    for i in 0..2 {
        for m in ["query", "value"] {
            expected.push((
                format!("{p}.encoder.layer.{i}.attention.self.{m}.lora_A.weight"),
                vec![4, 16],
            ));
            expected.push((
                format!("{p}.encoder.layer.{i}.attention.self.{m}.lora_B.weight"),
                vec![16, 4],
            ));
        }
    }
    expected.sort();
    assert_eq!(keys, expected);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(peft::CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["task_type"], "SEQ_CLS");
    assert_eq!(json["r"], 4);
    assert_eq!(json["lora_alpha"], 8.0);
    assert_eq!(json["modules_to_save"], serde_json::json!(["classifier"]));
    assert!(
        json["target_modules"]
            .as_array()
            .unwrap()
            .contains(&"bert.encoder.layer.1.attention.self.value".into())
    );

    // PyTorch layout: lora_A.weight is A transposed.
    let query = &trained.bert.encoder.layer[0].attention.self_attention.query;
    let a = values(query.adapter.as_ref().unwrap().lora_a.val().transpose());
    let stored = file
        .tensor(&format!("{p}.encoder.layer.0.attention.self.query.lora_A.weight"))
        .unwrap();
    let stored: Vec<f32> = stored
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(stored, a);

    // Load into a fresh copy of the same base: identical adapters, head and outputs.
    let (loaded, loaded_config) = peft::load(bert(&device, Pooling::Mean), dir.path()).unwrap();
    assert_eq!(loaded_config.lora, config.lora);
    assert!(loaded_config.train_head);
    let mut targets = loaded_config.targets.clone();
    targets.sort();
    assert_eq!(targets, ["query", "value", "word_embeddings"]);
    // Every parameter comes back bit for bit (frozen base included: it was never in the file).
    let (loaded_table, trained_table) = (param_table(&loaded), param_table(&trained));
    assert_eq!(loaded_table.len(), trained_table.len());
    let by_path = |model: &BertClassifier| {
        let mut all = Vec::new();
        model.visit(&mut Collect(&mut all));
        all
    };
    assert_eq!(by_path(&loaded), by_path(&trained));
    for (l, t) in loaded_table.iter().zip(&trained_table) {
        assert_eq!((&l.path, &l.shape, l.trainable), (&t.path, &t.shape, t.trainable));
    }
    // Outputs agree up to summation order (the loaded factors are transposed views).
    let (ids, mask) = batch(&device);
    assert_close(
        &values(loaded.valid().forward(ids.clone(), mask.clone(), None)),
        &values(trained.valid().forward(ids, mask, None)),
        1e-6,
    );
}

#[test]
fn peft_load_names_missing_misshapen_and_unexpected_tensors() {
    let device = Device::flex().autodiff();
    let trained = attach(bert(&device, Pooling::Mean), &query_value(2), &mut init::rng(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    peft::save(&trained, &query_value(2), None, None, dir.path()).unwrap();
    let weights = dir.path().join(peft::WEIGHTS_FILE);
    let original = std::fs::read(&weights).unwrap();
    let file = safetensors::SafeTensors::deserialize(&original).unwrap();
    type Edit<'a> = &'a dyn Fn(&str, Vec<usize>) -> Option<(String, Vec<usize>)>;
    let rewrite = |edit: Edit| {
        let owned: Vec<(String, Vec<usize>, Vec<u8>)> = file
            .tensors()
            .into_iter()
            .filter_map(|(name, view)| {
                edit(&name, view.shape().to_vec()).map(|(n, shape)| {
                    let len: usize = shape.iter().product::<usize>() * 4;
                    let mut data = view.data().to_vec();
                    data.resize(len, 0);
                    (n, shape, data)
                })
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = owned
            .iter()
            .map(|(n, s, d)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap(),
                )
            })
            .collect();
        std::fs::write(&weights, safetensors::serialize(views, None).unwrap()).unwrap();
        peft::load(bert(&device, Pooling::Mean), dir.path())
            .expect_err("load fails")
            .to_string()
    };
    let key = "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight";
    let err = rewrite(&|name, shape| (name != key).then(|| (name.to_string(), shape)));
    assert!(
        err.contains(&format!("missing tensor `{key}` (expected shape [16, 2])")),
        "{err}"
    );
    let err = rewrite(&|name, shape| Some((name.to_string(), if name == key { vec![16, 3] } else { shape })));
    assert!(
        err.contains(&format!("tensor `{key}` has shape [16, 3], expected [16, 2]")),
        "{err}"
    );
    let err = rewrite(&|name, shape| {
        Some((
            name.replace("layer.1.attention.self.value", "layer.1.attention.self.valu"),
            shape,
        ))
    });
    assert!(
        err.contains("missing tensor") || err.contains("unexpected tensor"),
        "{err}"
    );
    std::fs::write(&weights, b"not safetensors").unwrap();
    let err = peft::load(bert(&device, Pooling::Mean), dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("adapter_model.safetensors: not a safetensors file"),
        "{err}"
    );
}

#[test]
fn peft_load_accepts_peft_style_suffix_targets() {
    // PEFT users write `target_modules = ["query", "value"]`; the suffix rule selects every layer.
    let device = Device::flex().autodiff();
    let trained = attach(bert(&device, Pooling::Mean), &query_value(2), &mut init::rng(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    peft::save(&trained, &query_value(2), None, None, dir.path()).unwrap();
    let path = dir.path().join(peft::CONFIG_FILE);
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["target_modules"] = serde_json::json!(["query", "value"]);
    std::fs::write(&path, json.to_string()).unwrap();
    let (_, config) = peft::load(bert(&device, Pooling::Mean), dir.path()).unwrap();
    assert_eq!(config.targets, vec!["query".to_string(), "value".to_string()]);
}

#[test]
fn toy_and_mlp_models_adapt_their_hidden_layers() {
    let device = Device::flex().autodiff();
    let toy: Mlp = ToyWidthConfig::new(8, 64, 4).init(&mut init::rng(0), &device);
    assert_eq!(toy.hidden[0].dims(), [64, 64]);
    let config = AttachConfig::new(LoraConfig::new(4), vec!["hidden".into()]).with_train_head(false);
    let toy = attach(toy, &config, &mut init::rng(1)).unwrap();
    let (trainable, _) = param_counts(&param_table(&toy));
    assert_eq!(trainable, 64 * 4 + 4 * 64, "only the n x n layer's adapter trains");
    let x: Tensor<2> = init::normal([5, 8], 1.0, &mut init::rng(2), &device);
    assert_eq!(toy.forward(x).dims(), [5, 4]);

    let mlp = MlpConfig::new(10, vec![32, 16, 8], 3).init(&mut init::rng(0), &device);
    let err = attach(
        mlp,
        &AttachConfig::new(LoraConfig::new(2), vec!["query".into()]),
        &mut init::rng(1),
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "unknown LoRA target `query` for Mlp; allowed: input, hidden"
    );
}

#[test]
fn stacked_members_compute_what_each_member_computes_alone() {
    const K: usize = 3;
    let device = Device::flex().autodiff();
    let with_dropout = tiny_bert()
        .with_hidden_dropout_prob(0.1)
        .with_attention_probs_dropout_prob(0.1);
    let model = BertClassifierConfig::new(with_dropout, 3).init(&mut init::rng(0), &device);
    let targets = AttachConfig::new(
        LoraConfig::new(2).with_dropout(0.2),
        vec!["query".into(), "value".into(), "word_embeddings".into()],
    );
    let adapted = attach(model, &targets, &mut init::rng(1)).unwrap();
    // Random adapters and head, different for every member.
    let mut stacked = randomize_adapters(members::stack(adapted, K).unwrap(), &device);
    stacked.classifier.weight = Param::from_tensor(init::normal([K * 16, 3], 0.5, &mut init::rng(2), &device));
    assert_eq!(members::count(&mut stacked), Some(K));

    let (ids, mask) = batch(&device);
    let logits = with_member_dropout(7, K, || {
        stacked.forward(ids.clone().repeat_dim(0, K), mask.clone().repeat_dim(0, K), None)
    });
    let stacked_logits = values(logits.clone());
    let stacked_grads = grads_of(&stacked, logits.powi_scalar(2).sum());
    for k in 0..K {
        let alone = members::member(stacked.clone(), k, K);
        let logits = with_dropout_seed(7, || alone.forward(ids.clone(), mask.clone(), None));
        assert_close(&stacked_logits[6 * k..6 * (k + 1)], &values(logits.clone()), 1e-5);
        let grads = grads_of(&alone, logits.powi_scalar(2).sum());
        assert_eq!(grads.len(), stacked_grads.len(), "the same trainable tensors");
        for (stacked, alone) in stacked_grads.iter().zip(&grads) {
            let n = alone.len();
            assert_close(&stacked[n * k..n * (k + 1)], alone, 1e-4);
        }
    }
}

#[test]
fn a_merged_checkpoint_loads_back_as_the_adapted_model() {
    // Adapters on attention, the feed-forward and the embeddings, non-zero, and a CLS pooler.
    let device = Device::flex();
    let config = AttachConfig::new(
        LoraConfig::new(2).with_alpha(8.0),
        ["query", "value", "ffn_out", "word_embeddings"]
            .map(String::from)
            .to_vec(),
    );
    let adapted = attach(bert(&device, Pooling::Cls), &config, &mut init::rng(1)).unwrap();
    let adapted = randomize_adapters(adapted, &device);
    let dir = tempfile::tempdir().unwrap();
    let base_config = serde_json::json!({
        "model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 32, "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 12
    });
    let labels = ["neg", "neu", "pos"].map(String::from);
    models::save_pretrained(&adapted, &base_config, &labels, dir.path()).unwrap();

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        json["architectures"],
        serde_json::json!(["BertForSequenceClassification"])
    );
    assert_eq!(json["id2label"]["2"], "pos");
    assert_eq!(json["label2id"]["neu"], 1);
    // The encoder and pooler load as a plain checkpoint; the head is checked by its tensors.
    let read = models::read_bert_config(dir.path()).unwrap();
    let loaded = BertClassifierConfig::new(read, 3)
        .with_pooling(Pooling::Cls)
        .init_pretrained(dir.path(), &mut init::rng(5), &device)
        .unwrap();
    let loaded = BertClassifier {
        classifier: adapted.classifier.clone(),
        ..loaded
    };
    let (ids, mask) = batch(&device);
    let expected = values(adapted.forward(ids.clone(), mask.clone(), None));
    assert_close(&values(loaded.forward(ids, mask, None)), &expected, 1e-5);
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let head = file.tensor("classifier.weight").unwrap();
    assert_eq!(head.shape(), [3, 16], "PyTorch's [out, in]");
    assert!(file.tensor("bert.pooler.dense.weight").is_ok());
    assert!(
        file.names().iter().all(|n| !n.contains("lora")),
        "merged: no adapter tensors"
    );
}
