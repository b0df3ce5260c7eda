#!/usr/bin/env bash
# Builds the docker engine's test image offline: a root file system of Debian's
# busybox-static (/bin/busybox and a symlink per applet, /etc/passwd, /tmp),
# imported into the dockerd behind SOCKET as enginehost/busybox:test. No registry.
#   .ci/docker-test-image.sh /path/to/docker.sock
set -euo pipefail
sock=${1:?usage: $0 SOCKET}
busybox=/bin/busybox
if ldd "$busybox" >/dev/null 2>&1; then
    echo "$busybox is not statically linked; install Debian's busybox-static" >&2
    exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,root,proc,sys,dev}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
chmod 1777 "$root/tmp"
tar -C "$root" --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -cf - . |
    docker -H "unix://$sock" import --change 'ENV PATH=/bin' - enginehost/busybox:test
