//! Chat templates against llama.cpp: `tests/fixtures/chat_template.jsonl` (reference data:
//! conversations, the prompt llama.cpp rendered from SmolLM2's template, and its ids).

use rocmforge_model::chat_template::{
    apply_chat_template, ChatMessage, ChatOptions, ChatTemplate, ChatTemplateError,
};
use rocmforge_model::tokenizer::{TokenId, Tokenizer, TokenizerSpec};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn smollm2() -> Tokenizer {
    let m: Value = serde_json::from_str(&fixture("smollm2_tokenizer.json")).unwrap();
    let strs = |k: &str| -> Vec<String> {
        m[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let spec = TokenizerSpec {
        model: m["tokenizer.ggml.model"].as_str().unwrap().to_string(),
        pre: Some(m["tokenizer.ggml.pre"].as_str().unwrap().to_string()),
        tokens: strs("tokenizer.ggml.tokens"),
        token_types: Some(
            m["tokenizer.ggml.token_type"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap() as i32)
                .collect(),
        ),
        merges: Some(strs("tokenizer.ggml.merges")),
        bos_token_id: Some(1),
        eos_token_id: Some(2),
        unknown_token_id: Some(0),
        padding_token_id: Some(2),
        add_bos_token: Some(false),
        add_space_prefix: Some(false),
        chat_template: Some(m["tokenizer.chat_template"].as_str().unwrap().to_string()),
        ..TokenizerSpec::default()
    };
    Tokenizer::from_spec(&spec).unwrap()
}

#[test]
fn reference_conversations_render_exactly() {
    let tok = smollm2();
    let data = fixture("chat_template.jsonl");
    let mut n = 0;
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["name"].as_str().unwrap();
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let prompt = apply_chat_template(&tok, &messages, true).unwrap();
        assert_eq!(prompt, case["prompt"].as_str().unwrap(), "{name}: prompt");
        let want: Vec<TokenId> = case["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as TokenId)
            .collect();
        assert_eq!(
            tok.encode(&prompt, true, true).unwrap(),
            want,
            "{name}: ids"
        );
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn default_system_message_comes_from_the_template() {
    let tok = smollm2();
    let with_gen = apply_chat_template(&tok, &[ChatMessage::user("Hi")], true).unwrap();
    assert!(with_gen.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    assert!(with_gen.ends_with("<|im_start|>assistant\n"));
    let without = apply_chat_template(&tok, &[ChatMessage::user("Hi")], false).unwrap();
    assert_eq!(format!("{without}<|im_start|>assistant\n"), with_gen);
    // No messages: nothing but the generation prompt.
    assert_eq!(
        apply_chat_template(&tok, &[], true).unwrap(),
        "<|im_start|>assistant\n"
    );
}

#[test]
fn common_template_features() {
    // A Llama-3-style template: bos_token, namespace, loop vars, strip, raise_exception.
    let src = r#"{{- bos_token }}
{%- set ns = namespace(sys='') %}
{%- for m in messages %}
    {%- if m['role'] == 'system' %}{% set ns.sys = m['content'] | trim %}{% continue %}{% endif %}
    {%- if m['role'] not in ['user', 'assistant'] %}{{ raise_exception('bad role ' + m['role']) }}{% endif %}
    {{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'].strip() + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
{{- '[' ~ ns.sys ~ ']' }}"#;
    let t = ChatTemplate::new(src).unwrap();
    let opts = ChatOptions {
        bos_token: "<|begin_of_text|>".into(),
        ..ChatOptions::default()
    };
    let out = t
        .render(
            &[ChatMessage::system(" be brief "), ChatMessage::user(" hi ")],
            &opts,
        )
        .unwrap();
    assert_eq!(
        out,
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n[be brief]"
    );
    let err = t
        .render(&[ChatMessage::new("tool", "x")], &opts)
        .unwrap_err();
    assert_eq!(err, ChatTemplateError::Raised("bad role tool".into()));
}

#[test]
fn missing_template_is_an_error() {
    let spec = TokenizerSpec {
        model: "llama".into(),
        tokens: vec!["<unk>".into(), "<s>".into(), "</s>".into(), "▁a".into()],
        ..TokenizerSpec::default()
    };
    let tok = Tokenizer::from_spec(&spec).unwrap();
    assert_eq!(
        apply_chat_template(&tok, &[ChatMessage::user("a")], true),
        Err(ChatTemplateError::Missing)
    );
}

#[test]
fn long_conversations_fit_the_work_limit() {
    let tok = smollm2();
    let messages: Vec<ChatMessage> = (0..2000)
        .map(|i| {
            if i % 2 == 0 {
                ChatMessage::user(format!("question {i}"))
            } else {
                ChatMessage::assistant(format!("answer {i}"))
            }
        })
        .collect();
    let out = apply_chat_template(&tok, &messages, true).unwrap();
    assert!(out.ends_with("<|im_start|>assistant\n"));
    assert_eq!(out.matches("<|im_start|>").count(), 2002);
}

/// A chat template comes from a model file: a stranger's code. Loops, recursion, huge
/// ranges, repetitions and outputs end in an error, quickly, with the process intact.
#[test]
fn hostile_templates_are_errors_not_hangs_or_huge_allocations() {
    use rocmforge_model::chat_template::{ChatOptions, ChatTemplate, ChatTemplateError};
    let render = |src: &str| {
        ChatTemplate::new(src)
            .and_then(|t| t.render(&[ChatMessage::user("hi")], &ChatOptions::default()))
    };
    for (src, what) in [
        ("{{ 'x' * 2000000000 }}", "repeated string is too large"),
        (
            "{% for i in range(1000000000) %}x{% endfor %}",
            "too many elements",
        ),
        (
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "recursion limit",
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "fuel",
        ),
    ] {
        let err = render(src).expect_err(src);
        assert!(
            matches!(err, ChatTemplateError::Render(_)) && err.to_string().contains(what),
            "{src}: {err}"
        );
    }
    // 1 GB of output from 20,000 small steps: stopped at the output limit.
    let err = render("{% for i in range(20000) %}{{ 'x' * 50000 }}{% endfor %}").unwrap_err();
    assert!(matches!(err, ChatTemplateError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("MiB"), "{err}");
    // Just under the limit is fine.
    let out = render("{% for i in range(300) %}{{ 'x' * 50000 }}{% endfor %}").unwrap();
    assert_eq!(out.len(), 15_000_000);
}
