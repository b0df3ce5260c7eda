#!/usr/bin/env bash
# build.sh OUTDIR: builds the enginehost qemu test image, kind A (kernel + initramfs), offline
# from Debian packages and the guest agent:
#   OUTDIR/image.tar.zst   machine.json + vmlinux + initrd.img (what the engine consumes)
#   OUTDIR/{machine.json,vmlinux,initrd.img}   the same, unpacked
# The kernel is Debian's (linux-image-amd64 -> linux-image-<abi>-amd64), its bzImage cut down to
# the PVH-bootable ELF `vmlinux`; the initramfs holds busybox-static, the virtio NIC modules, the
# agent and ./init. Cached by a hash of every input (this script, mkimage.py, init, the agent
# binary, busybox, the kernel package version): a rerun with nothing changed takes ~0.2 s.
#
# Needs (Debian packages): busybox-static zstd python3 (plus apt, dpkg-deb, tar: always there),
# and cargo with the x86_64-unknown-linux-musl target (unless AGENT is given). The kernel .deb is
# downloaded with `apt-get download` (run `apt-get update` once before), never installed; apt's
# cache goes to OUTDIR/.cache/apt, so the machine's apt state is left alone. No root needed.
#
# Environment: AGENT=path uses that agent binary instead of building ../guest-agent;
# CARGO_TARGET_DIR (default OUTDIR/.cache/agent-target) is where the agent is built.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$(realpath -m "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CRATE=$HERE/../guest-agent
CACHE=$OUT/.cache
MODULES="virtio_pci virtio_net"
APPEND="console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check tsc=reliable mitigations=off"
APT_OPTS=(-q -o Dir::Cache="$CACHE/apt" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
    -o APT::Sandbox::User=root)
start=$(date +%s%N)
say() { echo "build.sh: $*" >&2; }
mkdir -p "$CACHE/apt"

