#!/usr/bin/env bash
# A model pool inside a memory limit (issue 22). Two cases:
#
#   evict      Three copies of the Qwen2.5-0.5B shape (random weights, bfloat16) under the names q1, q2, q3, q1 pinned,
#              in a memory cgroup (../shared/tools/in-memory-limit.sh, LIMIT 6G) whose budget fits two: REQUESTS (60)
#              chat requests alternating q1, q2, q3, CONCURRENCY (6) at once. Passes when every request got 200 from the
#              model it named, actorquery_model_evictions_total is at least 1, the kernel's OOM killer never acted, no
#              request was refused or timed out, and q1 (pinned) was loaded once and never unloaded.
#   cluster    Two cluster nodes on loopback, each a pool of the same two names (x, y: the default model) that loads only
#              one of them (--serves): a request for each model through either node's gateway is answered by the node
#              that loads it (the reply's `node` field).
#   keepalive  One model (k1) with --keep-alive KEEP_ALIVE (15s): the server's resident memory (its process and its worker
#              processes) before the first request, with the model loaded, and after the keep-alive unloaded it. Passes
#              when the memory after is within 10% of the memory before.
#
#   scripts/model-pool.sh [evict] [keepalive] [cluster]        default: all three
#   ACTORQUERY_NO_BUILD=1 REQUESTS=30 scripts/model-pool.sh evict
#
# Needs curl, jq, node 20 and, for evict, root (the cgroup). Every server's output and logs stay in the folder printed
# at the start. Exit code 0 only when every case passed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-common.sh

REQUESTS=${REQUESTS:-60}
CONCURRENCY=${CONCURRENCY:-6}
MAX_TOKENS=${MAX_TOKENS:-16}
LIMIT=${LIMIT:-6G}
KEEP_ALIVE=${KEEP_ALIVE:-15s}
MODEL=models/shapes/qwen2.5-0.5b
SERVE_ARGS=(--dummy-weights --dtype bfloat16 --cache-entries 0 --log-level Information)

for tool in curl jq node; do command -v $tool >/dev/null || { echo "error: $tool is needed" >&2; exit 2; }; done
cases=("$@"); [ ${#cases[@]} -gt 0 ] || cases=(evict keepalive cluster)
build_host
RUN_DIR=$(mktemp -d /tmp/model-pool-XXXXXX)
echo "run folder: $RUN_DIR ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores)" >&2
SERVER_PID=; URL=; RESULTS=(); LIMITED=0
export READY_PATH=/v1/models   # a pool without a pinned model is ready once it answers

trap stop_case EXIT

# tree_rss: resident bytes of the server process and its worker processes.
tree_rss() {
  local pid; pid=$(case_server_pid)
  local total=0 p kb
  for p in $pid $(pgrep -P "$pid" || true); do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0} * 1024))
  done
  echo $total
}

