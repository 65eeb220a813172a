#!/usr/bin/env python3
"""Make the quantization fixtures of rocmforge-kernels from the real thing.

rocmforge's CPU (de)quantization must agree with llama.cpp's. This script asks
llama.cpp's own code what the right answers are and writes them, with a fixed
seed, to ``rocmforge-kernels/tests/fixtures/quant/``; ``tests/quant_fixtures.rs``
then checks rocmforge against those files without needing Python.

Two references are used, both pinned:

* ``gguf`` (PyPI, version GGUF_VERSION): ``gguf.quants`` is llama.cpp's own
  numpy port of ggml's quantizers. It dequantizes every type rocmforge supports
  and quantizes F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0.
* ggml's C reference (``ggml-quants.c``, ``ggml.c``) from the sources vendored in
  the ``llama-cpp-python`` sdist (PyPI, version LLAMA_CPP_PYTHON_VERSION), compiled
  here into a small shared library and called through ctypes. It supplies what
  gguf lacks: the reference quantizers ``quantize_row_q{2..6}_K_ref``, and ggml's
  type table (``ggml_get_type_traits``: name, block size, type size of every
  type id). Compiled with ``-ffp-contract=off`` so that every float operation is
  one IEEE single-precision operation, as in numpy and in Rust (a build that
  fuses multiply-adds into FMAs rounds differently; see the fixtures README).

Where both references can answer (legacy quantizers, f16/bf16 conversion, every
dequantizer) the script asserts that they agree bit for bit before it writes
anything, so a fixture is never one implementation's opinion.

Usage (from anywhere; needs python3 >= 3.9, a C and C++ compiler, and PyPI):

    python3 scripts/make_quant_fixtures.py

It creates a virtual environment under ``target/quant-fixtures-venv`` with the
pinned packages and re-runs itself there. The fixture format is described in
``rocmforge-kernels/tests/fixtures/quant/README.md``.
"""

from __future__ import annotations

import argparse
import re
import ctypes
import os
import struct
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# --- pins -------------------------------------------------------------------
GGUF_VERSION = "0.19.0"
NUMPY_VERSION = "2.4.6"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# Only needed so that pip can prepare the llama-cpp-python sdist's metadata
# during `pip download` (scikit-build-core looks for cmake); nothing is built
# with them.
SCIKIT_BUILD_CORE_VERSION = "1.1.2"
CMAKE_VERSION = "4.4.5"

SEED = 0x5EED_0004
MAGIC = b"RFQFIX01"

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "rocmforge-kernels" / "tests" / "fixtures" / "quant"
WORK = REPO / "target" / "quant-fixtures"
VENV = REPO / "target" / "quant-fixtures-venv"

# Section dtypes of the fixture container.
DT_BYTES, DT_F32, DT_TEXT = 0, 1, 2


# --- environment -------------------------------------------------------------
def in_venv() -> bool:
    """True when running inside the pinned virtual environment."""
    return Path(sys.prefix).resolve() == VENV.resolve()


def bootstrap() -> None:
    """Create the pinned venv (once) and re-run this script inside it."""
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    subprocess.check_call(
        [
            str(py), "-m", "pip", "install", "--quiet",
            f"gguf=={GGUF_VERSION}",
            f"numpy=={NUMPY_VERSION}",
            f"scikit-build-core=={SCIKIT_BUILD_CORE_VERSION}",
            f"cmake=={CMAKE_VERSION}",
        ]
    )
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


def fetch_ggml_sources() -> Path:
    """Download the pinned llama-cpp-python sdist with pip and unpack its ggml/."""
    root = WORK / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}"
    ggml = root / "vendor" / "llama.cpp" / "ggml"
    if (ggml / "src" / "ggml-quants.c").exists():
        return ggml
    WORK.mkdir(parents=True, exist_ok=True)
    sdist = WORK / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    if not sdist.exists():
        env = dict(os.environ)
        # cmake from the venv, for scikit-build-core's metadata step.
        env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        subprocess.check_call(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--no-binary", ":all:", "--no-build-isolation",
                f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(WORK),
            ],
            env=env,
        )
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/ggml/"
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        try:
            tar.extractall(WORK, members=members, filter="data")
        except TypeError:  # Python without tarfile extraction filters
            tar.extractall(WORK, members=members)
    return ggml


def ggml_type_count(ggml: Path) -> int:
    """GGML_TYPE_COUNT as ggml.h defines it (ggml_get_type_traits asserts below it)."""

    text = (ggml / "include" / "ggml.h").read_text()
    m = re.search(r"GGML_TYPE_COUNT\s*=\s*(\d+)", text)
    assert m, "GGML_TYPE_COUNT not found in ggml.h"
    return int(m.group(1))


