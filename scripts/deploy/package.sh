#!/usr/bin/env bash
# Package the deployable zips with no AWS account: the framework only needs
# credentials to exist. No secret is read here (the functions read theirs from SSM
# at run time); the region must be given (AWS_REGION or --region), as for a deploy.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-AKIAIOSFODNN7EXAMPLE}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-placeholder}"
# A sink is required; with none in the environment or the stage's settings file, a
# placeholder gateway (never contacted) stands in, so a bare `npm run package` works.
stage=dev
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --stage|-s) stage="${args[$((i + 1))]:-dev}" ;;
    --stage=*) stage="${args[$i]#--stage=}" ;;
  esac
done
if [ -z "${PUSHGATEWAY_URL:-}${REMOTE_WRITE_URL:-}" ] && ! grep -qsE '^[[:space:]]*(PUSHGATEWAY_URL|REMOTE_WRITE_URL)[[:space:]]*=[[:space:]]*[^[:space:]]' "stages/$stage.env"; then
  export PUSHGATEWAY_URL=https://pushgateway.invalid:9091
fi
export SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off
# One packaging at a time per checkout: with one zip per function serverless-esbuild
# passes the zips through the project's own .serverless/, which a second packaging
# running at the same time (parallel tests) would overwrite or delete.
mkdir -p .tmp
if command -v flock >/dev/null 2>&1; then
  exec flock .tmp/package.lock npx serverless package "$@"
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
npx serverless package "$@"
