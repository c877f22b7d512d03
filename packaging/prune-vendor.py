#!/usr/bin/env python3
"""Empties the vendored crates that are only ever compiled for Windows.

Usage: prune-vendor.py VENDORDIR

`cargo vendor` copies every crate of Cargo.lock, for every platform. The winapi*/windows*
crates (import libraries and bindings, about 200 MB unpacked) are never compiled on Linux,
but cargo still reads their manifests to resolve the lock file. So they keep their
Cargo.toml; their Rust files become empty, their import libraries (*.a, *.lib, *.dll) go,
and .cargo-checksum.json lists the files as they now are (cargo checks vendored files
against it; the "package" checksum, matched against Cargo.lock, stays).
"""

import hashlib
import json
import os
import re
import sys

WINDOWS_ONLY = re.compile(r"^(winapi|windows)([-_][A-Za-z0-9_-]*)?-[0-9][^/]*$")


def main():
    vendor = sys.argv[1]
    pruned = 0
    for crate in sorted(os.listdir(vendor)):
        root = os.path.join(vendor, crate)
        if not WINDOWS_ONLY.match(crate) or not os.path.isdir(root):
            continue
        ck_path = os.path.join(root, ".cargo-checksum.json")
        with open(ck_path, encoding="utf-8") as f:
            ck = json.load(f)
        files = {}
        for dirpath, _, names in os.walk(root):
            for n in names:
                full = os.path.join(dirpath, n)
                rel = os.path.relpath(full, root)
                if rel == ".cargo-checksum.json":
                    continue
                if n.endswith((".a", ".lib", ".dll")):
                    os.remove(full)
                    continue
                if n.endswith(".rs"):
                    open(full, "w").close()
                with open(full, "rb") as f:
                    files[rel] = hashlib.sha256(f.read()).hexdigest()
        ck["files"] = files
        with open(ck_path, "w", encoding="utf-8") as f:
            json.dump(ck, f)
        pruned += 1
    print(f"prune-vendor: emptied {pruned} Windows-only crates", file=sys.stderr)


if __name__ == "__main__":
    main()
