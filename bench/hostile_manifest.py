#!/usr/bin/env python3
"""Writes two crafted bundles whose `airlift.yaml` is a 16 MiB deeply nested YAML document
(`[[[…]]]` and `a: {a: {a: …`), with the canonical tar headers of a real bundle and its (now
wrong) signature, so the reader gets as far as the trust decision.

Usage: bench/hostile_manifest.py REAL.airlift OUT_DIR
Then time `airlift-install verify OUT_DIR/nested.airlift [--key vendor.pub]` (docs/benchmarks.md).
"""
import sys

real, out_dir = sys.argv[1], sys.argv[2]
raw = open(real, "rb").read()
first = bytearray(raw[:512])
manifest_size = int(first[124:135], 8)


def header(name, size):
    b = bytearray(first)
    b[0:100] = name.encode().ljust(100, b"\0")
    b[124:136] = ("%011o" % size).encode() + b"\0"
    b[148:156] = b" " * 8
    b[148:156] = ("%07o" % sum(b)).encode() + b"\0"
    return bytes(b)


assert header("airlift.yaml", manifest_size) == raw[:512], "not a canonical Airlift bundle"


def member(name, data):
    return header(name, len(data)) + data + b"\0" * ((-len(data)) % 512)


sig_at = 512 + ((manifest_size + 511) // 512) * 512
sig_size = int(raw[sig_at + 124 : sig_at + 135], 8)
sig = raw[sig_at + 512 : sig_at + 512 + sig_size]
limit = 16 * 1024 * 1024 - 16
for label, body in [
    ("nested", ("[" * (limit // 2) + "]" * (limit // 2)).encode()),
    ("mapping", ("a: " + "{a: " * (limit // 4)).encode()[:limit]),
]:
    with open(f"{out_dir}/{label}.airlift", "wb") as f:
        f.write(member("airlift.yaml", body) + member("airlift.yaml.sig", sig) + b"\0" * 1024)
