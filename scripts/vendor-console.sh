#!/usr/bin/env bash
# Refreshes the console's vendored JavaScript from the npm registry at the pinned versions,
# checking each tarball against the registry's integrity hash. Not part of any build: the
# files are committed, and the binary embeds them (src/serve/console.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
MPEGTS=1.8.2
UPLOT=1.6.32
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() { # package version
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null)
  local tgz="$work/${1}-$2.tgz" want got
  want=$(npm view "$1@$2" dist.integrity)
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  [ "$want" = "$got" ] || { echo "vendor: $1@$2 integrity mismatch" >&2; exit 1; }
  mkdir -p "$work/$1" && tar xzf "$tgz" -C "$work/$1"
}
fetch mpegts.js "$MPEGTS"
fetch uplot "$UPLOT"
out=console/vendor
cp "$work/mpegts.js/package/dist/mpegts.js" "$out/mpegts.js"
cp "$work/mpegts.js/package/dist/mpegts.js.LICENSE.txt" "$out/mpegts.js.LICENSE.txt"
cp "$work/mpegts.js/package/LICENSE" "$out/mpegts.js.LICENSE"
cp "$work/uplot/package/dist/uPlot.iife.min.js" "$out/uPlot.iife.min.js"
cp "$work/uplot/package/dist/uPlot.min.css" "$out/uPlot.min.css"
cp "$work/uplot/package/LICENSE" "$out/uPlot.LICENSE"
sha256sum "$out"/*.js "$out"/*.css
