//! Chat templates: the model's `tokenizer.chat_template` (Jinja) rendered with minijinja,
//! with the context llama.cpp gives it (`messages`, `add_generation_prompt`, `bos_token`,
//! `eos_token`, `enable_thinking`, `date_string`, `datetime`), the helpers templates call
//! (`raise_exception`, `strftime_now`, Python string and dict methods, a Python-style
//! `tojson`), and llama.cpp's block handling (`trim_blocks` and `lstrip_blocks` on).
//!
//! ```no_run
//! # use rocmforge_model::chat_template::{apply_chat_template, ChatMessage};
//! # use rocmforge_model::tokenizer::Tokenizer;
//! # fn tok() -> Tokenizer { unimplemented!() }
//! let tok = tok();
//! let prompt = apply_chat_template(&tok, &[ChatMessage::user("Hi!")], true)?;
//! let ids = tok.encode(&prompt, true, true)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, ErrorKind};

use crate::tokenizer::Tokenizer;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, or whatever the template knows.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Why a chat template could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatTemplateError {
    /// The model has no `tokenizer.chat_template`.
    #[error(
        "the model has no chat template (tokenizer.chat_template is missing); \
         format the prompt yourself or pass a template with ChatTemplate::new"
    )]
    Missing,
    /// The template is not valid Jinja (for minijinja).
    #[error("the chat template does not parse: {0}")]
    Syntax(String),
    /// The template called `raise_exception` (it rejects these messages).
    #[error("the chat template rejected the conversation: {0}")]
    Raised(String),
    /// Rendering failed otherwise.
    #[error("the chat template failed while rendering: {0}")]
    Render(String),
    /// The rendered text grew past the limit (a template that writes without end).
    #[error(
        "the chat template's output grew past {} MiB; a chat prompt is far smaller, so the \
         template is broken or hostile",
        .limit >> 20
    )]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// What a template is rendered with besides the messages.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOptions {
    /// Ask the template to open the assistant's turn at the end.
    pub add_generation_prompt: bool,
    /// The text of the BOS token (`bos_token` in the template).
    pub bos_token: String,
    /// The text of the EOS token (`eos_token` in the template).
    pub eos_token: String,
    /// `enable_thinking` (llama.cpp passes `true` unless told otherwise).
    pub enable_thinking: bool,
    /// More variables, as JSON values (llama.cpp's `chat_template_kwargs`); they override
    /// the defaults above, as in llama.cpp.
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            add_generation_prompt: true,
            bos_token: String::new(),
            eos_token: String::new(),
            enable_thinking: true,
            extra: BTreeMap::new(),
        }
    }
}

/// A parsed chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
}

const TEMPLATE_NAME: &str = "chat_template";
/// Instructions one render may execute (real templates need thousands per message).
const TEMPLATE_FUEL: u64 = 5_000_000;
/// The most bytes one render may write. A prompt of a whole 128k-token context is about
/// half a MiB of text.
const MAX_RENDERED_BYTES: usize = 16 << 20;
/// The largest `tojson(indent=..)` honoured.
const MAX_JSON_INDENT: usize = 64;

impl ChatTemplate {
    /// Parses a Jinja chat template.
    pub fn new(source: &str) -> Result<Self, ChatTemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Templates come from model files: bound the work one render may do.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| ChatTemplateError::Syntax(describe(&e)))?;
        Ok(Self { env })
    }

    /// The template of a tokenizer's model.
    pub fn from_tokenizer(tok: &Tokenizer) -> Result<Self, ChatTemplateError> {
        Self::new(tok.chat_template().ok_or(ChatTemplateError::Missing)?)
    }

    /// Renders the conversation.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
    ) -> Result<String, ChatTemplateError> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatTemplateError::Render(describe(&e)))?;
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                let mut map = BTreeMap::new();
                map.insert("role", Value::from(m.role.as_str()));
                map.insert("content", Value::from(m.content.as_str()));
                Value::from(map)
            })
            .collect();
        let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
        ctx.insert("messages".into(), Value::from(msgs));
        ctx.insert("bos_token".into(), Value::from(options.bos_token.as_str()));
        ctx.insert("eos_token".into(), Value::from(options.eos_token.as_str()));
        ctx.insert(
            "enable_thinking".into(),
            Value::from(options.enable_thinking),
        );
        let now = unix_now();
        ctx.insert(
            "date_string".into(),
            Value::from(format_time(now, "%d %b %Y")),
        );
        ctx.insert("datetime".into(), Value::from(format_time(now, "%b %d %Y")));
        // llama.cpp sets it only when true.
        if options.add_generation_prompt {
            ctx.insert("add_generation_prompt".into(), Value::from(true));
        }
        for (k, v) in &options.extra {
            ctx.insert(k.clone(), Value::from_serialize(v));
        }
        let mut out = BoundedOutput {
            bytes: Vec::new(),
            limit: MAX_RENDERED_BYTES,
            overflowed: false,
        };
        let rendered = tmpl.render_captured_to(ctx, &mut out);
        if out.overflowed {
            return Err(ChatTemplateError::TooLarge { limit: out.limit });
        }
        rendered.map_err(|e| {
            if e.kind() == ErrorKind::InvalidOperation {
                if let Some(msg) = e.detail().and_then(|d| d.strip_prefix(RAISED)) {
                    return ChatTemplateError::Raised(msg.to_string());
                }
            }
            ChatTemplateError::Render(describe(&e))
        })?;
        // minijinja writes only whole `str`s.
        String::from_utf8(out.bytes)
            .map_err(|e| ChatTemplateError::Render(format!("output is not UTF-8: {e}")))
    }
}

