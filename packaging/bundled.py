#!/usr/bin/env python3
"""What the shipped fencekit binaries link in, and under which licences.

Usage: bundled.py SRCDIR OUTDIR

SRCDIR is an unpacked source tree with the crates vendored (vendor/NAME-VERSION, as
packaging/make-tarball.sh makes it). The linked crates are the normal (non-dev, non-build)
dependencies of the package, without proc-macro crates and their own dependencies (they run in
the compiler, they are not linked): `cargo tree -e normal,no-proc-macro`. libssh2 is added by
hand: the libssh2-sys crate always compiles its bundled copy of the C library and links it
statically (its build.rs only looks for a system libssh2 when LIBSSH2_SYS_USE_PKG_CONFIG is
set, and the spec and scripts/package.sh never set it). OpenSSL and zlib are linked
dynamically against the system libraries (openssl-sys and libz-sys use pkg-config), so they
are not bundled; the package managers' automatic dependencies cover them.

Writes into OUTDIR:
  LICENSE.dependencies   one line per bundled component: name, version, SPDX licence
  LICENSES.bundled/      the licence files of every bundled component (NAME-VERSION/...)
  spec-generated.inc     the spec's License: line and its Provides: bundled(...) lines
  copyright              the Debian machine-readable (DEP-5) copyright file
"""

import json
import os
import re
import shutil
import subprocess
import sys

PROJECT_LICENSE = "GPL-2.0-or-later"
HOMEPAGE = "https://github.com/fencekit/fencekit"
LIBSSH2_LICENSE = "BSD-3-Clause"

# SPDX identifier -> Debian copyright-format short name.
DEBIAN_NAMES = {
    "MIT": "Expat",
    "Apache-2.0": "Apache-2.0",
    "BSD-3-Clause": "BSD-3-clause",
    "Unlicense": "Unlicense",
    "GPL-2.0-or-later": "GPL-2+",
}

TEXTS = {
    "GPL-2+": """This program is free software; you can redistribute it and/or modify
it under the terms of the GNU General Public License as published by
the Free Software Foundation; either version 2 of the License, or
(at your option) any later version.

This program is distributed in the hope that it will be useful,
but WITHOUT ANY WARRANTY; without even the implied warranty of
MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
GNU General Public License for more details.

On Debian systems, the complete text of the GNU General Public License
version 2 can be found in "/usr/share/common-licenses/GPL-2".""",
    "Apache-2.0": """Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.

On Debian systems, the complete text of the Apache License, Version 2.0
can be found in "/usr/share/common-licenses/Apache-2.0".""",
    "Expat": """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.""",
    "BSD-3-clause": """Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice,
   this list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its contributors
   may be used to endorse or promote products derived from this software
   without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE
ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE
LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR
CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF
SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS
INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN
CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE)
ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE
POSSIBILITY OF SUCH DAMAGE.""",
    "Unlicense": """This is free and unencumbered software released into the public domain.

Anyone is free to copy, modify, publish, use, compile, sell, or
distribute this software, either in source code form or as a compiled
binary, for any purpose, commercial or non-commercial, and by any
means.

In jurisdictions that recognize copyright laws, the author or authors
of this software dedicate any and all copyright interest in the
software to the public domain. We make this dedication for the benefit
of the public at large and to the detriment of our heirs and
successors. We intend this dedication to be an overt act of
relinquishment in perpetuity of all present and future rights to this
software under copyright law.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
IN NO EVENT SHALL THE AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR
OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE,
ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR
OTHER DEALINGS IN THE SOFTWARE.

For more information, please refer to <http://unlicense.org/>""",
}

LICENSE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|UNLICENSE|COPYRIGHT|NOTICE)", re.I)


def die(msg):
    sys.exit(f"bundled.py: {msg}")


def spdx(expr):
    """Normalises an old-style `A/B` licence to SPDX `A OR B`."""
    return " OR ".join(p.strip() for p in expr.split("/")) if "/" in expr else expr.strip()


def paren(expr):
    return f"({expr})" if " " in expr else expr


def debian(expr):
    out = []
    for tok in re.split(r"(\s+|\(|\))", expr):
        if tok in ("OR", "AND"):
            out.append(tok.lower())
        elif tok.strip() and tok not in "()":
            if tok not in DEBIAN_NAMES:
                die(f"no Debian short name for licence {tok!r}: add it to DEBIAN_NAMES and TEXTS")
            out.append(DEBIAN_NAMES[tok])
        else:
            out.append(tok)
    return "".join(out)


def linked_crates(src):
    env = dict(os.environ, CARGO_NET_OFFLINE="true")
    out = subprocess.run(
        ["cargo", "tree", "--locked", "--offline", "-e", "normal,no-proc-macro",
         "--prefix", "none", "--format", "{p}|{l}"],
        cwd=src, env=env, check=True, capture_output=True, text=True).stdout
    crates = {}
    for line in out.splitlines():
        line = line.replace(" (*)", "")
        pkg, _, lic = line.partition("|")
        fields = pkg.split()
        if len(fields) < 2 or fields[0] == "fencekit":
            continue
        name, version = fields[0], fields[1].lstrip("v")
        if not lic.strip():
            die(f"crate {name} {version} declares no licence (only a licence file): map it by hand")
        crates[(name, version)] = spdx(lic)
    return crates


def authors(src):
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--locked", "--offline", "--format-version", "1"],
        cwd=src, env=dict(os.environ, CARGO_NET_OFFLINE="true"),
        check=True, capture_output=True, text=True).stdout)
    return {(p["name"], p["version"]): p.get("authors") or [] for p in meta["packages"]}


