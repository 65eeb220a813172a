#!/usr/bin/env bash
# The measurements behind the quality table of docs/verification.md, on the GPU host:
# perplexity of the demo model on the evaluation text with exact arithmetic (f32, f32 KV
# cache) saved as the base, then the KL divergence from it of every arithmetic (fast,
# llama; each window as one batch = prefill, and token by token = decode), and of
# llama.cpp's CUDA build (`llama-perplexity --kl-divergence`, its default settings: f16
# KV cache, flash attention as it chooses) when /tmp/llama-build has it.
#
#   run-model.sh ./quality-table.sh [CHUNKS]     # results in $OUT (or /tmp/quality)
#   SYNTHETIC=llama3-8b:q4_0 run-model.sh ./quality-table.sh [CHUNKS]
#       # the same on a synthetic model of that shape and type (random weights, the demo
#       # model's tokenizer; bin/synthetic_gguf writes it to /tmp), instead of the demo model
set -uo pipefail
cd "$(dirname "$0")"
chunks="${1:-10}"
out="${OUT:-/tmp/quality}"
mkdir -p "$out" /tmp/quality-work
model="${ROCMFORGE_DEMO_MODEL:-/tmp/demo.gguf}"
base=/tmp/quality-work/base-gpu-exact.bin
if [ -n "${SYNTHETIC:-}" ]; then
    shape="${SYNTHETIC%%:*}" ty="${SYNTHETIC#*:}"
    synthetic="/tmp/quality-work/$shape-$ty.gguf"
    [ -f "$synthetic" ] || bin/synthetic_gguf --shape "$shape" --type "$ty" \
        --tokenizer-from "$model" --out "$synthetic"
    model="$synthetic"
    base="/tmp/quality-work/base-$shape-$ty.bin"
    out="$out/$shape-$ty"
    mkdir -p "$out"
fi
ppl=(bin/perplexity --model "$model" --text jargon-4.4.7.txt --device gpu --chunks "$chunks" --json)

"${ppl[@]}" --arithmetic exact --save-logits "$base" >"$out/gpu-exact.json" 2>"$out/gpu-exact.log"
echo "gpu exact (base): $(cat "$out/gpu-exact.json")"
for a in exact fast llama; do
    for mode in batch decode; do
        flag=(); [ "$mode" = decode ] && flag=(--token-by-token)
        [ "$a/$mode" = exact/batch ] && continue
        "${ppl[@]}" --arithmetic "$a" "${flag[@]}" --kl-divergence "$base" \
            >"$out/gpu-$a-$mode.json" 2>"$out/gpu-$a-$mode.log"
        echo "gpu $a $mode: $(cat "$out/gpu-$a-$mode.json")"
    done
done

lp=/tmp/llama-build/bin/llama-perplexity
for _ in $(seq 1 120); do
    [ -f /tmp/llama-build.done ] && break
    sleep 5
done
if [ -x "$lp" ]; then
    "$lp" -m "$model" -ngl 99 -c 512 --kl-divergence-base "$base" --kl-divergence \
        >"$out/llamacpp-cuda-kld.txt" 2>&1
    echo "llama.cpp CUDA:"; grep -E "Mean PPL|Mean +KLD|99.0%   KLD|Same top|RMS" "$out/llamacpp-cuda-kld.txt"
    "$lp" -m "$model" -ngl 99 -c 512 --chunks "$chunks" -f jargon-4.4.7.txt \
        >"$out/llamacpp-cuda-ppl.txt" 2>&1
    grep -E "Final estimate" "$out/llamacpp-cuda-ppl.txt"
else
    echo "no llama-perplexity (build: $(cat /tmp/llama-build.done 2>/dev/null || echo 'not done'))"
    tail -20 /tmp/llama-build.log 2>/dev/null
fi
