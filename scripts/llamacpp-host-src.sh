#!/usr/bin/env bash
# Prepare llama.cpp's sources for a build on the GPU host (which has no network): the
# sources vendored in the PyPI sdist `llama-cpp-python==0.3.36` (llama.cpp commit
# 0c1e57098, the build the reference data and the speed numbers to beat come from),
# pruned to what `llama-perplexity` and `llama-bench` need with the CUDA and CPU backends
# (about 12 MB, so it fits a `carry` beside other files), plus `build.sh` to run there.
#
#     bash scripts/llamacpp-host-src.sh OUT      # OUT/llama.cpp, OUT/build.sh
#     # on the host:  OUT/build.sh /tmp/llama-build   (CUDA, sm_90; -DGGML_CUDA=OFF for CPU)
#
# The sdist (76 MB) is downloaded once into .whl/ (git-ignored) and its SHA-256 checked
# against PyPI's.
set -euo pipefail

out="${1:?usage: llamacpp-host-src.sh OUT}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.whl"
mkdir -p "$cache" "$out"

python3 - "$cache" <<'PYTHON'
import hashlib, json, os, sys, urllib.request
cache = sys.argv[1]
name = "llama_cpp_python-0.3.36.tar.gz"
path = os.path.join(cache, name)
with urllib.request.urlopen("https://pypi.org/simple/llama-cpp-python/",
                            timeout=60) as r:
    index = r.read().decode()
# The simple index (PEP 503) links each file with its sha256 in the URL fragment.
import re
m = re.search(r'href="([^"#]*' + re.escape(name) + r')#sha256=([0-9a-f]{64})"', index)
if not m:
    sys.exit(f"error: {name} not in PyPI's index")
url, sha = m.group(1), m.group(2)
if not (os.path.exists(path) and hashlib.sha256(open(path, "rb").read()).hexdigest() == sha):
    urllib.request.urlretrieve(url, path + ".part")
    got = hashlib.sha256(open(path + ".part", "rb").read()).hexdigest()
    if got != sha:
        sys.exit(f"error: {name} has SHA-256 {got}, PyPI says {sha}")
    os.replace(path + ".part", path)
print(f"sdist: {path}")
PYTHON

src="$out/llama.cpp"
rm -rf "$src"
mkdir -p "$src"
prefix="llama_cpp_python-0.3.36/vendor/llama.cpp"
keep=(CMakeLists.txt LICENSE cmake include src common vendor ggml/CMakeLists.txt ggml/cmake ggml/include
      ggml/src tools/perplexity tools/llama-bench)
tar -xzf "$cache/llama_cpp_python-0.3.36.tar.gz" -C "$src" --strip-components=3 \
    "${keep[@]/#/$prefix/}"
# Only the CPU and CUDA backends.
find "$src/ggml/src" -mindepth 1 -maxdepth 1 -type d -name 'ggml-*' \
    ! -name ggml-cpu ! -name ggml-cuda -exec rm -rf {} +
# Only the two tools.
cat > "$src/tools/CMakeLists.txt" <<'CMAKE'
find_package(Threads REQUIRED)
llama_add_compile_flags()
add_subdirectory(llama-bench)
add_subdirectory(perplexity)
CMAKE

cat > "$out/build.sh" <<'BUILD'
#!/usr/bin/env bash
# Build llama-perplexity and llama-bench from ./llama.cpp into BUILD_DIR (default
# /tmp/llama-build). CUDA for sm_90 (H100/H200) unless CMAKE_ARGS says otherwise.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-/tmp/llama-build}"
cmake -S "$here/llama.cpp" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    ${CMAKE_ARGS:-}
cmake --build "$build" --target llama-perplexity llama-bench -j "$(nproc)"
ls -la "$build/bin"
BUILD
chmod +x "$out/build.sh"
du -sh "$src"
