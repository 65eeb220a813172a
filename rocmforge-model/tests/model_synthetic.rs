//! The forward pass on small synthetic models with random weights, against a naive `f64`
//! transformer written here from the formulas (no code shared with the model crate but the
//! dequantization of the weights, which rocmforge-kernels checks against ggml's own).
//!
//! The variants cover what the demo model does not: qwen2 (Q/K/V biases, NeoX RoPE), an
//! untied `output.weight`, Llama 3 `rope_freqs.weight`, linear RoPE scaling, partial
//! rotary dimensions, grouped-query attention, and weights in F32, F16, Q8_0 and Q4_K.
//! Prefill (all logits) and one-token decode steps are both compared.

use rocmforge_model::backend::cpu::{CpuArithmetic, CpuBackend};
use rocmforge_model::config::ModelConfig;
use rocmforge_model::gguf::{GgmlType, GgufFile, GgufWriter};
use rocmforge_model::kv_cache::KvCacheOptions;
use rocmforge_model::model::{Logits, Model};
use rocmforge_model::ModelError;

mod common;

use common::synthetic_model::{head_dim, write_model, Spec, BASE, EPS};

// ------------------------------------------------------------------- the naive reference

/// A tensor as `f64`, row-major with ggml's ne0 contiguous.
fn tensor(file: &GgufFile, name: &str) -> Vec<f64> {
    let t = file.tensor(name).unwrap();
    rocmforge_model::kernels::quant::dequantize(t.ty(), t.data(), t.n_elements())
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// `W·x` for a GGUF matrix of ggml dims `[cols, rows]`.
fn matvec(w: &[f64], x: &[f64]) -> Vec<f64> {
    w.chunks(x.len())
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn rms_norm(x: &[f64], w: &[f64]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + f64::from(EPS)).sqrt();
    x.iter().zip(w).map(|(v, g)| v * s * g).collect()
}

fn rope(s: &Spec, x: &mut [f64], pos: usize, factors: Option<&[f64]>) {
    let hd = head_dim(s);
    let scale = s.scaling_factor.map_or(1.0, |f| 1.0 / f64::from(f));
    for head in x.chunks_mut(hd) {
        for i in 0..s.n_rot / 2 {
            let freq = f64::from(BASE).powf(-2.0 * i as f64 / s.n_rot as f64);
            let ff = factors.map_or(1.0, |f| f[i]);
            let theta = scale * pos as f64 * freq / ff;
            let (a, b) = if s.arch == "qwen2" {
                (i, i + s.n_rot / 2)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * theta.cos() - x1 * theta.sin();
            head[b] = x0 * theta.sin() + x1 * theta.cos();
        }
    }
}

/// Logits of every position of `tokens`.
fn naive_forward(s: &Spec, file: &GgufFile, tokens: &[u32]) -> Vec<Vec<f64>> {
    let hd = head_dim(s);
    let group = s.n_heads / s.n_kv_heads;
    let embd = tensor(file, "token_embd.weight");
    let factors = s.rope_freqs.then(|| tensor(file, "rope_freqs.weight"));
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| embd[t as usize * s.n_embd..][..s.n_embd].to_vec())
        .collect();
    for l in 0..s.n_layers {
        let t = |n: &str| tensor(file, &format!("blk.{l}.{n}"));
        let (wq, wk, wv, wo) = (
            t("attn_q.weight"),
            t("attn_k.weight"),
            t("attn_v.weight"),
            t("attn_output.weight"),
        );
        let add_bias = |mut y: Vec<f64>, name: &str| {
            if s.bias {
                for (v, b) in y.iter_mut().zip(t(name)) {
                    *v += b;
                }
            }
            y
        };
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        let mut qs = Vec::new();
        for (pos, x) in xs.iter().enumerate() {
            let h = rms_norm(x, &t("attn_norm.weight"));
            let mut q = add_bias(matvec(&wq, &h), "attn_q.bias");
            let mut k = add_bias(matvec(&wk, &h), "attn_k.bias");
            let v = add_bias(matvec(&wv, &h), "attn_v.bias");
            rope(s, &mut q, pos, factors.as_deref());
            rope(s, &mut k, pos, factors.as_deref());
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        for (pos, x) in xs.iter_mut().enumerate() {
            let mut att = vec![0.0; s.n_heads * hd];
            for h in 0..s.n_heads {
                let kvh = h / group;
                let q = &qs[pos][h * hd..][..hd];
                let scores: Vec<f64> = (0..=pos)
                    .map(|j| {
                        let k = &ks[j][kvh * hd..][..hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, w) in e.iter().enumerate() {
                    for d in 0..hd {
                        att[h * hd + d] += w / z * vs[j][kvh * hd + d];
                    }
                }
            }
            for (xi, o) in x.iter_mut().zip(matvec(&wo, &att)) {
                *xi += o;
            }
            let h = rms_norm(x, &t("ffn_norm.weight"));
            let gate = matvec(&t("ffn_gate.weight"), &h);
            let up = matvec(&t("ffn_up.weight"), &h);
            let act: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            for (xi, o) in x.iter_mut().zip(matvec(&t("ffn_down.weight"), &act)) {
                *xi += o;
            }
        }
    }
    let out = if s.tied {
        embd
    } else {
        tensor(file, "output.weight")
    };
    let norm = tensor(file, "output_norm.weight");
    xs.iter()
        .map(|x| matvec(&out, &rms_norm(x, &norm)))
        .collect()
}

// ----------------------------------------------------------------------------- the tests

fn llama_base() -> Spec {
    Spec {
        arch: "llama",
        n_layers: 2,
        n_embd: 128,
        n_ff: 256,
        n_heads: 4,
        n_kv_heads: 2,
        n_rot: 32,
        n_vocab: 96,
        matrix_type: GgmlType::F32,
        tied: true,
        rope_freqs: false,
        scaling_factor: None,
        bias: false,
    }
}

fn check_against_naive(s: Spec) {
    let file = write_model(&s, None);
    let config = ModelConfig::from_gguf(&file).unwrap();
    assert_eq!(config.qkv_bias, s.bias);
    assert_eq!(config.tied_output, s.tied);
    // The exact arithmetic is the one to compare with an f64 reference (the default,
    // llama.cpp's, rounds activations to 8 bits and attention to f16).
    let backend = CpuBackend::new().with_arithmetic(CpuArithmetic::Exact);
    let model = Model::load(file, backend).unwrap();
    let tokens: Vec<u32> = vec![3, 17, 42, 5, 77, 95, 0, 60, 12, 33];
    let (prefill, decode) = tokens.split_at(7);

    let mut cache = model.new_cache(&KvCacheOptions::with_n_ctx(16)).unwrap();
    let mut ours = model.forward(&mut cache, prefill, Logits::All).unwrap();
    for &t in decode {
        ours.extend(model.forward(&mut cache, &[t], Logits::Last).unwrap());
    }
    let reference = naive_forward(&s, model.file(), &tokens);
    let mut max_err = 0.0f64;
    let mut max_abs = 0.0f64;
    for (pos, row) in reference.iter().enumerate() {
        for (i, &r) in row.iter().enumerate() {
            let o = f64::from(ours[pos * s.n_vocab + i]);
            max_err = max_err.max((o - r).abs());
            max_abs = max_abs.max(r.abs());
        }
    }
    assert!(max_abs > 0.5, "{s:?}: logits too small to be a test");
    assert!(
        max_err <= 1e-4 * max_abs.max(1.0),
        "{s:?}: logits differ from the naive reference by {max_err} (largest {max_abs})"
    );
}

#[test]
fn llama_gqa_tied_f32() {
    check_against_naive(Spec {
        n_rot: 32,
        ..llama_base()
    });
}

#[test]
fn llama_untied_rope_freqs_linear_scaling_partial_rotary_q8_0() {
    check_against_naive(Spec {
        matrix_type: GgmlType::Q8_0,
        tied: false,
        rope_freqs: true,
        scaling_factor: Some(4.0),
        n_rot: 16,
        n_heads: 4,
        n_kv_heads: 1,
        ..llama_base()
    });
}

#[test]
fn qwen2_bias_neox_q4_k() {
    check_against_naive(Spec {
        arch: "qwen2",
        n_embd: 256,
        n_ff: 512,
        n_heads: 4,
        n_kv_heads: 2,
        n_rot: 64,
        matrix_type: GgmlType::Q4_K,
        bias: true,
        ..llama_base()
    });
}

#[test]
fn qwen2_f16_multi_head_untied() {
    check_against_naive(Spec {
        arch: "qwen2",
        n_heads: 2,
        n_kv_heads: 2,
        n_rot: 64,
        matrix_type: GgmlType::F16,
        bias: true,
        tied: false,
        ..llama_base()
    });
}

#[test]
fn qwen2_without_biases_is_an_error_naming_the_tensor() {
    let s = Spec {
        arch: "qwen2",
        bias: true,
        ..llama_base()
    };
    let file = write_model(&s, Some("blk.1.attn_v.bias"));
    let err = Model::load(file, CpuBackend::new()).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { name, arch: "qwen2" } if name == "blk.1.attn_v.bias"),
        "{err:?}"
    );
}

#[test]
fn unsupported_weight_type_and_bad_shapes_are_errors() {
    // A 1-D tensor where a matrix belongs.
    let s = llama_base();
    let file = write_model(&s, None);
    let mut w = GgufWriter::new();
    w.add_all(file.metadata()).unwrap();
    for t in file.tensors() {
        if t.name() == "blk.0.ffn_up.weight" {
            w.add_random_tensor(t.name(), GgmlType::F32, &[s.n_embd * s.n_ff], 1, 1.0)
                .unwrap();
        } else {
            w.add_tensor(t.name(), t.ty(), t.dims(), t.data()).unwrap();
        }
    }
    let bad = GgufFile::from_vec(w.to_vec().unwrap()).unwrap();
    let err = Model::load(bad, CpuBackend::new()).unwrap_err();
    assert!(
        matches!(&err, ModelError::TensorShape { name, .. } if name == "blk.0.ffn_up.weight"),
        "{err:?}"
    );

    // A norm weight in a quantized type.
    let mut w = GgufWriter::new();
    w.add_all(file.metadata()).unwrap();
    for t in file.tensors() {
        if t.name() == "output_norm.weight" {
            w.add_random_tensor(t.name(), GgmlType::Q8_0, t.dims(), 1, 1.0)
                .unwrap();
        } else {
            w.add_tensor(t.name(), t.ty(), t.dims(), t.data()).unwrap();
        }
    }
    let bad = GgufFile::from_vec(w.to_vec().unwrap()).unwrap();
    let err = Model::load(bad, CpuBackend::new()).unwrap_err();
    assert!(
        matches!(&err, ModelError::UnsupportedTensorType { name, .. } if name == "output_norm.weight"),
        "{err:?}"
    );
    assert!(err.to_string().contains("q8_0") || err.to_string().contains("Q8_0"));
}
