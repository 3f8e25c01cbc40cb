#!/usr/bin/env bash
# Builds the single-file agent binary with `bun build --compile`, for this machine or
# cross-compiled for a board: deploy/build-binary.sh [x64|arm64] [outfile]
# Release build: deploy/build-binary.sh all (or `bun run build`) builds dist/mrtd-agent-linux-x64 and
# dist/mrtd-agent-linux-arm64, writes their sums to dist/SHA256SUMS and prints sum, size and name.
# The output is reproducible (same commit and Bun version, same bytes; the output file name is
# embedded in the binary, so release builds always use these names): yocto/meta-mrtd pins these sums.
# The arm64 build uses Bun's pinned linux-aarch64 executable from the npm registry
# (same version as the devDependency), so it works offline once fetched and is reproducible.
# Never strip the result: `strip` removes the embedded program (public Bun issue).
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-x64}"
if [ "$arch" = all ]; then
  [ $# -le 1 ] || { echo "usage: $0 all" >&2; exit 2; }
  for a in x64 arm64; do bash deploy/build-binary.sh "$a" "dist/mrtd-agent-linux-$a" >/dev/null; done
  (cd dist && sha256sum mrtd-agent-linux-x64 mrtd-agent-linux-arm64 >SHA256SUMS)
  while read -r sum name; do
    printf '%s  %10d  dist/%s\n' "$sum" "$(stat -c %s "dist/$name")" "$name"
  done <dist/SHA256SUMS
  exit 0
fi
out="${2:-dist/mrtd-agent-linux-$arch}"
bun_version=$(node -p 'require("./package.json").devDependencies.bun')
mkdir -p "$(dirname "$out")"
case "$arch" in
  x64)
    ./node_modules/.bin/bun build --compile --no-compile-autoload-dotenv --no-compile-autoload-bunfig --minify --sourcemap=none --target=bun-linux-x64 agent/cli.ts agent/transport/pcsc-worker.ts --outfile "$out" >&2
    ;;
  arm64)
    cache="dist/.bun-linux-aarch64-$bun_version"
    if [ ! -x "$cache/package/bin/bun" ]; then
      mkdir -p "$cache"
      (cd "$cache" && npm pack --silent "@oven/bun-linux-aarch64@$bun_version" >/dev/null && tar xzf oven-bun-linux-aarch64-"$bun_version".tgz)
    fi
    ./node_modules/.bin/bun build --compile --no-compile-autoload-dotenv --no-compile-autoload-bunfig --minify --sourcemap=none --target=bun-linux-arm64 \
      --compile-executable-path="$cache/package/bin/bun" agent/cli.ts agent/transport/pcsc-worker.ts --outfile "$out" >&2
    ;;
  *) echo "usage: $0 [x64|arm64|all] [outfile]" >&2; exit 2 ;;
esac
echo "$out"
