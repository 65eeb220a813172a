//! Synthetic llama/qwen2 models with random weights, written with the GGUF writer: the
//! shapes and features a test asks for, at any width (tests share this module).

use rocmforge_model::gguf::{GgmlType, GgufFile, GgufWriter};

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub arch: &'static str,
    pub n_layers: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub n_rot: usize,
    pub n_vocab: usize,
    pub matrix_type: GgmlType,
    pub tied: bool,
    pub rope_freqs: bool,
    pub scaling_factor: Option<f32>,
    pub bias: bool,
}

pub const BASE: f32 = 10000.0;
pub const EPS: f32 = 1e-5;

pub fn head_dim(s: &Spec) -> usize {
    s.n_embd / s.n_heads
}

pub fn write_model(s: &Spec, drop: Option<&str>) -> GgufFile {
    let a = s.arch;
    let hd = head_dim(s);
    let (q, kv) = (s.n_heads * hd, s.n_kv_heads * hd);
    let mut w = GgufWriter::new();
    w.add("general.architecture", a).unwrap();
    w.add(format!("{a}.block_count"), s.n_layers as u32)
        .unwrap();
    w.add(format!("{a}.context_length"), 64u32).unwrap();
    w.add(format!("{a}.embedding_length"), s.n_embd as u32)
        .unwrap();
    w.add(format!("{a}.feed_forward_length"), s.n_ff as u32)
        .unwrap();
    w.add(format!("{a}.attention.head_count"), s.n_heads as u32)
        .unwrap();
    w.add(format!("{a}.attention.head_count_kv"), s.n_kv_heads as u32)
        .unwrap();
    w.add(format!("{a}.rope.freq_base"), BASE).unwrap();
    w.add(format!("{a}.rope.dimension_count"), s.n_rot as u32)
        .unwrap();
    w.add(format!("{a}.attention.layer_norm_rms_epsilon"), EPS)
        .unwrap();
    if let Some(f) = s.scaling_factor {
        w.add(format!("{a}.rope.scaling.type"), "linear").unwrap();
        w.add(format!("{a}.rope.scaling.factor"), f).unwrap();
    }
    let mut seed = 1u64;
    let mut add = |w: &mut GgufWriter<'_>, name: String, ty: GgmlType, dims: &[usize], scale| {
        seed += 1;
        if drop != Some(name.as_str()) {
            w.add_random_tensor(name, ty, dims, seed, scale).unwrap();
        }
    };
    let m = s.matrix_type;
    add(
        &mut w,
        "token_embd.weight".into(),
        m,
        &[s.n_embd, s.n_vocab],
        1.0,
    );
    if s.rope_freqs {
        // Positive divisors: written as values in [1, 8] by hand below.
        let n = s.n_rot / 2;
        let values: Vec<u8> = (0..n)
            .flat_map(|i| (1.0f32 + 7.0 * i as f32 / n as f32).to_le_bytes())
            .collect();
        w.add_tensor("rope_freqs.weight", GgmlType::F32, &[n], values)
            .unwrap();
    }
    let matrix_scale = |cols: usize| 1.0 / (cols as f32).sqrt() * 1.7;
    for l in 0..s.n_layers {
        let n = |t: &str| format!("blk.{l}.{t}");
        add(
            &mut w,
            n("attn_norm.weight"),
            GgmlType::F32,
            &[s.n_embd],
            1.0,
        );
        add(
            &mut w,
            n("attn_q.weight"),
            m,
            &[s.n_embd, q],
            matrix_scale(s.n_embd),
        );
        add(
            &mut w,
            n("attn_k.weight"),
            m,
            &[s.n_embd, kv],
            matrix_scale(s.n_embd),
        );
        add(
            &mut w,
            n("attn_v.weight"),
            m,
            &[s.n_embd, kv],
            matrix_scale(s.n_embd),
        );
        if s.bias {
            add(&mut w, n("attn_q.bias"), GgmlType::F32, &[q], 0.5);
            add(&mut w, n("attn_k.bias"), GgmlType::F32, &[kv], 0.5);
            add(&mut w, n("attn_v.bias"), GgmlType::F32, &[kv], 0.5);
        }
        add(
            &mut w,
            n("attn_output.weight"),
            m,
            &[q, s.n_embd],
            matrix_scale(q),
        );
        add(
            &mut w,
            n("ffn_norm.weight"),
            GgmlType::F32,
            &[s.n_embd],
            1.0,
        );
        add(
            &mut w,
            n("ffn_gate.weight"),
            m,
            &[s.n_embd, s.n_ff],
            matrix_scale(s.n_embd),
        );
        add(
            &mut w,
            n("ffn_up.weight"),
            m,
            &[s.n_embd, s.n_ff],
            matrix_scale(s.n_embd),
        );
        add(
            &mut w,
            n("ffn_down.weight"),
            m,
            &[s.n_ff, s.n_embd],
            matrix_scale(s.n_ff),
        );
    }
    add(
        &mut w,
        "output_norm.weight".into(),
        GgmlType::F32,
        &[s.n_embd],
        1.0,
    );
    if !s.tied {
        add(
            &mut w,
            "output.weight".into(),
            GgmlType::F16,
            &[s.n_embd, s.n_vocab],
            0.2,
        );
    }
    GgufFile::from_vec(w.to_vec().unwrap()).unwrap()
}