def libssh2_version(src, sys_version):
    header = os.path.join(src, "vendor", f"libssh2-sys-{sys_version}", "libssh2", "include",
                          "libssh2.h")
    with open(header, encoding="utf-8") as f:
        m = re.search(r'#define LIBSSH2_VERSION\s+"([^"]+)"', f.read())
    if not m:
        die(f"no LIBSSH2_VERSION in {header}")
    # "1.11.2_DEV" (a snapshot before 1.11.2) sorts below 1.11.2 as "1.11.2~dev".
    return m.group(1).replace("_DEV", "~dev").replace("-", "~")


def main():
    if len(sys.argv) != 3:
        die("usage: bundled.py SRCDIR OUTDIR")
    src, out = sys.argv[1], sys.argv[2]
    crates = linked_crates(src)
    who = authors(src)
    ssh2_sys = [v for (n, v) in crates if n == "libssh2-sys"]
    components = []  # (kind, name, version, spdx, vendor dir relative to src)
    for (name, version), lic in sorted(crates.items()):
        components.append(("crate", name, version, lic, f"vendor/{name}-{version}"))
    if ssh2_sys:
        components.append(("c", "libssh2", libssh2_version(src, ssh2_sys[0]), LIBSSH2_LICENSE,
                           f"vendor/libssh2-sys-{ssh2_sys[0]}/libssh2"))

    os.makedirs(out, exist_ok=True)
    # LICENSE.dependencies and the licence files.
    lic_dir = os.path.join(out, "LICENSES.bundled")
    shutil.rmtree(lic_dir, ignore_errors=True)
    lines = ["# Components statically linked into the fencekit binaries (generated by",
             "# packaging/bundled.py from `cargo tree -e normal,no-proc-macro`).",
             "# Their licence files are in LICENSES.bundled/NAME-VERSION/.",
             "# name version licence (SPDX)"]
    seen = {}
    for kind, name, version, lic, vdir in components:
        lines.append(f"{name} {version} {lic}")
        dest = os.path.join(lic_dir, f"{name}-{version}")
        os.makedirs(dest)
        found = False
        # Identical texts (the same Apache-2.0 file in many crates) are stored once; the
        # others are relative symlinks to the first copy.
        for d in (vdir, os.path.join(vdir, "LICENSES")):
            full = os.path.join(src, d)
            if not os.path.isdir(full):
                continue
            for f in sorted(os.listdir(full)):
                if LICENSE_FILE.match(f) and os.path.isfile(os.path.join(full, f)):
                    with open(os.path.join(full, f), "rb") as fh:
                        text = fh.read()
                    first = seen.setdefault(text, os.path.join(f"{name}-{version}", f))
                    if first == os.path.join(f"{name}-{version}", f):
                        with open(os.path.join(dest, f), "wb") as fh:
                            fh.write(text)
                    else:
                        os.symlink(os.path.join("..", first), os.path.join(dest, f))
                    found = True
        if not found:
            # Some crates ship no licence file; record that instead of inventing one.
            with open(os.path.join(dest, "NO-LICENSE-FILE"), "w", encoding="utf-8") as f:
                f.write(f"{name} {version} ships no licence file; its Cargo.toml declares "
                        f"the licence {lic}.\n")
    with open(os.path.join(out, "LICENSE.dependencies"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    # The spec's License: and Provides: lines.
    exprs = sorted({c[3] for c in components} - {PROJECT_LICENSE})
    license_line = " AND ".join([PROJECT_LICENSE] + [paren(e) for e in exprs])
    # The Provides go on every package holding a binary, through one multi-line macro.
    spec = [f"License:        {license_line}", "%global bundled_provides \\"]
    for kind, name, version, _, _ in components:
        what = f"crate({name})" if kind == "crate" else name
        # SemVer build metadata ("+spec-1.1.0") does not order versions: left out.
        spec.append(f"Provides:       bundled({what}) = {version.split('+')[0]}\\")
    spec.append("%{nil}")
    with open(os.path.join(out, "spec-generated.inc"), "w", encoding="utf-8") as f:
        f.write("\n".join(spec) + "\n")

    # Debian copyright (DEP-5).
    used = {"GPL-2+"}
    para = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: fencekit\n"
        f"Source: {HOMEPAGE}\n"
        "Comment: The fencekit binaries link statically the Rust crates and the libssh2\n"
        " C library listed below; their sources are vendored in the source tarball under\n"
        " vendor/. OpenSSL and zlib are the system's shared libraries.\n"
        " The licence files of the bundled components are in\n"
        " /usr/share/doc/fencekit-common/LICENSES.bundled/.",
        "Files: *\nCopyright: fencekit developers\nLicense: GPL-2+",
    ]
    for kind, name, version, lic, vdir in components:
        deb = debian(lic)
        used.update(t for t in re.split(r"[\s()]+", deb) if t and t not in ("or", "and"))
        if kind == "c":
            holders = ["The libssh2 project and its contributors"]
        else:
            holders = [re.sub(r"\s*<[^>]*>", "", a).strip() for a in who.get((name, version), [])]
            holders = [h for h in holders if h] or [f"The {name} authors"]
        cr = "\n ".join(holders)
        para.append(f"Files: {vdir}/*\nCopyright: {cr}\nLicense: {deb}")
    for short in sorted(used):
        body = "\n".join(" " + l if l.strip() else " ." for l in TEXTS[short].splitlines())
        para.append(f"License: {short}\n{body}")
    with open(os.path.join(out, "copyright"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(para) + "\n")


if __name__ == "__main__":
    main()
