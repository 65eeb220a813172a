#!/usr/bin/env bash
# Prepares the two carries a model run on the GPU host needs (see docs/verification.md):
# the demo model (98 MB) is larger than one carry (64 MiB), so it travels in two halves.
#
#   scripts/gpu-model-carry.sh [--llamacpp]
#   # call 1, carry gpu-carry1:  cp gpu-carry1/model.part1 /tmp/
#   #   (with --llamacpp: gpu-carry1/start-llamacpp-build.sh instead, which also starts
#   #   building llama.cpp's CUDA tools in the background, see scripts/llamacpp-host-src.sh)
#   # call 2 (within 30 s, machine still warm), carry gpu-carry2:
#   #   gpu-carry2/run-model.sh [test and bench arguments...]
#
# gpu-carry2 also gets the model test binary gpu_model, the perplexity and synthetic_gguf
# examples (built in release mode and stripped; the other examples and the soak test are
# in scripts/gpu-bundle.sh's bundle), the evaluation text and
# quality-table.sh (scripts/quality-table-host.sh: perplexity and KL divergence of every
# arithmetic, and of llama.cpp's CUDA build when it was built by call 1).
set -euo pipefail
cd "$(dirname "$0")/.."
with_llamacpp=0
[ "${1:-}" = --llamacpp ] && with_llamacpp=1
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$model" ] || bash scripts/fetch-demo-model.sh
rm -rf gpu-carry1 gpu-carry2
mkdir -p gpu-carry1 gpu-carry2/bin
half=56000000
head -c "$half" "$model" >gpu-carry1/model.part1
tail -c +"$((half + 1))" "$model" >gpu-carry2/model.part2
md5sum "$model" | cut -d' ' -f1 >gpu-carry2/model.md5

for t in gpu_model; do
    exe=$(cargo test --release -p rocmforge-model --test "$t" --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
')
    cp "$exe" "gpu-carry2/bin/$t"
done
cargo build --release --example perplexity --example synthetic_gguf
cp target/release/examples/perplexity target/release/examples/synthetic_gguf gpu-carry2/bin/
strip gpu-carry2/bin/*
bash scripts/fetch-eval-text.sh >/dev/null
cp models/jargon-4.4.7.txt gpu-carry2/
cp scripts/quality-table-host.sh gpu-carry2/quality-table.sh

if [ "$with_llamacpp" = 1 ]; then
    tmp=$(mktemp -d)
    bash scripts/llamacpp-host-src.sh "$tmp" >/dev/null
    tar -cJf gpu-carry1/llama-src.tar.xz -C "$tmp" llama.cpp build.sh
    rm -rf "$tmp"
    cat >gpu-carry1/start-llamacpp-build.sh <<'START'
#!/usr/bin/env bash
# Puts the first half of the demo model in /tmp and starts building llama.cpp's CUDA
# tools into /tmp/llama-build in the background (log: /tmp/llama-build.log; done when
# /tmp/llama-build.done exists), so that the next call can use them.
set -e
cd "$(dirname "$0")"
cp model.part1 /tmp/
rm -rf /tmp/llama-src && mkdir -p /tmp/llama-src
tar -xJf llama-src.tar.xz -C /tmp/llama-src
setsid nohup bash -c '/tmp/llama-src/build.sh /tmp/llama-build >/tmp/llama-build.log 2>&1; echo $? >/tmp/llama-build.done' >/dev/null 2>&1 &
echo "llama.cpp build started (log /tmp/llama-build.log)"
START
    chmod +x gpu-carry1/start-llamacpp-build.sh
fi

cat >gpu-carry2/run-model.sh <<'RUN'
#!/usr/bin/env bash
# Joins the demo model in /tmp and sets up the environment, then runs "$@".
set -e
cd "$(dirname "$0")"
if [ ! -f /tmp/demo.gguf ] || [ "$(md5sum </tmp/demo.gguf | cut -d' ' -f1)" != "$(cat model.md5)" ]; then
    cat /tmp/model.part1 model.part2 >/tmp/demo.gguf
fi
[ "$(md5sum </tmp/demo.gguf | cut -d' ' -f1)" = "$(cat model.md5)" ] || { echo "demo model checksum mismatch"; exit 1; }
export ROCMFORGE_DEMO_MODEL=/tmp/demo.gguf ROCMFORGE_PLATFORM=${ROCMFORGE_PLATFORM:-auto}
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/rocmforge-cache}
"$@"
RUN
chmod +x gpu-carry2/run-model.sh
du -sh gpu-carry1 gpu-carry2