/// The render's output, refusing to grow past `limit` bytes: the write that would cross
/// it fails, which stops the render.
struct BoundedOutput {
    bytes: Vec<u8>,
    limit: usize,
    /// A write was refused: `render` reports [`ChatTemplateError::TooLarge`].
    overflowed: bool,
}

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(std::io::Error::other("chat template output limit reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `messages` with the tokenizer's own template as llama.cpp does: `bos_token`
/// and `eos_token` are the texts of the model's BOS/EOS tokens, and when the tokenizer
/// adds BOS (or EOS) itself, a BOS at the start (EOS at the end) of the rendered text is
/// removed so that encoding with `add_special` does not double it.
pub fn apply_chat_template(
    tok: &Tokenizer,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
) -> Result<String, ChatTemplateError> {
    let template = ChatTemplate::from_tokenizer(tok)?;
    let text_of = |id: Option<u32>| {
        id.and_then(|id| tok.token_to_piece(id, true).ok())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default()
    };
    let options = ChatOptions {
        add_generation_prompt,
        bos_token: text_of(tok.bos_id()),
        eos_token: text_of(tok.eos_id()),
        ..ChatOptions::default()
    };
    let mut out = template.render(messages, &options)?;
    if tok.add_bos() && !options.bos_token.is_empty() && out.starts_with(&options.bos_token) {
        out.drain(..options.bos_token.len());
    }
    if tok.add_eos() && !options.eos_token.is_empty() && out.ends_with(&options.eos_token) {
        out.truncate(out.len() - options.eos_token.len());
    }
    Ok(out)
}

const RAISED: &str = "raise_exception: ";

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn raise_exception(msg: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("{RAISED}{msg}"),
    ))
}

