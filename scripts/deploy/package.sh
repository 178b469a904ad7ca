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
# One packaging at a time per checkout (scripts/deploy/locked.sh).
exec bash scripts/deploy/locked.sh npx serverless package "$@"
