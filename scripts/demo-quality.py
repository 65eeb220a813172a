#!/usr/bin/env python3
"""How often the demo answers right: each question of a small panel, asked with N seeds.

Runs `examples/generate --chat --json` with the demo's default sampling (the model
file's `general.sampling.*` keys, else SmolLM2-Instruct's model-card settings) and
counts an answer as right when it
  * contains the expected fact (a regular expression per question, case-insensitive),
  * ended by itself (end of generation, not the token limit), and
  * does not loop (no word 4-gram repeated 3 or more times).
The first question is the README's demo; it must be right in at least 9 of 10 runs.

    python3 scripts/demo-quality.py                 # CPU, 10 seeds, every question
    python3 scripts/demo-quality.py --seeds 20 --device gpu --extra-args "--arithmetic exact"

Builds the example in release mode first (cargo), then only runs it.
"""

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (question, the fact a right answer states). The first one is the README's demo.
PANEL = [
    ("What is the capital of Japan?", r"\btokyo\b"),
    ("How many days are there in a week?", r"\b(7|seven)\b"),
    ("What is the capital of France?", r"\bparis\b"),
    ("What is the capital of Italy?", r"\brome\b"),
    ("What is the largest planet in the solar system?", r"\bjupiter\b"),
    ("What is the boiling point of water at sea level in degrees Celsius?", r"\b100\s*(°|degrees)\s*c"),
]


def loops(text):
    words = re.findall(r"\w+", text.lower())
    grams = Counter(tuple(words[i:i + 4]) for i in range(len(words) - 3))
    return any(n >= 3 for n in grams.values())


def ask(binary, question, seed, args):
    cmd = [str(binary), "--chat", "--json", "--prompt", question, "--seed", str(seed),
           "--max-tokens", str(args.max_tokens), "--device", args.device]
    cmd += shlex.split(args.extra_args)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="runs per question (seeds 1..N)")
    p.add_argument("--device", default="cpu", help="auto, cpu or gpu [cpu]")
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--extra-args", default="", help="more arguments for examples/generate")
    p.add_argument("--show", action="store_true", help="print every answer")
    args = p.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "generate"],
                   cwd=ROOT, check=True)
    binary = ROOT / "target" / "release" / "examples" / "generate"

    sampling = None
    readme_right = 0
    print(f"| question | right of {args.seeds} | looped | no end |")
    print("|---|---|---|---|")
    for i, (question, fact) in enumerate(PANEL):
        right = looped = unfinished = 0
        for seed in range(1, args.seeds + 1):
            out = ask(binary, question, seed, args)
            sampling = sampling or out.get("sampling")
            text = out["text"]
            ended = str(out.get("finish_reason", "")).startswith("end_of_generation")
            ok_fact = re.search(fact, text, re.IGNORECASE) is not None
            looping = loops(text)
            looped += looping
            unfinished += not ended
            ok = ok_fact and ended and not looping
            right += ok
            if args.show:
                print(f"  [{'ok' if ok else '--'}] seed {seed}: {text!r}", file=sys.stderr)
        if i == 0:
            readme_right = right
        print(f"| {question}{' (README)' if i == 0 else ''} | {right} | {looped} | {unfinished} |")
    print(f"\nsampling: {json.dumps(sampling)}; device {args.device}; {args.extra_args or 'default arithmetic'}")
    need = -(-9 * args.seeds // 10)
    if readme_right < need:
        sys.exit(f"error: the README's demo was right in {readme_right} of {args.seeds} runs (need {need})")


if __name__ == "__main__":
    main()
