#!/usr/bin/env python3
"""Extracts README.md's fenced command blocks for test_readme.sh.

readme_blocks.py README OUTDIR writes OUTDIR/block-N.sh for each fenced
block whose info string is sh, bash or shell, and prints one line per block:
N <TAB> heading <TAB> run|skip <TAB> reason. A block is skipped only when the
line before it (blank lines aside) is `<!-- not-run: REASON -->`."""
import re
import sys

readme, outdir = sys.argv[1:3]
heading, marker, block, other, n = "(top)", None, None, False, 0
for line in open(readme, encoding="utf-8"):
    if other:  # inside a block of another language (json, text...): not commands
        other = not line.startswith("```")
        continue
    if block is not None:
        if line.startswith("```"):
            n += 1
            with open(f"{outdir}/block-{n}.sh", "w", encoding="utf-8") as f:
                f.write("".join(block))
            state = ("skip", marker) if marker is not None else ("run", "")
            print(f"{n}\t{heading}\t{state[0]}\t{state[1]}")
            block, marker = None, None
        else:
            block.append(line)
        continue
    m = re.match(r"```\s*(\w*)\s*$", line)
    if m and m.group(1) in ("sh", "bash", "shell"):
        block = []
        continue
    if line.startswith("```"):
        other, marker = True, None
        continue
    if line.startswith("#"):
        heading = line.strip()
    skip = re.match(r"<!--\s*not-run:\s*(.*?)\s*-->\s*$", line)
    if skip:
        marker = skip.group(1) or "(no reason given)"
    elif line.strip():
        marker = None
