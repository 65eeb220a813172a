#!/usr/bin/env bash
# Seeds the corpora of the fuzz targets (fuzz/corpus/, git-ignored):
# - gguf_reader: the first 64 KiB of the demo model, the demo model's header
#   without its tensor data, and small files written by the GGUF writer;
# - tokenizer: the tokenizer reference texts;
# - chat_template: real chat templates (ChatML as SmolLM2 ships it, Llama 3,
#   a namespace/system-prompt one) and hostile ones, each followed by a
#   conversation (see fuzz_targets/chat_template.rs for the layout).
#
# The demo model comes from scripts/fetch-demo-model.sh (or $ROCMFORGE_DEMO_MODEL);
# without it only the written files are seeded.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
corpus="$here/corpus/gguf_reader"
model="${ROCMFORGE_DEMO_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
mkdir -p "$corpus"

if [[ -f "$model" ]]; then
    head -c 65536 "$model" > "$corpus/demo-first-64k.gguf"
    demo_arg=("$model")
else
    echo "note: no demo model at $model (run scripts/fetch-demo-model.sh); seeding written files only" >&2
    demo_arg=()
fi

cargo run --quiet --release --manifest-path "$here/Cargo.toml" --example write_seeds -- \
    "$corpus" ${demo_arg[@]+"${demo_arg[@]}"}
ls -l "$corpus"

# Tokenizer: the reference texts.
mkdir -p "$here/corpus/tokenizer"
cp "$root/rocmforge-model/tests/fixtures/tokenize_public.jsonl" "$here/corpus/tokenizer/"

# Chat templates: template, NUL, messages separated by NUL (role \x01 content).
ct="$here/corpus/chat_template"
mkdir -p "$ct"
conv='\0system\001You are helpful.\0user\001Hi!\0assistant\001Hello.\0user\001What is 2+2?'
printf '%s'"$conv" "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %}" > "$ct/chatml"
printf '%s'"$conv" "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}" > "$ct/llama3"
printf '%s'"$conv" "{%- set ns = namespace(system='') -%}{%- for m in messages -%}{%- if m.role == 'system' -%}{%- set ns.system = ns.system ~ m.content -%}{%- endif -%}{%- endfor -%}[SYS]{{ ns.system }}[/SYS]{%- for m in messages if m.role != 'system' -%}{%- if (m.role == 'user') != (loop.index0 % 2 == 0) -%}{{ raise_exception('roles must alternate') }}{%- endif -%}[{{ m.role | upper }}]{{ m.content }}{{ eos_token if m.role == 'assistant' }}{%- endfor -%}" > "$ct/namespace"
printf '%s'"$conv" "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}" > "$ct/recursion"
printf '%s'"$conv" "{% for i in range(100000) %}{{ messages | tojson }}{% endfor %}" > "$ct/loop"
ls -l "$ct"
