//! Fuzzes chat-template parsing and rendering: any template source and any conversation
//! must parse or give an error, render or give an error (never a panic), within the
//! render's fuel, and never write more than the output limit.
//!
//! Input layout: the template source, a NUL byte, then the conversation as messages
//! separated by NUL bytes (each `role\x01content`, a missing `\x01` meaning a user
//! message). Seeds: `./seed-corpus.sh` writes real templates and hostile ones to
//! `corpus/chat_template/`; `chat_template.dict` gives libFuzzer Jinja's keywords.
//!
//!     cargo +nightly fuzz run chat_template corpus/chat_template -- \
//!         -dict=chat_template.dict -max_total_time=60

#![no_main]

use libfuzzer_sys::fuzz_target;
use rocmforge_model::chat_template::{ChatMessage, ChatOptions, ChatTemplate, ChatTemplateError};

/// `ChatTemplate::render`'s output limit (16 MiB); a longer rendered text is a bug.
const MAX_RENDERED_BYTES: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let source = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let messages: Vec<ChatMessage> = parts
        .map(|m| {
            let m = String::from_utf8_lossy(m);
            match m.split_once('\x01') {
                Some((role, content)) => ChatMessage::new(role, content),
                None => ChatMessage::user(m),
            }
        })
        .collect();

    let template = match ChatTemplate::new(&source) {
        Ok(t) => t,
        Err(e) => {
            assert!(matches!(e, ChatTemplateError::Syntax(_)), "{e:?}");
            let _ = e.to_string();
            return;
        }
    };
    for add_generation_prompt in [false, true] {
        let options = ChatOptions {
            add_generation_prompt,
            bos_token: "<s>".into(),
            eos_token: "</s>".into(),
            ..ChatOptions::default()
        };
        match template.render(&messages, &options) {
            Ok(text) => assert!(text.len() <= MAX_RENDERED_BYTES, "{} bytes", text.len()),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
