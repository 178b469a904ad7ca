#!/usr/bin/env bash
# Package the deployable zip with no AWS account: the framework only needs
# credentials to exist, and placeholder values stand in for the deploy-time secrets.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-AKIAIOSFODNN7EXAMPLE}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-placeholder}"
export DATABASE_URL="${DATABASE_URL:-postgresql://placeholder@db.invalid/xyn}"
export PUSHGATEWAY_URL="${PUSHGATEWAY_URL:-http://pushgateway.invalid:9091}"
export SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off
exec npx serverless package "$@"
