#!/usr/bin/env python3
"""Refreshes the gradient-check tables in docs/kernels/<op>.md from what
`postergrad gradcheck` prints today, in f32 and in f64.

    cargo build --release && python3 tools/gradcheck_docs.py

Each page's check section holds two fenced tables, each preceded by a
marker line: `<!-- gradcheck f32 -->` (the f32 suite) and
`<!-- gradcheck f64 -->` (`--dtype f64`, PyTorch's tolerances). The first
run inserts the markers (the f32 table replaces the section's first fenced
block; the f64 table follows under "### In f64"); later runs replace the
tables between them. Rows come from one run of each suite, seed 0, on the
default adapter (lavapipe on the development machine).
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "postergrad")


def ops():
    """The ops the suite checks, from the registry (`gradcheck --list`)."""
    out = subprocess.run([BIN, "gradcheck", "--list"], capture_output=True, text=True, check=True)
    seen = []
    for line in out.stdout.splitlines():
        op = line.split()[0]
        if op not in seen:
            seen.append(op)
    return seen


def suite(dtype):
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    out = subprocess.run(
        [BIN, "gradcheck", "--dtype", dtype], capture_output=True, text=True, env=env
    )
    lines = out.stdout.splitlines()
    if not lines or lines[0] != f"kernels in {dtype}":
        sys.exit(f"gradcheck --dtype {dtype} did not run in {dtype}:\n{out.stdout}{out.stderr}")
    header = lines[1]
    rows = {}
    for line in lines[2:]:
        if not line.strip() or re.match(r"\d+ checks:", line):
            break
        rows.setdefault(line.split()[0], []).append(line)
    # the small-limits, split-batch and variant passes repeat the cases:
    # the pages show the cases once and count the repeats in a last line
    passes = [
        ("(small limits)", "of the small-limits pass"),
        ("(split batch)", "of the split-batch pass"),
        ("(variants ", "of the variant passes"),
    ]
    for op, all_rows in rows.items():
        base = [r for r in all_rows if not any(tag in r for tag, _ in passes)]
        counts = [(sum(1 for r in all_rows if tag in r), what) for tag, what in passes]
        extra = [r for r in all_rows if r not in base]
        if extra:
            failed = sum(1 for r in extra if r.rstrip().endswith("FAIL"))
            said = [f"{n} {what}" for n, what in counts if n]
            said[0] = said[0].replace(" of ", " rows of ", 1)
            base.append(f"(and {', '.join(said)}: {len(extra) - failed} pass, {failed} fail)")
        rows[op] = base
    return header, rows, lines


def block(marker, header, rows):
    return f"<!-- gradcheck {marker} -->\n```\n{header}\n" + "\n".join(rows) + "\n```\n"


def update(op, f32, f64):
    path = os.path.join(ROOT, "docs", "kernels", f"{op}.md")
    text = open(path).read()
    new32 = block("f32", f32[0], f32[1][op])
    new64 = block("f64", f64[0], f64[1][op])
    fence = re.compile(r"```\n.*?```\n", re.S)
    if "<!-- gradcheck f32 -->" in text:
        for marker, new in (("f32", new32), ("f64", new64)):
            start = text.index(f"<!-- gradcheck {marker} -->")
            end = fence.search(text, start).end()
            text = text[:start] + new + text[end:]
    else:
        heading = re.search(r"^## (Gradient check|Check).*$", text, re.M)
        if not heading:
            sys.exit(f"{path}: no '## Gradient check' section")
        m = fence.search(text, heading.end())
        f64_section = (
            "\n### In f64\n\n"
            f"`postergrad gradcheck --op {op} --dtype f64`: the kernel instantiated in\n"
            "f64 against the f64 reference at atol 1e-12, rtol 1e-9 (the non-finite\n"
            "guard reads f32 bits, so the NaN-guarded step is f32 only). See\n"
            "docs/gradcheck.md.\n\n"
        ) if op == "adam" else (
            "\n### In f64\n\n"
            f"`postergrad gradcheck --op {op} --dtype f64`: the same cases with every\n"
            "kernel instantiated in f64, checked against central differences of the\n"
            "f64 kernels with PyTorch gradcheck's settings (eps 1e-6, atol 1e-5,\n"
            "rtol 1e-3) and against the f64 reference at atol 1e-12, rtol 1e-9\n"
            "(raised to the f64 rounding floor of long sums). See docs/gradcheck.md.\n\n"
        )
        text = text[: m.start()] + new32 + f64_section + new64 + text[m.end():]
    open(path, "w").write(text)


def main():
    f32 = suite("f32")
    f64 = suite("f64")
    for op in ops():
        update(op, f32, f64)
    for name, s in (("f32", f32), ("f64", f64)):
        summary = [l for l in s[2] if re.match(r"\d+ checks:", l)]
        print(f"{name}: {summary[0] if summary else '?'}")


if __name__ == "__main__":
    main()
