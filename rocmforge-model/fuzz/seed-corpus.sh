#!/usr/bin/env bash
# Seeds the corpus of the gguf_reader fuzz target (fuzz/corpus/gguf_reader/,
# git-ignored): the first 64 KiB of the demo model, the demo model's header
# without its tensor data, and small files written by the GGUF writer.
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
