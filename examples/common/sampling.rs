//! The sampling flags of `generate` and `chat`, and where each setting comes from: the
//! flag when given, else the model file's `general.sampling.*` keys, else the demo's
//! fallback (SmolLM2-Instruct's model-card settings), else llama.cpp's defaults.

use std::time::{SystemTime, UNIX_EPOCH};

use rocmforge::model::generate::{SamplingDefaults, SamplingParams};

/// The settings of SmolLM2-135M-Instruct's model card
/// (<https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct>: `temperature=0.2,
/// top_p=0.9`), used for the settings that neither the command line nor the model file
/// gives.
pub const MODEL_CARD: SamplingDefaults = SamplingDefaults {
    temperature: Some(0.2),
    top_k: None,
    top_p: Some(0.9),
    min_p: None,
    repeat_penalty: None,
    repeat_last_n: None,
};

const MODEL_CARD_NAME: &str = "SmolLM2-Instruct's model-card settings";

/// The sampling flags, flattened into an example's arguments. Each is optional: see
/// [`order_help`] for what an absent one becomes.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Sampling (see the order below)")]
pub struct SamplingArgs {
    #[arg(long, value_name = "T", value_parser = finite,
          help = with_default("Temperature; 0 = greedy (always the most likely token)", |p| p.temperature.to_string()))]
    pub temperature: Option<f32>,
    #[arg(long, value_name = "K",
          help = with_default("Keep the K most likely tokens; 0 = all", |p| p.top_k.to_string()))]
    pub top_k: Option<usize>,
    #[arg(long, value_name = "P", value_parser = probability,
          help = with_default("Nucleus sampling threshold; 1 = off", |p| p.top_p.to_string()))]
    pub top_p: Option<f32>,
    #[arg(long, value_name = "P", value_parser = probability,
          help = with_default("Min-p threshold; 0 = off", |p| p.min_p.to_string()))]
    pub min_p: Option<f32>,
    #[arg(long, value_name = "R", value_parser = positive,
          help = with_default("Repetition penalty over the last 64 tokens (or the model file's penalty_last_n); 1 = off", |p| p.repeat_penalty.to_string()))]
    pub repeat_penalty: Option<f32>,
    /// Random seed: the same seed gives the same text [default: from the clock]
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
}

/// The flag's help with its default: the model file's, else the fallback's value.
fn with_default(help: &str, value: impl Fn(&SamplingParams) -> String) -> String {
    let fallback = MODEL_CARD.apply(SamplingParams::default());
    format!(
        "{help} [default: the model file's, else {}]",
        value(&fallback)
    )
}

/// The `--help` text that says where each sampling setting comes from.
/// `json`: the example has `--json`, whose "sampling" object says it too.
pub fn order_help(json: bool) -> String {
    let d = SamplingParams::default();
    format!(
        "Each sampling setting (--temperature, --top-k, --top-p, --min-p, --repeat-penalty) is, in order:\n  \
         1. the flag, when given;\n  \
         2. else the model file's general.sampling.* key (llama.cpp's keys), when it has it;\n  \
         3. else the examples' fallback, {MODEL_CARD_NAME}: {};\n  \
         4. else llama.cpp's defaults: {}.\n\
         A line on stderr says which came from where{}.",
        describe_values(&MODEL_CARD),
        describe_values(&SamplingDefaults {
            temperature: Some(d.temperature),
            top_k: Some(d.top_k),
            top_p: Some(d.top_p),
            min_p: Some(d.min_p),
            repeat_penalty: Some(d.repeat_penalty),
            repeat_last_n: Some(d.repeat_last_n),
        }),
        if json {
            " (with --json, the \"sampling\" object)"
        } else {
            ""
        },
    )
}

fn describe_values(d: &SamplingDefaults) -> String {
    settings(d)
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name} {v}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each setting by its flag's name, with its value when present.
fn settings(d: &SamplingDefaults) -> [(&'static str, Option<String>); 6] {
    [
        ("temperature", d.temperature.map(|v| v.to_string())),
        ("top-k", d.top_k.map(|v| v.to_string())),
        ("top-p", d.top_p.map(|v| v.to_string())),
        ("min-p", d.min_p.map(|v| v.to_string())),
        ("repeat-penalty", d.repeat_penalty.map(|v| v.to_string())),
        ("repeat-last-n", d.repeat_last_n.map(last_n)),
    ]
}

fn last_n(n: usize) -> String {
    if n == usize::MAX {
        "all".to_string()
    } else {
        n.to_string()
    }
}

/// Where a setting came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Flag,
    ModelFile,
    ModelCard,
    Library,
}

impl Source {
    fn json_name(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::ModelFile => "model_file",
            Source::ModelCard => "model_card",
            Source::Library => "llama_cpp_default",
        }
    }
}

/// The sampling settings in effect, and where each came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What to sample with.
    pub params: SamplingParams,
    /// Per setting, in the order of [`settings`].
    sources: [Source; 6],
    file_has_keys: bool,
    seed_given: bool,
}

