#!/usr/bin/env bash
# Re-vendors the interactive pages' third-party JS/CSS from the npm registry, at
# the pinned versions below, into vendor/ (committed: the build needs no npm and
# the pages load nothing from a CDN). noVNC ships ~50 ES modules; esbuild bundles
# them into one file. Run from anywhere; review the diff, then commit.
set -euo pipefail
XTERM=6.0.0
XTERM_FIT=0.11.0
NOVNC=1.7.0
ESBUILD=0.28.2

here=$(cd "$(dirname "$0")" && pwd)
out=$here/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "@xterm/xterm@$XTERM" "@xterm/addon-fit@$XTERM_FIT" "@novnc/novnc@$NOVNC" >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
npm install --silent --no-save --no-package-lock "esbuild@$ESBUILD" >/dev/null

rm -rf "$out" && mkdir -p "$out"
# Source-map comments point at files we do not ship.
strip_map() { sed '/^\/\/# sourceMappingURL=/d' "$1" > "$2"; }
strip_map "xterm-xterm-$XTERM/package/lib/xterm.mjs" "$out/xterm.mjs"
cp "xterm-xterm-$XTERM/package/css/xterm.css" "$out/xterm.css"
cp "xterm-xterm-$XTERM/package/LICENSE" "$out/LICENSE.xterm"
strip_map "xterm-addon-fit-$XTERM_FIT/package/lib/addon-fit.mjs" "$out/addon-fit.mjs"
cp "xterm-addon-fit-$XTERM_FIT/package/LICENSE" "$out/LICENSE.xterm-addon-fit" 2>/dev/null \
  || cp "xterm-xterm-$XTERM/package/LICENSE" "$out/LICENSE.xterm-addon-fit"
./node_modules/.bin/esbuild "novnc-novnc-$NOVNC/package/core/rfb.js" --bundle --format=esm \
  --log-level=warning --legal-comments=inline --outfile="$out/novnc.mjs"
cp "novnc-novnc-$NOVNC/package/LICENSE.txt" "$out/LICENSE.novnc"
for l in MPL-2.0 BSD-2-Clause BSD-3-Clause; do
  cp "novnc-novnc-$NOVNC/package/docs/LICENSE.$l" "$out/LICENSE.novnc.$l"
done
cp "novnc-novnc-$NOVNC/package/vendor/pako/LICENSE" "$out/LICENSE.novnc.pako"
cat > "$out/VERSIONS" <<V
@xterm/xterm $XTERM (lib/xterm.mjs, css/xterm.css)
@xterm/addon-fit $XTERM_FIT (lib/addon-fit.mjs)
@novnc/novnc $NOVNC (core/rfb.js and its imports, bundled by esbuild $ESBUILD)
V
ls -la "$out"