def build_ggml(ggml: Path) -> Path:
    """Compile ggml-base (the files CMake's `ggml-base` target lists) to a .so."""
    lib = WORK / "libggml-base-ref.so"
    if lib.exists():
        return lib
    build = WORK / "build"
    build.mkdir(parents=True, exist_ok=True)
    (build / "ggml-version.h").write_text(
        '#pragma once\n#define GGML_VERSION "llama-cpp-python-'
        + LLAMA_CPP_PYTHON_VERSION
        + '"\n#define GGML_COMMIT "unknown"\n'
    )
    src = ggml / "src"
    inc = ["-I", str(build), "-I", str(ggml / "include"), "-I", str(src)]
    # -ffp-contract=off: one rounding per float operation, like numpy and Rust.
    common = ["-O2", "-fPIC", "-ffp-contract=off", "-w"]
    units = [
        (["cc", "-std=c11", "-D_GNU_SOURCE"], "ggml.c"),
        (["cc", "-std=c11", "-D_GNU_SOURCE"], "ggml-alloc.c"),
        (["cc", "-std=c11", "-D_GNU_SOURCE"], "ggml-quants.c"),
        (["c++", "-std=c++17"], "ggml.cpp"),
        (["c++", "-std=c++17"], "ggml-backend.cpp"),
        (["c++", "-std=c++17"], "ggml-backend-meta.cpp"),
        (["c++", "-std=c++17"], "ggml-opt.cpp"),
        (["c++", "-std=c++17"], "ggml-threading.cpp"),
        (["c++", "-std=c++17"], "gguf.cpp"),
    ]

    def compile_unit(unit):
        cmd, name = unit
        obj = build / (name.replace(".", "_") + ".o")
        subprocess.check_call([*cmd, *common, *inc, "-c", str(src / name), "-o", str(obj)])
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        objs = list(pool.map(compile_unit, units))
    subprocess.check_call(["c++", "-shared", "-o", str(lib), *map(str, objs), "-lm", "-lpthread"])
    return lib


# --- ggml through ctypes -------------------------------------------------------
class TypeTraits(ctypes.Structure):
    """`struct ggml_type_traits` of ggml.h (the fields up to from_float_ref)."""

    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


