#!/usr/bin/env python3
"""Refreshes the "Kernels" section of every docs/kernels/<op>.md from the
registry (src/ops/registry.rs): one heading per kernel, with where one
finds it by its name — its shader, the host function that dispatches it,
its benchmark and its profile row.

    python3 tools/kernel_index.py

The section sits between the markers `<!-- kernels -->` and
`<!-- /kernels -->`; the first run puts it after the page's opening
paragraph. tests/layout.rs checks that every kernel has its heading.
"""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def registry():
    """[(op, summary, [kernel, ...])] in registry order."""
    text = open(os.path.join(ROOT, "src/ops/registry.rs")).read()
    ops = []
    for block in re.findall(r"Op \{(.*?)\n    \},", text, re.S):
        name = re.search(r'name: "(\w+)"', block).group(1)
        summary = re.search(r'summary: "([^"]*)"', block).group(1)
        kernels = re.findall(r'kernel!\("(\w+)"', block)
        ops.append((name, summary, kernels))
    return ops


def host_functions(kernel):
    """The src functions whose bodies name the kernel in a string."""
    found = []
    for path in sorted(glob.glob(os.path.join(ROOT, "src/**/*.rs"), recursive=True)):
        lines = open(path).read().split("\n")
        current, owner = None, None
        for line in lines:
            i = re.match(r"impl(?:<[^>]*>)? (\w+)", line)
            if i:
                owner = i.group(1)
            m = re.match(r"\s*(?:pub(?:\([a-z]+\))? )?fn (\w+)", line)
            if m:
                current = m.group(1)
            if f'"{kernel}"' in line and current and "registry" not in path:
                rel = os.path.relpath(path, ROOT)
                if current == "kernel" and owner:
                    # a variant chooser: its caller dispatches what it names
                    entry = f"the variant `{owner}::kernel` picks ({rel})"
                else:
                    entry = f"`{current}` ({rel})"
                if entry not in found:
                    found.append(entry)
    return found


def bench_of(kernel):
    for path in sorted(glob.glob(os.path.join(ROOT, "benches/*.rs"))):
        if kernel in open(path).read():
            return f"`cargo bench --bench {os.path.basename(path)[:-3]}`"
    return None


def section(op, summary, kernels):
    out = ["<!-- kernels -->", "## Kernels", "", f"{summary[0].upper() + summary[1:]}.", ""]
    for k in kernels:
        hosts = host_functions(k)
        bench = bench_of(k)
        out += [
            f"### `{k}`",
            "",
            f"- shader: `shaders/{k}.wgsl` (entry point `{k}`)",
            f"- dispatched by: {', '.join(hosts) if hosts else '(none yet)'}",
            f"- benchmark: {bench or 'timed inside its op in `postergrad profile` only'}",
            f"- profile row: `{k}`"
            + (" and `" + k + " (backward-input)` for the stride-1 input gradient" if k.startswith("conv2d_forward") else "")
            + (" and `conv2d_pack_weights (backward-input)`" if k == "conv2d_pack_weights" else ""),
            "",
        ]
    out.append("<!-- /kernels -->")
    return "\n".join(out)


def main():
    for op, summary, kernels in registry():
        path = os.path.join(ROOT, "docs/kernels", f"{op}.md")
        if os.path.exists(path):
            text = open(path).read()
        else:
            text = f"# {op}\n\n{summary[0].upper() + summary[1:]}.\n"
        new = section(op, summary, kernels)
        if "<!-- kernels -->" in text:
            text = re.sub(r"<!-- kernels -->.*?<!-- /kernels -->", lambda _: new, text, flags=re.S)
        else:
            # after the first paragraph that follows the title
            parts = text.split("\n\n")
            at = 2 if len(parts) > 2 else len(parts)
            text = "\n\n".join(parts[:at] + [new] + parts[at:])
        open(path, "w").write(text.rstrip() + "\n")
        print(path)


if __name__ == "__main__":
    main()
