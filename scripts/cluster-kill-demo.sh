#!/usr/bin/env bash
# Starts 3 local nodes, runs load through node 0, SIGKILLs node 2 in the middle of it, and counts what happened to
# every query: completed (200), failed (an HTTP error with a reason), lost (no answer at all). Lost must be 0.
#
#   scripts/cluster-kill-demo.sh [BASEPORT=9100] [LOAD_SECONDS=40] [KILL_AFTER=12] [CLIENTS=6]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${1:-9100}" LOAD="${2:-40}" KILL_AFTER="${3:-12}" CLIENTS="${4:-6}"
OUT="$ROOT/.cluster/demo"
cd "$ROOT"

scripts/cluster-local.sh start 3 "$BASE" --device cpu --cache-entries 0
trap 'scripts/cluster-local.sh stop >/dev/null' EXIT
rm -rf "$OUT" && mkdir -p "$OUT"

client() { # one client: queries back to back until the load time is over; one line per query: HTTP code
  local c="$1" end=$((SECONDS + LOAD)) k=0
  while (( SECONDS < end )); do
    k=$((k + 1))
    code=$(curl -s -o "$OUT/body-$c-$k" -w '%{http_code}' --max-time 150 -H 'Content-Type: application/json' \
      -d '{"prompt": "What is 7 times 8?", "max_new_tokens": 24, "temperature": 0.8}' \
      "http://127.0.0.1:$BASE/query" || true)
    echo "$code $c-$k" >> "$OUT/results"
  done
}

echo "load: $CLIENTS clients through node 0 for ${LOAD}s; node 2 is killed after ${KILL_AFTER}s"
for c in $(seq 1 "$CLIENTS"); do client "$c" & done
sleep "$KILL_AFTER"
victim=$(sed -n 3p .cluster/pids)
kill -KILL "$victim"
echo "$(date -u +%T) SIGKILL node 2 (pid $victim)"
sleep 8
echo "/cluster on node 0, 8 s after the kill:"
curl -s "http://127.0.0.1:$BASE/cluster" | python3 -c '
import json, sys
c = json.load(sys.stdin)
for m in c["members"]: print("  member %s  %-8s reachable=%s" % (m["address"], m["status"], m["reachable"]))
for w in c["workers"]: print("  worker %s/%s at %s  %s  load=%d" % (w["node"], w["worker"], w["address"], w["state"], w["load"]))' || true
wait
echo "$(date -u +%T) load done"

python3 - "$OUT" <<'PY'
import collections, json, os, sys
out = sys.argv[1]
rows = [l.split() for l in open(os.path.join(out, "results")) if l.strip()]
completed = [r for r in rows if r[0] == "200"]
lost = [r for r in rows if r[0] == "000"]
failed = [r for r in rows if r[0] not in ("200", "000")]
print(f"queries: {len(rows)}  completed: {len(completed)}  failed: {len(failed)}  lost: {len(lost)}")
reasons = collections.Counter()
for code, key in failed:
    try: body = json.load(open(os.path.join(out, f"body-{key}")))
    except Exception: body = {}
    reasons[f"HTTP {code}: {body.get('detail') or body.get('title') or '?'}"] += 1
for r, n in reasons.most_common(): print(f"  {n} x {r}")
sys.exit(1 if lost else 0)
PY
