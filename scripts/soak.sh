#!/usr/bin/env bash
# Soak of issue 8: builds once (Release), starts `serve` (by default the embedded arithmetic model, models/default,
# small enough that 5,000 requests take minutes) on a free loopback port, runs `soak` against it (5,000 requests of
# mixed lengths at concurrency 16, 10% of the clients hanging up mid-stream), reading the server's RSS from
# /proc/PID, stops the server and prints where the result is. Exit code 0 when every request was answered,
# cancelled or refused and RSS stayed within 5% of its level after the warm-up.
#
#   scripts/soak.sh [serve options] [-- soak options]
#   scripts/soak.sh -- --requests 500 --concurrency 8
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-common.sh

serve=(); soak=(); after=0
for a in "$@"; do
  if [ "$after" = 0 ] && [ "$a" = "--" ]; then after=1; continue; fi
  if [ "$after" = 0 ]; then serve+=("$a"); else soak+=("$a"); fi
done
defaults=(model models/default max-in-flight 16 max-queue 64 log-level Warning)
args=("${serve[@]}")
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
  has_option "${defaults[i]}" "${serve[@]}" || args+=("--${defaults[i]}" "${defaults[i+1]}")
done

build_host
start_server "${args[@]}"
set +e
dotnet "$HOST_DLL" soak --url "$SERVER_URL" --server-pid "$SERVER_PID" --model-note "started as \`serve ${args[*]}\`" "${soak[@]}" \
  | tee "$SERVER_LOG/soak.txt"
status=${PIPESTATUS[0]}
set -e
stop_server
result=$(grep '^result: ' "$SERVER_LOG/soak.txt" || true)
echo "${result:-no result written (exit code $status); server logs in $SERVER_LOG}"
exit "$status"
