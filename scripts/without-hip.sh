#!/usr/bin/env bash
# Runs a command as on a machine without ROCm: in a private mount namespace, the HIP
# headers, the HIP runtime and hiprtc are hidden (empty mounts over them), whatever
# packages this machine has installed. CI uses it to check that the README's test
# command passes on a bare machine:
#
#     scripts/without-hip.sh cargo test --workspace
#
# Needs root or unprivileged user namespaces (`unshare -m`, or `unshare -rm`), Linux.
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

hide='
set -euo pipefail
shopt -s nullglob
hidden=()
# Header directories: an empty tmpfs over each.
for dir in /usr/include/hip /opt/rocm /opt/rocm-*; do
    if [[ -d "$dir" ]]; then mount -t tmpfs none "$dir"; hidden+=("$dir"); fi
done
# Runtime and hiprtc libraries: /dev/null over each file that a name resolves to (dlopen
# then fails with "file too short").
for lib in /usr/lib/*/libamdhip64.so* /usr/lib/*/libhiprtc*.so* /usr/lib/libamdhip64.so* \
           /usr/lib64/libamdhip64.so* /usr/local/lib/libamdhip64.so*; do
    real="$(realpath "$lib")"
    if [[ -f "$real" ]]; then mount --bind /dev/null "$real"; fi
    [[ -c "$real" ]] && hidden+=("$lib")
done
echo "without-hip: hid ${#hidden[@]} paths (${hidden[*]:-none})" >&2
exec "$@"
'

if [[ "$(id -u)" == 0 ]]; then
    exec unshare --mount --propagation private bash -c "$hide" without-hip "$@"
else
    # Unprivileged: map ourselves to root inside a new user namespace.
    exec unshare --map-root-user --mount --propagation private bash -c "$hide" without-hip "$@"
fi