class Ggml:
    """The few entry points of the compiled ggml reference that the fixtures use."""

    # ggml's function names per rocmforge-supported type: (quantize, dequantize).
    FUNCS = {
        "F16": ("ggml_fp32_to_fp16_row", "ggml_fp16_to_fp32_row"),
        "BF16": ("ggml_fp32_to_bf16_row_ref", "ggml_bf16_to_fp32_row"),
        "Q4_0": ("quantize_row_q4_0_ref", "dequantize_row_q4_0"),
        "Q4_1": ("quantize_row_q4_1_ref", "dequantize_row_q4_1"),
        "Q5_0": ("quantize_row_q5_0_ref", "dequantize_row_q5_0"),
        "Q5_1": ("quantize_row_q5_1_ref", "dequantize_row_q5_1"),
        "Q8_0": ("quantize_row_q8_0_ref", "dequantize_row_q8_0"),
        "Q2_K": ("quantize_row_q2_K_ref", "dequantize_row_q2_K"),
        "Q3_K": ("quantize_row_q3_K_ref", "dequantize_row_q3_K"),
        "Q4_K": ("quantize_row_q4_K_ref", "dequantize_row_q4_K"),
        "Q5_K": ("quantize_row_q5_K_ref", "dequantize_row_q5_K"),
        "Q6_K": ("quantize_row_q6_K_ref", "dequantize_row_q6_K"),
    }

    def __init__(self, lib: Path):
        self.lib = ctypes.CDLL(str(lib))
        self.lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
        self.lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
        for q, dq in self.FUNCS.values():
            for name in (q, dq):
                fn = getattr(self.lib, name)
                fn.restype = None
                fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]

    def type_table(self, count: int):
        """(id, name, block size, type size, is_quantized) for every id < count."""
        rows = []
        for t in range(count):
            tr = self.lib.ggml_get_type_traits(t).contents
            rows.append((t, tr.type_name.decode(), tr.blck_size, tr.type_size, tr.is_quantized))
        return rows

    def quantize(self, np, name: str, x, type_size: int, block_size: int):
        """ggml's reference quantization of the f32 array x."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.zeros(x.size // block_size * type_size, dtype=np.uint8)
        getattr(self.lib, self.FUNCS[name][0])(x.ctypes.data, out.ctypes.data, x.size)
        return out

    def dequantize(self, np, name: str, q, type_size: int, block_size: int):
        """ggml's dequantization of the raw blocks q."""
        q = np.ascontiguousarray(q, dtype=np.uint8)
        out = np.zeros(q.size // type_size * block_size, dtype=np.float32)
        getattr(self.lib, self.FUNCS[name][1])(q.ctypes.data, out.ctypes.data, out.size)
        return out


# --- data --------------------------------------------------------------------
def make_src(np, rng, n: int):
    """Random f32 data in groups of 32 (16 for the halves group) of varied kinds.

    Kinds: gaussian of a random scale, one-signed offsets (exercise the minimum
    of the Q*_1 and K types), zeros, a constant, a lone spike, a +a/-a tie for
    the absolute maximum (ggml keeps the first), exact .5 steps (rounding ties),
    heavy tails and tiny values near f16's underflow. Every 8th super-block of
    256 is all zeros (the all-zero paths of the K quantizers).
    """
    x = np.empty(n, dtype=np.float32)
    for g in range(0, n, 32):
        kind = (g // 32) % 9 if g // 32 < 9 else int(rng.integers(0, 9))
        s = np.float32(10.0 ** rng.uniform(-3, 1.5))
        if kind == 0:
            v = rng.normal(0, s, 32)
        elif kind == 1:
            v = rng.uniform(0.5, 1.5, 32) * s * (1 if rng.random() < 0.5 else -1)
        elif kind == 2:
            v = np.zeros(32)
        elif kind == 3:
            v = np.full(32, s)
        elif kind == 4:
            v = np.zeros(32)
            v[int(rng.integers(0, 32))] = s * (1 if rng.random() < 0.5 else -1)
        elif kind == 5:
            v = rng.normal(0, s, 32)
            a = np.abs(v).max() * 1.5
            i, j = rng.choice(32, 2, replace=False)
            v[i], v[j] = a, -a
        elif kind == 6:
            # 127 and k + 0.5: Q8_0 scales these by exactly 1 (ties for roundf).
            v = np.concatenate([[127.0], np.arange(-15, 16) + 0.5]) * 2.0 ** int(rng.integers(-6, 2))
            rng.shuffle(v)
        elif kind == 7:
            v = rng.standard_t(2, 32) * s
        else:
            v = rng.normal(0, 1, 32) * 1e-6
        x[g:g + 32] = v
    for sb in range(0, n, 256 * 8):
        if sb + 7 * 256 + 256 <= n:
            x[sb + 7 * 256: sb + 8 * 256] = 0
    assert np.all(np.isfinite(x))
    return x


def random_f16_bits(np, rng, count: int):
    """Finite f16 scale bits of moderate size (normals, subnormals, some zeros)."""
    mag = 2.0 ** rng.uniform(-20, 4, count)
    sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    v = (mag * sign).astype(np.float16)
    v[rng.random(count) < 0.05] = 0
    assert np.all(np.isfinite(v))
    return v.view(np.uint16)


# ggml block layouts: byte offsets of the f16 fields inside one block.
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
}


def random_blocks(np, rng, name: str, n_blocks: int, type_size: int):
    """Random block bytes with finite, moderate f16 scales (no NaN/Inf)."""
    if name == "F32":
        v = (rng.normal(0, 1, n_blocks) * 10.0 ** rng.uniform(-30, 30, n_blocks)).astype(np.float32)
        return v.view(np.uint8)
    if name == "F16":
        bits = rng.integers(0, 1 << 16, n_blocks, dtype=np.uint16)
        finite = (bits & 0x7C00) != 0x7C00
        bits = np.where(finite, bits, bits & 0x83FF)  # exponent 31 -> subnormal
        return bits.astype("<u2").view(np.uint8)
    if name == "BF16":
        bits = rng.integers(0, 1 << 16, n_blocks, dtype=np.uint16)
        finite = (bits & 0x7F80) != 0x7F80
        bits = np.where(finite, bits, bits & 0x807F)
        return bits.astype("<u2").view(np.uint8)
    blocks = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[name]:
        bits = random_f16_bits(np, rng, n_blocks).astype("<u2")
        blocks[:, off:off + 2] = bits.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(-1)


# --- writing -----------------------------------------------------------------
def write_fixture(path: Path, sections) -> int:
    """Write the RFQFIX01 container (see README.md); returns the size in bytes."""
    out = bytearray(MAGIC)
    out += struct.pack("<I", len(sections))
    for name, dtype, payload in sections:
        nb = name.encode()
        out += struct.pack("<H", len(nb)) + nb + struct.pack("<BQ", dtype, len(payload)) + payload
    path.write_bytes(bytes(out))
    return len(out)


def main() -> None:
    """Check the two references against each other and write every fixture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="fixture directory")
    args = parser.parse_args()
    if not in_venv():
        bootstrap()
        return

    import gguf
    import numpy as np
    from gguf import GGMLQuantizationType as T
    from gguf.constants import GGML_QUANT_SIZES

    from importlib.metadata import version

    assert version("gguf") == GGUF_VERSION, version("gguf")
    assert np.__version__ == NUMPY_VERSION, np.__version__

    sources = fetch_ggml_sources()
    ggml = Ggml(build_ggml(sources))
    args.out.mkdir(parents=True, exist_ok=True)

    # ggml's own type table; where gguf knows a type, ids and sizes must agree.
    table = ggml.type_table(ggml_type_count(sources))
    gguf_ids = {int(t) for t in T}
    for tid, name, blck, size, _ in table:
        if blck:
            if tid in gguf_ids:
                ours = GGML_QUANT_SIZES[T(tid)]
                if ours != (blck, size):
                    # Known: gguf 0.19.0 still lists Q8_1 as 32 elements in 40
                    # bytes (f32 d and s); ggml's block_q8_1 holds two f16 since
                    # long ago: 36 bytes. Q8_1 is an intermediate type that GGUF
                    # files do not carry. ggml is the authority.
                    assert name == "q8_1" and ours == (32, 40), (tid, name, blck, size, ours)
                    print(f"note: gguf says {name} is {ours}, ggml says {(blck, size)}; using ggml")
            else:
                print(f"note: ggml type {tid} ({name}) is newer than gguf {GGUF_VERSION}")
    lines = ["# id\tname\tblock_size\ttype_size\tis_quantized  (from ggml_get_type_traits)"]
    for tid, name, blck, size, isq in table:
        lines.append(f"{tid}\t{name}\t{blck}\t{size}\t{int(isq)}")
    (args.out / "types.tsv").write_text("\n".join(lines) + "\n")

    rng = np.random.default_rng(SEED)
    total = 0
    gguf_quantizes = {"F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"}
    for name in ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                 "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]:
        t = T[name]
        block, tsize = GGML_QUANT_SIZES[t]
        ggml_name = next(r[1] for r in table if r[0] == int(t))
        n_src = 2048 if block == 256 else 1024
        n_rand_blocks = 8 if block == 256 else (64 if block == 32 else 2048)

        src = make_src(np, rng, n_src)
        q_source = []
        q = None
        if name == "F32":
            q = src.view(np.uint8).copy()
            q_source.append("identity")
        if name in gguf_quantizes:
            q = np.ascontiguousarray(gguf.quants.quantize(src.reshape(1, -1), t)).view(np.uint8).reshape(-1)
            q_source.append(f"gguf {GGUF_VERSION}")
        if name in Ggml.FUNCS:
            qc = ggml.quantize(np, name, src, tsize, block)
            if q is not None:
                assert np.array_equal(q, qc), f"{name}: gguf and ggml C quantize differently"
            q = qc
            q_source.append(f"ggml C (llama-cpp-python {LLAMA_CPP_PYTHON_VERSION})")

        def deq(raw):
            """gguf's dequantization, cross-checked against ggml's C."""
            d = np.ascontiguousarray(gguf.quants.dequantize(raw.reshape(1, -1), t), dtype=np.float32).reshape(-1)
            if name in Ggml.FUNCS:
                dc = ggml.dequantize(np, name, raw, tsize, block)
                assert np.array_equal(d.view(np.uint32), dc.view(np.uint32)), f"{name}: dequantizers disagree"
            return d

        dq = deq(q)
        rblk = random_blocks(np, rng, name, n_rand_blocks, tsize)
        rdq = deq(rblk)

        meta = "\n".join([
            f"type={name}",
            f"ggml_name={ggml_name}",
            f"ggml_id={int(t)}",
            f"block_size={block}",
            f"type_size={tsize}",
            f"seed={SEED}",
            f"gguf={GGUF_VERSION}",
            f"numpy={NUMPY_VERSION}",
            f"ggml_c=llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} vendor/llama.cpp/ggml, -O2 -ffp-contract=off",
            "q_source=" + " == ".join(q_source),
        ]) + "\n"
        sections = [
            ("meta", DT_TEXT, meta.encode()),
            ("src", DT_F32, src.astype("<f4").tobytes()),
            ("q", DT_BYTES, q.tobytes()),
            ("dq", DT_F32, dq.astype("<f4").tobytes()),
            ("rblk", DT_BYTES, rblk.tobytes()),
            ("rdq", DT_F32, rdq.astype("<f4").tobytes()),
        ]
        size = write_fixture(args.out / f"{ggml_name}.bin", sections)
        total += size
        print(f"{ggml_name:5} {size:7} bytes  quantized by: {' == '.join(q_source)}")
    print(f"total {total} bytes in {args.out}")


if __name__ == "__main__":
    main()