fn strftime_now(format: String) -> String {
    format_time(unix_now(), &format)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// A small `strftime` (UTC) for the formats chat templates use.
fn format_time(unix: i64, format: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (h, mi, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let month = MONTHS[((m - 1).clamp(0, 11)) as usize];
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let is_leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[((m - 1).clamp(0, 11)) as usize] + d + i64::from(is_leap && m > 2);

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:2}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('I') => out.push_str(&format!("{:02}", if h % 12 == 0 { 12 } else { h % 12 })),
            Some('p') => out.push_str(if h < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{mi:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('b') | Some('h') => out.push_str(&month[..3]),
            Some('B') => out.push_str(month),
            Some('a') => out.push_str(&weekday[..3]),
            Some('A') => out.push_str(weekday),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Python's `json.dumps` as Hugging Face templates expect it (`, ` and `: ` separators,
/// non-ASCII kept, no HTML escaping), with `indent`, `separators` and `ensure_ascii`.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match v.kind() {
            ValueKind::Number => {
                let n = usize::try_from(i64::try_from(v)?).unwrap_or(0);
                Some(" ".repeat(n.min(MAX_JSON_INDENT)))
            }
            ValueKind::String => Some(
                v.as_str()
                    .unwrap_or("")
                    .chars()
                    .take(MAX_JSON_INDENT)
                    .collect(),
            ),
            _ => None,
        },
    };
    let (mut item_sep, mut key_sep) = (
        if indent.is_some() { "," } else { ", " }.to_string(),
        ": ".to_string(),
    );
    if let Some(seps) = separators {
        if let Ok(mut it) = seps.try_iter() {
            if let Some(a) = it.next() {
                item_sep = a.to_string();
            }
            if let Some(b) = it.next() {
                key_sep = b.to_string();
            }
        }
    }
    let json = serde_json::to_value(value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    let fmt = JsonFmt {
        indent: indent.as_deref(),
        item_sep: &item_sep,
        key_sep: &key_sep,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
    };
    fmt.write(&json, 0, &mut out);
    Ok(Value::from(out))
}

struct JsonFmt<'a> {
    indent: Option<&'a str>,
    item_sep: &'a str,
    key_sep: &'a str,
    ensure_ascii: bool,
    sort_keys: bool,
}

impl JsonFmt<'_> {
    fn newline(&self, depth: usize, out: &mut String) {
        if let Some(ind) = self.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    }

    fn write(&self, v: &serde_json::Value, depth: usize, out: &mut String) {
        use serde_json::Value as J;
        match v {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Number(n) => out.push_str(&n.to_string()),
            J::String(s) => self.string(s, out),
            J::Array(a) => {
                if a.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep);
                    }
                    self.newline(depth + 1, out);
                    self.write(x, depth + 1, out);
                }
                self.newline(depth, out);
                out.push(']');
            }
            J::Object(o) => {
                if o.is_empty() {
                    out.push_str("{}");
                    return;
                }
                let mut entries: Vec<(&String, &serde_json::Value)> = o.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (k, x)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep);
                    }
                    self.newline(depth + 1, out);
                    self.string(k, out);
                    out.push_str(self.key_sep);
                    self.write(x, depth + 1, out);
                }
                self.newline(depth, out);
                out.push('}');
            }
        }
    }

    fn string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0C}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.ensure_ascii && !c.is_ascii() => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_basics() {
        // 2024-07-26 13:25:09 UTC, a Friday.
        let t = 1_722_000_309;
        assert_eq!(format_time(t, "%d %b %Y"), "26 Jul 2024");
        assert_eq!(
            format_time(t, "%A %B %e %H:%M:%S %j %%"),
            "Friday July 26 13:25:09 208 %"
        );
        assert_eq!(format_time(0, "%Y-%m-%d %a"), "1970-01-01 Thu");
    }

    #[test]
    fn tojson_is_python_style() {
        let t = ChatTemplate::new(r#"{{ x | tojson }}|{{ x | tojson(indent=2) }}"#).unwrap();
        let mut extra = BTreeMap::new();
        extra.insert(
            "x".to_string(),
            serde_json::json!({"a": [1, "é<"], "b": null}),
        );
        let out = t
            .render(
                &[],
                &ChatOptions {
                    extra,
                    ..ChatOptions::default()
                },
            )
            .unwrap();
        assert_eq!(
            out,
            "{\"a\": [1, \"é<\"], \"b\": null}|{\n  \"a\": [\n    1,\n    \"é<\"\n  ],\n  \"b\": null\n}"
        );
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}").unwrap();
        assert_eq!(
            t.render(&[], &ChatOptions::default()),
            Err(ChatTemplateError::Raised("no system role".to_string()))
        );
    }

    #[test]
    fn runaway_templates_stop() {
        let t = ChatTemplate::new(
            "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}x{% endfor %}{% endfor %}{% endfor %}",
        )
        .unwrap();
        assert!(matches!(
            t.render(&[], &ChatOptions::default()),
            Err(ChatTemplateError::Render(_))
        ));
    }

    #[test]
    fn syntax_error_is_reported() {
        assert!(matches!(
            ChatTemplate::new("{% for %}"),
            Err(ChatTemplateError::Syntax(_))
        ));
    }

    #[test]
    fn python_methods_and_blocks() {
        let t = ChatTemplate::new(
            "{% for m in messages %}\n  {{ m.content.strip() | upper }}{% if not loop.last %},{% endif %}\n{% endfor %}",
        )
        .unwrap();
        let out = t
            .render(
                &[ChatMessage::user(" a "), ChatMessage::user("b ")],
                &ChatOptions::default(),
            )
            .unwrap();
        // Same as Python's jinja2 with trim_blocks and lstrip_blocks.
        assert_eq!(out, "  A,  B");
    }
}
