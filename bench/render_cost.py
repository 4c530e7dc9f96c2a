#!/usr/bin/env python3
"""What the render worker costs: `airlift-install render` and `airlift-pack lint` on bundles/demo
with two builds side by side, alternating, after one untimed warm-up run of each.

    bench/render_cost.py BEFORE_BIN_DIR AFTER_BIN_DIR DEMO.airlift VENDOR.pub [RUNS]

Each BIN_DIR holds `airlift-pack` and `airlift-install` (e.g. copies of target/debug from the
commit before the worker and from the commit with it). DEMO.airlift is bundles/demo built with
`airlift-pack build bundles/demo --key vendor.key --out dist`. Also times the worker's start
alone (start, limits, hello, exit at end of input) on the AFTER build. See docs/benchmarks.md.
"""

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    before, after, bundle, key = sys.argv[1:5]
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 15
    repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    work = tempfile.mkdtemp(prefix="airlift-render-cost.")
    env = dict(os.environ, NO_COLOR="1", AIRLIFT_STATE_DIR=os.path.join(work, "state"))
    out = os.path.join(work, "out")

    def cpu():
        u = resource.getrusage(resource.RUSAGE_CHILDREN)
        return u.ru_utime + u.ru_stime

    def run(cmd):
        """Wall time and CPU time (user + sys, the command and the workers it waited for)."""
        shutil.rmtree(out, ignore_errors=True)
        c, t = cpu(), time.perf_counter()
        r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        took, used = time.perf_counter() - t, cpu() - c
        if r.returncode != 0:
            sys.exit(f"{cmd} exited {r.returncode}: {r.stderr.decode(errors='replace')}")
        return took, used

    commands = {
        "airlift-install render (demo)": lambda d: [
            os.path.join(d, "airlift-install"), "render", bundle, "--key", key,
            "--registry", "registry.example:5000/demo", "--out", out, "--yes"],
        "airlift-pack lint bundles/demo": lambda d: [
            os.path.join(d, "airlift-pack"), "lint", os.path.join(repo, "bundles/demo")],
    }
    print(f"{runs} runs each, alternating before/after, one warm-up run each")
    print("| command | build | wall median | wall mean | wall min | wall max | CPU median |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, make in commands.items():
        times = {"before": [], "after": []}
        for label, d in (("before", before), ("after", after)):
            run(make(d))
        for _ in range(runs):
            for label, d in (("before", before), ("after", after)):
                times[label].append(run(make(d)))
        for label in ("before", "after"):
            xs = [w * 1000 for w, _ in times[label]]
            cs = [c * 1000 for _, c in times[label]]
            print(f"| {name} | {label} | {statistics.median(xs):.1f} ms | "
                  f"{statistics.mean(xs):.1f} ms | {min(xs):.1f} ms | {max(xs):.1f} ms | "
                  f"{statistics.median(cs):.1f} ms |")
    for exe in ("airlift-install", "airlift-pack"):
        xs = []
        for _ in range(50):
            t = time.perf_counter()
            r = subprocess.run([os.path.join(after, exe), "--airlift-render-worker=536870912,10"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            xs.append((time.perf_counter() - t) * 1000)
            if r.returncode != 0:
                sys.exit(f"{exe} worker exited {r.returncode}")
        print(f"{exe} worker start to exit, 50 runs: median {statistics.median(xs):.2f} ms, "
              f"min {min(xs):.2f} ms, max {max(xs):.2f} ms")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