impl SamplingArgs {
    /// The settings in effect, given what the model file recommends
    /// (`Generator::sampling_defaults`).
    pub fn resolve(&self, from_file: SamplingDefaults) -> Resolved {
        let flags = SamplingDefaults {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: None,
        };
        let seed = self.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let params = flags.or(from_file).or(MODEL_CARD).apply(SamplingParams {
            seed,
            ..SamplingParams::default()
        });
        let (f, m, c) = (
            settings(&flags),
            settings(&from_file),
            settings(&MODEL_CARD),
        );
        let sources = std::array::from_fn(|i| {
            if f[i].1.is_some() {
                Source::Flag
            } else if m[i].1.is_some() {
                Source::ModelFile
            } else if c[i].1.is_some() {
                Source::ModelCard
            } else {
                Source::Library
            }
        });
        Resolved {
            params,
            sources,
            file_has_keys: !from_file.is_empty(),
            seed_given: self.seed.is_some(),
        }
    }
}

impl Resolved {
    fn values(&self) -> [(&'static str, Option<String>); 6] {
        let p = &self.params;
        settings(&SamplingDefaults {
            temperature: Some(p.temperature),
            top_k: Some(p.top_k),
            top_p: Some(p.top_p),
            min_p: Some(p.min_p),
            repeat_penalty: Some(p.repeat_penalty),
            repeat_last_n: Some(p.repeat_last_n),
        })
    }

    /// One line for stderr: the settings grouped by where they came from, then the seed.
    /// `sampling: temperature 0.2, top-p 0.9 (the model file has no general.sampling.*
    /// keys: SmolLM2-Instruct's model-card settings); top-k 40, ... (llama.cpp's
    /// defaults); seed 123 (from the clock)`
    pub fn describe(&self) -> String {
        let values = self.values();
        let mut groups = Vec::new();
        for source in [
            Source::Flag,
            Source::ModelFile,
            Source::ModelCard,
            Source::Library,
        ] {
            let names: Vec<String> = values
                .iter()
                .zip(self.sources)
                .enumerate()
                .filter(|&(i, (_, s))| {
                    // repeat-last-n is shown only when the model file sets it; else it
                    // is the library's 64 that "repeat-penalty" implies.
                    s == source && (values[i].0 != "repeat-last-n" || s == Source::ModelFile)
                })
                .map(|(_, ((name, value), _))| {
                    format!("{name} {}", value.as_deref().unwrap_or("?"))
                })
                .collect();
            if names.is_empty() {
                continue;
            }
            let origin = match source {
                Source::Flag => "command line".to_string(),
                Source::ModelFile => "the model file's general.sampling.*".to_string(),
                Source::ModelCard if self.file_has_keys => MODEL_CARD_NAME.to_string(),
                Source::ModelCard => {
                    format!("the model file has no general.sampling.* keys: {MODEL_CARD_NAME}")
                }
                Source::Library => "llama.cpp's defaults".to_string(),
            };
            groups.push(format!("{} ({origin})", names.join(", ")));
        }
        let seed = if self.seed_given {
            format!("seed {}", self.params.seed)
        } else {
            format!("seed {} (from the clock)", self.params.seed)
        };
        format!("sampling: {}; {seed}", groups.join("; "))
    }

    /// The settings in effect as JSON, with where each came from.
    pub fn to_json(&self) -> serde_json::Value {
        let p = &self.params;
        let names = [
            "temperature",
            "top_k",
            "top_p",
            "min_p",
            "repeat_penalty",
            "repeat_last_n",
        ];
        let sources: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(self.sources)
            .map(|(name, s)| (name.to_string(), s.json_name().into()))
            .chain([(
                "seed".to_string(),
                if self.seed_given { "flag" } else { "clock" }.into(),
            )])
            .collect();
        serde_json::json!({
            "temperature": json_f32(p.temperature),
            "top_k": p.top_k,
            "top_p": json_f32(p.top_p),
            "min_p": json_f32(p.min_p),
            "repeat_penalty": json_f32(p.repeat_penalty),
            // llama.cpp's -1: the whole context.
            "repeat_last_n": if p.repeat_last_n == usize::MAX { -1 } else { p.repeat_last_n as i64 },
            "seed": p.seed,
            "sources": sources,
        })
    }
}

/// An `f32` as the JSON number it reads as (`0.2`, not `0.20000000298023224`).
fn json_f32(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn number(s: &str) -> Result<f32, String> {
    s.parse::<f32>()
        .map_err(|_| format!("'{s}' is not a number"))
}

fn finite(s: &str) -> Result<f32, String> {
    number(s).and_then(|x| {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("{s} is not finite"))
        }
    })
}

fn probability(s: &str) -> Result<f32, String> {
    number(s).and_then(|x| {
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err(format!("{s} is not between 0 and 1"))
        }
    })
}

fn positive(s: &str) -> Result<f32, String> {
    number(s).and_then(|x| {
        if x.is_finite() && x > 0.0 {
            Ok(x)
        } else {
            Err(format!("{s} is not a finite number above 0"))
        }
    })
}