# 1. The agent (cargo's own check makes this a no-op when nothing changed).
if [ -z "${AGENT:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/agent-target}
    cargo build --quiet --locked --release --target x86_64-unknown-linux-musl --manifest-path "$CRATE/Cargo.toml"
    AGENT=$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/enginehost-agent
fi
[ -x "$AGENT" ] || { say "no agent binary at $AGENT"; exit 1; }

# 2. Busybox from busybox-static (a dynamic busybox would not run in the initramfs).
BUSYBOX=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$') || { say "install busybox-static"; exit 1; }
BUSYBOX_VERSION=$(dpkg-query -W -f='${Version}' busybox-static)

# 3. The kernel package behind the metapackage; resolved again only when apt's lists change.
lists_key=$(stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* 2>/dev/null | sha256sum | cut -c1-16)
if [ -f "$CACHE/kernel-pkg.$lists_key" ]; then
    read -r KPKG KVERSION <"$CACHE/kernel-pkg.$lists_key"
else
    dep=$(apt-cache "${APT_OPTS[@]}" show --no-all-versions linux-image-amd64 | sed -n 's/^Depends: //p')
    KPKG=$(grep -o 'linux-image-[^ ,]*' <<<"$dep" | head -1)
    KVERSION=$(sed -n "s/.*$KPKG (= \([^)]*\)).*/\1/p" <<<"$dep")
    [ -n "$KPKG" ] && [ -n "$KVERSION" ] || { say "cannot resolve linux-image-amd64 (run apt-get update?)"; exit 1; }
    rm -f "$CACHE"/kernel-pkg.*
    echo "$KPKG $KVERSION" >"$CACHE/kernel-pkg.$lists_key"
fi
KREL=${KPKG#linux-image-}

# 4. Nothing changed since the last build? Then we are done.
KEY=$({
    sha256sum "$HERE/build.sh" "$HERE/mkimage.py" "$HERE/init" "$AGENT" "$BUSYBOX" | cut -d' ' -f1
    echo "$KPKG=$KVERSION busybox-static=$BUSYBOX_VERSION $MODULES $APPEND"
} | sha256sum | cut -c1-32)
if [ -f "$OUT/image.tar.zst" ] && [ "$(cat "$OUT/.key" 2>/dev/null)" = "$KEY" ]; then
    say "up to date ($KEY, $(((($(date +%s%N) - start)) / 1000000)) ms)"
    exit 0
fi
rm -f "$OUT/.key"

# 5. The kernel: download once per version, keep boot/ + the module folders we may need + vmlinux.
KDIR=$CACHE/kernel-$KPKG-$KVERSION
if [ ! -f "$KDIR/.done" ]; then
    say "downloading $KPKG $KVERSION"
    rm -rf "$KDIR" "$CACHE/deb" && mkdir -p "$KDIR" "$CACHE/deb"
    (cd "$CACHE/deb" && apt-get "${APT_OPTS[@]}" download "$KPKG=$KVERSION" >/dev/null)
    dpkg-deb --fsys-tarfile "$CACHE"/deb/*.deb | tar -x -C "$KDIR" --wildcards --no-wildcards-match-slash \
        './boot/vmlinuz-*' './lib/modules/*/modules.order' './lib/modules/*/modules.builtin' \
        './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/drivers/net/*.ko*' \
        './lib/modules/*/kernel/net/core/*' './lib/modules/*/kernel/drivers/block/*.ko*' \
        './lib/modules/*/kernel/drivers/char/*.ko*'
    python3 "$HERE/mkimage.py" vmlinux "$KDIR/boot/vmlinuz-$KREL" "$KDIR/vmlinux"
    rm -rf "$CACHE/deb"
    touch "$KDIR/.done"
fi

# 6. The initramfs tree.
STAGE=$CACHE/stage
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,tmp,root,home/tc,lib/modules}
cp "$BUSYBOX" "$STAGE/bin/busybox"
"$BUSYBOX" --list-full | python3 -c 'import os, sys
for a in sys.stdin.read().split():
    p = os.path.join(sys.argv[1], a)
    os.path.lexists(p) or os.symlink("/bin/busybox", p)' "$STAGE" # one process, not 400 `ln -s`
install -m 755 "$AGENT" "$STAGE/bin/enginehost-agent"
install -m 755 "$HERE/init" "$STAGE/init"
printf '127.0.0.1 localhost\n' >"$STAGE/etc/hosts"
printf 'root:x:0:0:root:/root:/bin/sh\ntc:x:1000:1000:tc:/home/tc:/bin/sh\n' >"$STAGE/etc/passwd"
printf 'root:x:0:\ntty:x:5:\ntc:x:1000:\n' >"$STAGE/etc/group"
python3 "$HERE/mkimage.py" modules "$KDIR" "$KREL" "$STAGE" $MODULES >&2
"$BUSYBOX" depmod -b "$STAGE" "$KREL"
python3 "$HERE/mkimage.py" cpio "$STAGE" "$OUT/initrd.img"

# 7. The image.
ln -f "$KDIR/vmlinux" "$OUT/vmlinux" 2>/dev/null || cp "$KDIR/vmlinux" "$OUT/vmlinux"
cat >"$OUT/machine.json" <<EOF
{
  "version": 1,
  "chipset": "pc",
  "cpu": "max",
  "memory": 256,
  "threads": 1,
  "cores": 1,
  "sockets": 1,
  "network": "virtio-net-pci",
  "graphics": "VGA",
  "sound": "none",
  "keyboard": "PS/2",
  "mouse": "PS/2",
  "tablet": "none",
  "boot": {
    "kernel": "vmlinux",
    "initrd": "initrd.img",
    "append": "$APPEND"
  }
}
EOF
tar -C "$OUT" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - machine.json vmlinux initrd.img |
    zstd -3 -q -T0 -o "$OUT/image.tar.zst.tmp" -f
mv "$OUT/image.tar.zst.tmp" "$OUT/image.tar.zst"
echo "$KEY" >"$OUT/.key"
say "built $OUT/image.tar.zst ($KPKG $KVERSION, $(stat -c %s "$OUT/image.tar.zst") bytes," \
    "initrd $(stat -c %s "$OUT/initrd.img") bytes) in $(((($(date +%s%N) - start)) / 1000000)) ms"
