#!/usr/bin/env bash
# Soak: builds once (Release), starts `serve` (by default the embedded arithmetic model, models/default,
# small enough that 5,000 requests take minutes) on a free loopback port, runs the bench tool's `soak` against it (5,000 requests of
# mixed lengths at concurrency 16, 10% of the clients hanging up mid-stream), reading the server's RSS from
# /proc/PID, stops the server and prints where the result is. Exit code 0 when every request was answered,
# cancelled or refused and RSS stayed within 5% of its level after the warm-up.
#
#   scripts/soak.sh [serve options] [-- soak options]
#   scripts/soak.sh -- --requests 500 --concurrency 8
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-common.sh

defaults=(model models/default max-in-flight 16 max-queue 64 log-level Warning)
split_serve_args "$@"

build_host
start_server "${args[@]}"
run_verb soak 'result: ' --url "$SERVER_URL" --server-pid "$SERVER_PID" --model-note "started as \`serve ${args[*]}\`" "${rest[@]}"
