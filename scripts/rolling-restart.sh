#!/usr/bin/env bash
# A rolling restart without loss (issue 23): a 3-node cluster of scripts/cluster-local.sh (each node a gateway with its
# worker process) under continuous streamed and non-streamed load (scripts/lib/rolling-load.mjs, CONCURRENCY loops over
# the gateways, as a load balancer would spread them), while each node in turn gets SIGTERM (it drains: readiness 503,
# its workers leave every gateway's routing, running queries finish) and is started again. Passes when no query that a
# gateway took failed: every one ended 200 with its 64 tokens, every stream with its `done` event.
#
#   scripts/rolling-restart.sh [BASEPORT]      default 19400; CONCURRENCY=6 SETTLE_S=5
#
# Needs curl, python3 and node 20; the cluster's logs stay in .cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-19400}
CONCURRENCY=${CONCURRENCY:-6}
SETTLE_S=${SETTLE_S:-5}   # seconds of load before the first restart and after each
RUN=$(mktemp -d /tmp/rolling-restart-XXXXXX)
trap 'touch "$RUN/stop"; scripts/cluster-local.sh stop >/dev/null 2>&1 || true' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; run folder $RUN" >&2
scripts/cluster-local.sh start 3 "$BASE" --cache-entries 0
node scripts/lib/rolling-load.mjs "$BASE" 3 "$CONCURRENCY" "$RUN/stop" "$RUN/load.json" > "$RUN/load.txt" &
LOAD=$!
sleep "$SETTLE_S"
for i in 0 1 2; do
  scripts/cluster-local.sh restart "$i"
  sleep "$SETTLE_S"
done
touch "$RUN/stop"; wait $LOAD
cat "$RUN/load.txt"
failed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["failed"])' "$RUN/load.json")
if [ "$failed" != 0 ]; then
  echo "FAIL: $failed queries failed; the first ones:" >&2
  python3 -c 'import json,sys; [print(json.dumps(f)[:400]) for f in json.load(open(sys.argv[1]))["failures"][:5]]' "$RUN/load.json" >&2
  exit 1
fi
echo "PASS: 3 nodes restarted one after another under load, 0 failed queries"
