#!/usr/bin/env python3
"""The byte-level steps of build.sh, Python 3 stdlib only:

  vmlinux BZIMAGE OUT             cut the XZ-compressed ELF kernel (PVH entry) out of a bzImage
  modules KTREE KREL STAGE MOD..  copy MOD.. and their dependencies (from each .ko's modinfo
                                  `depends=`) from KTREE/lib/modules/KREL into STAGE, same layout
  cpio STAGE OUT                  write STAGE as a newc cpio (root-owned, mtime 0, sorted, no compression),
                                  plus /dev/console, so no root or `cpio` package is needed

Owns nothing else: what goes into the image is decided by build.sh.
"""

import lzma
import os
import re
import shutil
import stat
import sys

XZ_MAGIC = b"\xfd7zXZ\x00"


def vmlinux(bzimage, out):
    data = open(bzimage, "rb").read()
    start = data.find(XZ_MAGIC)
    if start < 0:
        sys.exit(f"mkimage: no XZ stream in {bzimage} (not an XZ-compressed bzImage?)")
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    if elf[:4] != b"\x7fELF":
        sys.exit(f"mkimage: the XZ stream at {start} in {bzimage} is not an ELF kernel")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(elf)
    os.replace(tmp, out)


def module_name(path):
    base = os.path.basename(path)
    for ext in (".ko.xz", ".ko.zst", ".ko"):
        if base.endswith(ext):
            return base[: -len(ext)].replace("-", "_")
    return None


def read_module(path):
    data = open(path, "rb").read()
    if path.endswith(".xz"):
        data = lzma.decompress(data)
    return data


def modules(ktree, krel, stage, wanted):
    root = os.path.join(ktree, "lib", "modules", krel)
    index = {}
    for dirpath, _, files in os.walk(os.path.join(root, "kernel")):
        for f in files:
            name = module_name(f)
            if name:
                index[name] = os.path.join(dirpath, f)
    builtin = set()
    builtin_file = os.path.join(root, "modules.builtin")
    if os.path.exists(builtin_file):
        builtin = {module_name(line.strip()) for line in open(builtin_file)}
    todo, done = [w.replace("-", "_") for w in wanted], set()
    while todo:
        name = todo.pop()
        if name in done or name in builtin:
            continue
        if name not in index:
            sys.exit(f"mkimage: module {name} is neither in the extracted tree nor built in (extend build.sh's patterns)")
        done.add(name)
        m = re.search(rb"(?:^|\x00)depends=([^\x00]*)\x00", read_module(index[name]))
        if m and m.group(1):
            todo.extend(d.decode() for d in m.group(1).split(b","))
    for name in sorted(done):
        rel = os.path.relpath(index[name], ktree)
        dst = os.path.join(stage, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(index[name], dst)
    # modules.order trimmed to what we ship; modules.builtin lets `modprobe builtin_name` succeed.
    for f in ("modules.order", "modules.builtin"):
        src = os.path.join(root, f)
        if os.path.exists(src):
            lines = open(src).read().splitlines(keepends=True)
            if f == "modules.order":
                lines = [l for l in lines if module_name(l.strip()) in done]
            dst = os.path.join(stage, "lib", "modules", krel, f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "w") as out:
                out.writelines(lines)
    print("modules:", " ".join(sorted(done)))


class Cpio:
    """newc ("070701") writer; every entry root-owned with mtime 0."""

    def __init__(self, f):
        self.f, self.ino = f, 1

    def entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_b = name.encode() + b"\x00"
        fields = [self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
        self.ino += 1
        self.f.write(b"070701" + b"".join(b"%08X" % v for v in fields) + name_b)
        self.f.write(b"\x00" * (-(110 + len(name_b)) % 4))
        self.f.write(data)
        self.f.write(b"\x00" * (-len(data) % 4))

    def trailer(self):
        self.entry("TRAILER!!!", 0)


def cpio(stage, out):
    tmp = out + ".tmp"
    # Uncompressed: image.tar.zst compresses it anyway, and the guest skips an emulated gunzip.
    with open(tmp, "wb") as raw:
        w = Cpio(raw)
        seen_dev = False
        for dirpath, dirs, files in os.walk(stage):
            dirs.sort()
            rel_dir = os.path.relpath(dirpath, stage)
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(dirpath, name)
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                st = os.lstat(path)
                perm = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    w.entry(rel, stat.S_IFLNK | 0o777, os.readlink(path).encode())
                elif stat.S_ISDIR(st.st_mode):
                    w.entry(rel, stat.S_IFDIR | perm, nlink=2)
                    if rel == "dev":
                        # The kernel opens /dev/console for /init before anything is mounted.
                        w.entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
                        seen_dev = True
                elif stat.S_ISREG(st.st_mode):
                    w.entry(rel, stat.S_IFREG | perm, open(path, "rb").read())
        if not seen_dev:
            sys.exit("mkimage: the stage has no dev/ folder")
        w.trailer()
    os.replace(tmp, out)


def main(argv):
    if len(argv) == 3 and argv[0] == "vmlinux":
        vmlinux(argv[1], argv[2])
    elif len(argv) >= 5 and argv[0] == "modules":
        modules(argv[1], argv[2], argv[3], argv[4:])
    elif len(argv) == 3 and argv[0] == "cpio":
        cpio(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
