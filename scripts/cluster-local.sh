#!/usr/bin/env bash
# A cluster of N ActorQuery nodes on this machine.
#
#   scripts/cluster-local.sh start N BASEPORT [serve options...]
#   scripts/cluster-local.sh stop
#
# Node i serves HTTP on BASEPORT+i and Akka.Remote on BASEPORT+100+i; node 0 is the seed and every node is
# gateway and worker. The Host is built once (Release) and each node runs the built dll. start returns when every
# node is an Up member of the cluster (as node 0's GET /cluster shows) and every node's /health/ready is 200.
# Process ids go to .cluster/pids (one per line), logs to .cluster/node-i.log (+ .cluster/logs-i/ for Serilog files).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.cluster"
DLL="$ROOT/src/Host/bin/Release/net10.0/linux-x64/actorquery.dll"
START_TIMEOUT="${CLUSTER_START_TIMEOUT:-180}"

usage() { echo "usage: $0 start N BASEPORT [serve options...] | $0 stop" >&2; exit 2; }

stop() {
  [[ -f "$DIR/pids" ]] || { echo "no cluster running (no $DIR/pids)"; return 0; }
  local pids; pids=$(cat "$DIR/pids")
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 300); do
    local alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null && echo "node $pid did not stop in 30 s: killed"; done
  rm -f "$DIR/pids"
  echo "stopped $(echo "$pids" | wc -w) node(s)"
}

# Counts the members node 0 sees as up, and whether all of them are reachable.
up_members() {
  curl -s --max-time 2 "http://127.0.0.1:$1/cluster" | python3 -c '
import json, sys
try: c = json.load(sys.stdin)
except Exception: print(0); sys.exit()
print(sum(1 for m in c.get("members", []) if m["status"] == "up" and m["reachable"]))' 2>/dev/null || echo 0
}

start() {
  [[ $# -ge 2 ]] || usage
  local n="$1" base="$2"; shift 2
  [[ "$n" =~ ^[1-9][0-9]*$ && "$base" =~ ^[0-9]+$ ]] || usage
  (( base + 100 + n <= 65535 )) || { echo "BASEPORT too high" >&2; exit 2; }
  if [[ -f "$DIR/pids" ]]; then echo "a cluster is already running ($DIR/pids); run '$0 stop' first" >&2; exit 1; fi
  mkdir -p "$DIR"
  if [[ "${CLUSTER_SKIP_BUILD:-0}" != 1 ]]; then
    echo "building src/Host (Release) once..."
    (cd "$ROOT" && dotnet build src/Host -c Release -v quiet -nologo) > "$DIR/build.log" 2>&1 \
      || { echo "build failed: see $DIR/build.log" >&2; exit 1; }
  fi
  local seed="akka.tcp://actorquery@127.0.0.1:$((base + 100))"
  : > "$DIR/pids"
  for i in $(seq 0 $((n - 1))); do
    local seeds="$seed"
    (cd "$ROOT" && exec dotnet "$DLL" serve --urls "http://127.0.0.1:$((base + i))" \
        --cluster-host 127.0.0.1 --cluster-port $((base + 100 + i)) --seed-nodes "$seeds" \
        --node-name "node-$i" --log-folder "$DIR/logs-$i" "$@") > "$DIR/node-$i.log" 2>&1 &
    echo $! >> "$DIR/pids"
  done
  echo "started $n node(s): pids $(tr '\n' ' ' < "$DIR/pids"); waiting for the cluster..."
  local deadline=$((SECONDS + START_TIMEOUT))
  while (( SECONDS < deadline )); do
    for pid in $(cat "$DIR/pids"); do
      kill -0 "$pid" 2>/dev/null || { echo "node pid $pid exited; see $DIR/node-*.log" >&2; stop; exit 1; }
    done
    local ready=0
    for i in $(seq 0 $((n - 1))); do
      [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$((base + i))/health/ready")" == 200 ]] && ready=$((ready + 1))
    done
    local up; up=$(up_members "$base")
    if [[ $ready == "$n" && $up == "$n" ]]; then
      echo "cluster ready: $n members up, $n nodes ready (HTTP ${base}..$((base + n - 1)), remoting $((base + 100))..$((base + 100 + n - 1)))"
      return 0
    fi
    sleep 1
  done
  echo "the cluster did not come up within ${START_TIMEOUT}s (members up: $(up_members "$base"), see $DIR/node-*.log)" >&2
  stop
  exit 1
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  *) usage ;;
esac