metric() { curl -s "$URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
model_state() { curl -s "$URL/v1/models" | jq -r --arg m "$1" '.data[] | select(.id == $m) | .pool.state'; }
mib() { echo "$(( $1 / 1048576 )) MiB"; }

verdict() {
  local name=$1; shift
  if [ $# -eq 0 ]; then RESULTS+=("PASS  $name"); else RESULTS+=("FAIL  $name: $*"); fi
}

case_evict() {
  start_case evict "$LIMIT" --model q1=$MODEL --model q2=$MODEL --model q3=$MODEL --pin q1 || { verdict evict "did not start"; return; }
  local deadline=$((SECONDS + 300))
  until [ "$(model_state q1)" = ready ]; do ((SECONDS < deadline)) || break; sleep 1; done
  node scripts/lib/pool-load.mjs "$URL" "$REQUESTS" "$CONCURRENCY" q1,q2,q3 "$MAX_TOKENS" "$DIR/requests.json" | tee "$DIR/summary.txt" >&2
  curl -s "$URL/v1/models" > "$DIR/models.json"
  curl -s "$URL/metrics" > "$DIR/metrics.txt"
  local problems=()
  local ok; ok=$(jq '[.[] | select(.status == 200 and .error == null)] | length' "$DIR/requests.json")
  [ "$ok" = "$REQUESTS" ] || problems+=("$ok of $REQUESTS answered 200 by their model")
  local evictions; evictions=$(awk '$1 ~ /^actorquery_model_evictions_total/ {s += $2} END {print s + 0}' "$DIR/metrics.txt")
  ((evictions >= 1)) || problems+=("no eviction")
  local q1; q1=$(jq -r '.data[] | select(.id == "q1") | "\(.pool.loads) \(.pool.unloads)"' "$DIR/models.json")
  [ "$q1" = "1 0" ] || problems+=("q1 (pinned): loads and unloads $q1")
  local slowest; slowest=$(jq '[.[].seconds] | max' "$DIR/requests.json")
  jq -r '.data[] | "  \(.id): \(.pool.state), loads \(.pool.loads), unloads \(.pool.unloads), evictions \(.pool.evictions), reserves \(.pool.reservation_bytes / 1048576 | floor) MiB, resident \((.pool.resident_bytes // 0) / 1048576 | floor) MiB"' "$DIR/models.json" >&2
  stop_case
  local oom; oom=$(grep -o 'oom_kill [0-9]*' "$DIR/stderr.txt" | tail -1 | awk '{print $2}')
  local peak; peak=$(grep -io 'peak[^,;]*' "$DIR/stderr.txt" | tail -1 || true)
  [ "${oom:-0}" = 0 ] || problems+=("the OOM killer acted $oom times")
  echo "[evict] evictions $evictions, slowest request ${slowest}s, cgroup: ${peak:-peak unknown}, oom_kill ${oom:-?}" >&2
  verdict evict "${problems[@]}"
}

case_keepalive() {
  start_case keepalive none --model k1=$MODEL --keep-alive "$KEEP_ALIVE" || { verdict keepalive "did not start"; return; }
  sleep 3
  local before; before=$(tree_rss)
  curl -s "$URL/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"k1","messages":[{"role":"user","content":"hi"}],"max_tokens":8}' -o "$DIR/answer.json" -w '%{http_code}\n' >&2
  local loaded; loaded=$(tree_rss)
  local deadline=$((SECONDS + 120))
  until [ "$(model_state k1)" = available ]; do ((SECONDS < deadline)) || break; sleep 1; done
  sleep 2
  local after; after=$(tree_rss)
  echo "[keepalive] resident: before the load $(mib "$before"), loaded $(mib "$loaded"), after the keep-alive unload $(mib "$after")" >&2
  local problems=()
  [ "$(model_state k1)" = available ] || problems+=("k1 was not unloaded within 120 s")
  (( after * 10 <= before * 11 )) || problems+=("resident after the unload ($(mib "$after")) is more than 10% above before ($(mib "$before"))")
  stop_case
  verdict keepalive "${problems[@]}"
}

case_cluster() {
  local dir=$RUN_DIR/cluster; mkdir -p "$dir"
  local p1 p2 r1 r2; p1=$(free_port); p2=$(free_port); r1=$(free_port); r2=$(free_port)
  local seed="akka.tcp://actorquery@127.0.0.1:$r1" pids=() problems=()
  local common=(serve --model x=models/default --model y=models/default --cluster-host 127.0.0.1 --seed-nodes "$seed" --log-level Information)
  "${HOST[@]}" "${common[@]}" --serves x --node-name n1 --cluster-port "$r1" --urls "http://127.0.0.1:$p1" --log-folder "$dir/logs-1" >"$dir/n1.txt" 2>&1 &
  pids+=($!)
  "${HOST[@]}" "${common[@]}" --serves y --node-name n2 --cluster-port "$r2" --urls "http://127.0.0.1:$p2" --log-folder "$dir/logs-2" >"$dir/n2.txt" 2>&1 &
  pids+=($!)
  echo "[cluster] n1 (loads x) on $p1, n2 (loads y) on $p2" >&2
  local deadline=$((SECONDS + 120)) port model answer node
  for port in $p1 $p2; do
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/models")" = 200 ]; do
      ((SECONDS < deadline)) || { problems+=("gateway $port not up"); break; }; sleep 1
    done
  done
  sleep 6   # each pool publishes its models every 5 s
  for port in $p1 $p2; do
    for model in x y; do
      answer=$(curl -s --max-time 120 "http://127.0.0.1:$port/query" -H 'content-type: application/json'         -d "{\"model\":\"$model\",\"prompt\":\"What is 2 + 3?\",\"max_tokens\":4,\"temperature\":0}")
      node=$(echo "$answer" | jq -r '.node // empty' | cut -d/ -f1)
      echo "[cluster] gateway $port, model $model: answered by ${node:-nobody} $(echo "$answer" | jq -c '{model, text, detail}' 2>/dev/null)" >&2
      local want=n1; [ $model = y ] && want=n2
      [ "$node" = "$want" ] || problems+=("gateway $port, model $model: answered by '${node}' not $want")
    done
  done
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  verdict cluster "${problems[@]}"
}

for c in "${cases[@]}"; do "case_$c"; done
printf '%s\n' "${RESULTS[@]}"
for r in "${RESULTS[@]}"; do [[ $r == PASS* ]] || exit 1; done
