#!/usr/bin/env bash
# Fetch the evaluation text for perplexity and KL-divergence runs (examples/perplexity):
# The Jargon File 4.4.7 (Eric S. Raymond et al., public domain), as Debian ships it in
# the package `jargon-text` 4.4.7-4.1 (Debian 12 "bookworm", section doc), into
# models/jargon-4.4.7.txt at the repository root: 1.68 MB of English prose, about
# 450,000 tokens for the demo model's tokenizer.
#
# Needs only python3: the .deb comes from `apt-get download` where apt is there (so that
# apt's mirrors and proxy settings apply), else straight from deb.debian.org with
# Python's standard library. Both the .deb's and the text's SHA-256 are checked against
# pinned values, and the text is moved into place atomically. Idempotent.
# Override the destination with ROCMFORGE_EVAL_TEXT=/path/to/file.txt;
# ROCMFORGE_FETCH_WITHOUT_APT=1 skips apt even where it is installed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${ROCMFORGE_EVAL_TEXT:-$root/models/jargon-4.4.7.txt}"
TEXT_SHA256=40dfb4b98191a670a09a183d5798d50f243d23fdbd1495dcc0aca2ce5895ba97

if [[ -f "$dest" ]] && [[ "$(sha256sum "$dest" | cut -d' ' -f1)" == "$TEXT_SHA256" ]]; then
    echo "evaluation text already present: $dest"
    exit 0
fi
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || {
    echo "error: $python not found; it is needed to fetch the evaluation text (apt-get install python3)" >&2
    exit 1
}
mkdir -p "$(dirname "$dest")"
exec "$python" - "$dest" "$TEXT_SHA256" <<'PYTHON'
import gzip, hashlib, io, lzma, os, shutil, subprocess, sys, tarfile, tempfile, urllib.request

dest, text_sha = sys.argv[1], sys.argv[2]
PACKAGE, VERSION = "jargon-text", "4.4.7-4.1"
DEB = f"{PACKAGE}_{VERSION}_all.deb"
DEB_SHA = "17d05997e30eb3d5d6713929b8e2f81b63a5f50073858ad2a06701c71f54dcdb"
URL = f"https://deb.debian.org/debian/pool/main/j/{PACKAGE}/{DEB}"
MEMBER = "./usr/share/doc/jargon-text/jargon.txt.gz"

def with_apt(tmp):
    """The .deb through apt (its mirrors and proxy), or None."""
    if os.environ.get("ROCMFORGE_FETCH_WITHOUT_APT") or not shutil.which("apt-get"):
        return None
    r = subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=tmp,
                       capture_output=True, text=True)
    path = os.path.join(tmp, DEB)
    if r.returncode != 0 or not os.path.exists(path):
        print(f"note: apt-get download failed ({r.stderr.strip()[:200]}); trying {URL}", file=sys.stderr)
        return None
    return path

def from_debian(tmp):
    path = os.path.join(tmp, DEB)
    with urllib.request.urlopen(URL, timeout=120) as r, open(path, "wb") as f:
        shutil.copyfileobj(r, f)
    return path

def ar_members(data):
    """The members of an ar archive (a .deb is one): name -> bytes."""
    if data[:8] != b"!<arch>\n":
        raise ValueError("not an ar archive")
    out, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        out[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return out

try:
    with tempfile.TemporaryDirectory() as tmp:
        deb = with_apt(tmp) or from_debian(tmp)
        data = open(deb, "rb").read()
        got = hashlib.sha256(data).hexdigest()
        if got != DEB_SHA:
            sys.exit(f"error: {DEB} has SHA-256 {got}, expected {DEB_SHA}")
        members = ar_members(data)
        name = next(n for n in members if n.startswith("data.tar"))
        with tarfile.open(fileobj=io.BytesIO(members[name])) as tar:
            text = gzip.decompress(tar.extractfile(MEMBER).read())
        got = hashlib.sha256(text).hexdigest()
        if got != text_sha:
            sys.exit(f"error: the text has SHA-256 {got}, expected {text_sha}")
        fd, part = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".jargon-")
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        os.chmod(part, 0o644)
        os.replace(part, dest)
except SystemExit:
    raise
except Exception as e:
    sys.exit(f"error: could not fetch the evaluation text: {e}\n"
             f"(it is {MEMBER} in the Debian package {PACKAGE} {VERSION}: {URL})")
print(f"evaluation text: {dest} ({len(text)} bytes, The Jargon File 4.4.7, public domain)")
PYTHON
