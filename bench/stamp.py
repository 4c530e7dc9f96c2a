#!/usr/bin/env python3
"""Runs a command and writes each line it prints (stdout and stderr, merged) to OUT, prefixed
with the seconds since the command started, so a benchmark can time one phase of a command
from its progress lines.

Usage: bench/stamp.py OUT COMMAND [ARGS...]   Exits with the command's status.

The command's stderr must be unbuffered or line-buffered for the times to mean anything (the
Airlift binaries write each plain progress line at once; kubectl prints each applied object as it
goes). Reading happens in this process, so a slow reader could only make the command wait on a
full pipe, never make it look faster.
"""
import subprocess
import sys
import time


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out_path, cmd = sys.argv[1], sys.argv[2:]
    start = time.monotonic()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(out_path, "w", encoding="utf-8") as out:
        assert child.stdout is not None
        for raw in child.stdout:
            stamp = time.monotonic() - start
            line = raw.decode("utf-8", "replace").rstrip("\n")
            out.write(f"{stamp:.4f} {line}\n")
        status = child.wait()
        out.write(f"{time.monotonic() - start:.4f} [exit {status}]\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
