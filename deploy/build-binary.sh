#!/usr/bin/env bash
# Builds the single-file agent binary with `bun build --compile`, for this machine or
# cross-compiled for a board: deploy/build-binary.sh [x64|arm64] [outfile]
# The arm64 build uses Bun's pinned linux-aarch64 executable from the npm registry
# (same version as the devDependency), so it works offline once fetched and is reproducible.
# Never strip the result: `strip` removes the embedded program (public Bun issue).
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-x64}"
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
  *) echo "usage: $0 [x64|arm64] [outfile]" >&2; exit 2 ;;
esac
echo "$out"
