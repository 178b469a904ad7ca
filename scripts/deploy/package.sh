#!/usr/bin/env bash
# Package the deployable zips with no AWS account: the framework only needs
# credentials to exist. No secret is read here (the functions read theirs from SSM
# at run time); the region must be given (AWS_REGION or --region), as for a deploy.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-AKIAIOSFODNN7EXAMPLE}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-placeholder}"
export PUSHGATEWAY_URL="${PUSHGATEWAY_URL:-https://pushgateway.invalid:9091}"
export SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off
# One packaging at a time per checkout: with one zip per function serverless-esbuild
# passes the zips through the project's own .serverless/, which a second packaging
# running at the same time (parallel tests) would overwrite or delete.
mkdir -p .tmp
exec flock .tmp/package.lock npx serverless package "$@"
