#!/usr/bin/env bash
# Run a command (a serverless package or deploy) holding this checkout's packaging
# lock: scripts/deploy/locked.sh npx serverless deploy --stage prod
set -euo pipefail
cd "$(dirname "$0")/../.."
# One at a time per checkout: with one zip per function serverless-esbuild
# passes the zips through the project's own .serverless/, which a second packaging
# running at the same time (parallel tests) would overwrite or delete.
mkdir -p .tmp
if command -v flock >/dev/null 2>&1; then
  exec flock .tmp/package.lock "$@"
fi
# No flock (macOS): a directory is the lock, since mkdir makes it or fails atomically.
# The holder writes its pid into it at once and removes it on exit; a holder that died
# without (kill -9) leaves it behind, and the next packaging removes it when that pid is
# gone (or, pid never written, after 3 s), under a second mkdir lock so that two waiters
# cannot both remove it and both go on.
lock=.tmp/package.lock.d
alive() { kill -0 "$1" 2>/dev/null || ps -p "$1" >/dev/null 2>&1; }
holder() { cat "$lock/pid" 2>/dev/null || true; }
unwritten=0
until mkdir "$lock" 2>/dev/null; do
  pid="$(holder)"
  if [ -n "$pid" ]; then unwritten=0; else unwritten=$((unwritten + 1)); fi
  if { [ -n "$pid" ] && ! alive "$pid"; } || [ "$unwritten" -gt 3 ]; then
    if mkdir "$lock.break" 2>/dev/null; then
      [ "$(holder)" = "$pid" ] && rm -rf "$lock"
      rmdir "$lock.break"
    fi
  fi
  sleep 1
done
echo "$$" > "$lock/pid"
trap 'rm -rf "$lock"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
"$@"
