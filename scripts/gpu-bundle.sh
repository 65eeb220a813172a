#!/usr/bin/env bash
# Builds every test binary of the workspace (release, stripped) into OUTDIR with a
# run.sh that runs them on a GPU host with --include-ignored. See docs/verification.md.
#
#   scripts/gpu-bundle.sh gpu-bundle
#   # on the GPU host:
#   gpu-bundle/run.sh                # every test binary, GPU tests included
#   gpu-bundle/run.sh --memcheck     # the same under compute-sanitizer memcheck
#   gpu-bundle/run.sh --racecheck    # ... racecheck
#   gpu-bundle/run.sh --only gpu     # only binaries whose name starts with "gpu"
#
#   scripts/gpu-bundle.sh gpu-bundle --gpu-only   # only the binaries with GPU tests
#                                                 # (gpu*, nvidia_adapter*, soak*): a smaller carry
set -euo pipefail
out=${1:?usage: scripts/gpu-bundle.sh OUTDIR [--gpu-only]}
gpu_only=${2:-}
cd "$(dirname "$0")/.."
rm -rf "$out"
mkdir -p "$out/bin"

# Binaries that need the build machine rather than a GPU: trybuild runs cargo, the
# bindings check runs bindgen on installed headers, the denylist test reads the sources.
skip='^(compile_fail|bindings_fresh|no_device_sync)-'

cargo test --workspace --release --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        print(msg["executable"])
' | while read -r exe; do
    name=$(basename "$exe")
    if [[ "$name" =~ $skip ]]; then continue; fi
    if [ "$gpu_only" = "--gpu-only" ] && ! [[ "$name" =~ ^(gpu|nvidia_adapter|soak) ]]; then continue; fi
    # Crate name first: rocmforge_hip-<hash> -> rocmforge_hip, gpu-<hash> -> <crate>.gpu
    cp "$exe" "$out/bin/$name"
    strip "$out/bin/$name" 2>/dev/null || true
done

# The examples a GPU host runs: device listing and benchmarks.
mkdir -p "$out/examples"
cargo build --release --examples --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and "example" in msg["target"]["kind"]:
        print(msg["executable"])
' | while read -r exe; do
    cp "$exe" "$out/examples/"
    strip "$out/examples/$(basename "$exe")" 2>/dev/null || true
done

cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs every test binary with --include-ignored; one summary line per binary.
cd "$(dirname "$0")"
sanitizer=""
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --memcheck) sanitizer="memcheck" ;;
        --racecheck) sanitizer="racecheck" ;;
        --only) shift; only="$1" ;;
        *) break ;;
    esac
    shift
done
cs=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
export ROCMFORGE_PLATFORM="${ROCMFORGE_PLATFORM:-auto}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-/tmp/rocmforge-cache}"
mkdir -p logs
failed=0
for bin in bin/*; do
    name=$(basename "$bin")
    if [ -n "$only" ] && [[ "$name" != "$only"* ]]; then continue; fi
    log="logs/$name${sanitizer:+.$sanitizer}.log"
    start=$(date +%s.%N)
    if [ -n "$sanitizer" ]; then
        # API errors are left out: the suites provoke some on purpose (an unknown kernel
        # name, an oversized launch) to test the error paths; memory errors are what counts.
        "$cs" --tool "$sanitizer" --error-exitcode 99 --target-processes all --report-api-errors no \
            "$bin" --include-ignored --test-threads=1 "$@" >"$log" 2>&1
    else
        "$bin" --include-ignored "$@" >"$log" 2>&1
    fi
    rc=$?
    secs=$(python3 -c "import time; print(f'{time.time()-$start:.1f}')" 2>/dev/null || echo "?")
    result=$(grep -E '^test result' "$log" | tail -1)
    errors=""
    if [ -n "$sanitizer" ]; then errors=" | $(grep -E 'SUMMARY' "$log" | tail -1)"; fi
    printf '%-40s rc=%-3s %6ss  %s%s\n' "$name" "$rc" "$secs" "${result:-no test result (see $log)}" "$errors"
    [ "$rc" = 0 ] || failed=1
done
exit $failed
RUN
chmod +x "$out/run.sh"
du -sh "$out" | awk '{print "bundle size: " $1}'
total=$(du -sb "$out" | cut -f1)
if [ "$total" -gt $((64 * 1024 * 1024)) ]; then
    echo "error: the bundle is over 64 MiB ($total bytes)" >&2
    exit 1
fi
