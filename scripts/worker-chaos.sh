#!/usr/bin/env bash
# Worker processes whose death loses nothing (issue 19). `serve` runs its model worker in a child process; these cases
# kill that process under load and check what the clients saw against an undisturbed run of the same requests:
#
#   kill  STREAMS (16) concurrent streamed requests of NEW_TOKENS (128) new tokens with ignore_eos on the Qwen2.5-0.5B
#         shape (random weights): once greedy, once at temperature 0.8 with a seed per stream. Each is run undisturbed,
#         then again while the worker process is SIGKILLed KILLS (3) times: every stream must end with `done`, its text
#         byte-identical to the undisturbed run's, and /health must count KILLS more restarts, each with signal 9.
#         DTYPE (bfloat16) sets the weights' format: byte-identical text holds in float32; in bfloat16 libtorch's GEMM
#         rounds a resumed query's recompute differently from the uninterrupted decode (see the README).
#   oom   The same greedy requests in a memory cgroup (../shared/tools/in-memory-limit.sh, LIMIT 3000M), with the leak
#         fault (Faults:LeakBytesPerStep in a --settings file the worker re-reads) armed mid-run and recycling off
#         (--worker-recycle-after 0), so that the kernel's OOM killer ends the worker: /health must name the OOM kill as
#         the last exit; the leak is disarmed at once; every stream must end with `done` (whether its text equals the
#         undisturbed run's is printed: it does in float32, DTYPE=float32; see the README on bf16).
#
#   scripts/worker-chaos.sh [kill] [oom]         default: both
#   ACTORQUERY_NO_BUILD=1 STREAMS=8 scripts/worker-chaos.sh kill
#
# Resumes: a stream that runs through every kill is resumed KILLS times, so the server runs with --max-resumes KILLS
# (the default, 2, fails a query on its third loss on purpose). Needs curl, jq, node 20 and, for oom, root (the cgroup).
# Every server's output, logs and each run's streams stay in the folder printed at the end. Exit code 0 only when every
# case passed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-common.sh

STREAMS=${STREAMS:-16}
NEW_TOKENS=${NEW_TOKENS:-128}
KILLS=${KILLS:-3}
KILL_AFTER_S=${KILL_AFTER_S:-4}    # seconds of generation before each kill (after the start, then after each restart)
OOM_LIMIT=${OOM_LIMIT:-3000M}
LEAK=${LEAK:-256MiB}                # per engine step: faster than the worker's watchdog can pause and shed
MODEL=models/shapes/qwen2.5-0.5b
LIMIT_TOOL=${MEMORY_LIMIT_TOOL:-../shared/tools/in-memory-limit.sh}
DTYPE=${DTYPE:-bfloat16}        # float32: see the README on byte-identical resumes
SERVE_ARGS=(--model "$MODEL" --dummy-weights --dtype "$DTYPE" --cache-entries 0 --max-in-flight "$STREAMS" --max-batch "$STREAMS"
            --max-resumes "$KILLS" --deadline 1800)

for tool in curl jq node; do command -v $tool >/dev/null || { echo "error: $tool is needed" >&2; exit 2; }; done
cases=("$@"); [ ${#cases[@]} -gt 0 ] || cases=(kill oom)
build_host
RUN_DIR=$(mktemp -d /tmp/worker-chaos-XXXXXX)
echo "run folder: $RUN_DIR ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores)" >&2
SERVER_PID=; URL=; RESULTS=(); LIMITED=0

trap stop_case EXIT

health() { curl -s "$URL/health"; }
process_field() { health | jq -r ".worker_processes[0].$1"; }

# wait_process_ready: the worker process is ready again (after a kill).
wait_process_ready() {
  local deadline=$((SECONDS + 180))
  until [ "$(health | jq -r '.worker_processes[0].state')" = ready ]; do
    ((SECONDS < deadline)) || { echo "worker process not ready again after 180 s" >&2; return 1; }
    sleep 0.5
  done
}

# streams OUT TEMPERATURE SEED: STREAMS streams at once, what each client saw in OUT.
streams() { node scripts/lib/streams.mjs "$URL" "$STREAMS" "$NEW_TOKENS" "$2" "$3" "$1" >&2; }

# compare BASE RUN: every stream of RUN ended with done and has BASE's text; prints the mismatches.
compare() {
  jq -n --slurpfile a "$1" --slurpfile b "$2" \
    '[range(0; $a[0] | length) as $i | select($b[0][$i].end != "done" or $b[0][$i].text != $a[0][$i].text)
      | "stream \($i): end \($b[0][$i].end) \($b[0][$i].data // ""), \($b[0][$i].text | length) chars vs \($a[0][$i].text | length)"] | .[]' -r
}

# verdict NAME PROBLEMS...: one row of the table.
verdict() {
  local name=$1; shift
  if [ $# -eq 0 ]; then RESULTS+=("PASS  $name"); else RESULTS+=("FAIL  $name: $*"); fi
}

case_kill() {
  start_case kill none || { verdict kill "did not start"; return; }
  local temperature seed mode
  for mode in greedy sampled; do
    if [ $mode = greedy ]; then temperature=0; seed=none; else temperature=0.8; seed=1000; fi
    streams "$DIR/$mode-undisturbed.json" $temperature $seed
    local restarts_before; restarts_before=$(process_field restarts)
    streams "$DIR/$mode-killed.json" $temperature $seed &
    local client=$! kills=0 problems=()
    for ((k = 1; k <= KILLS; k++)); do
      sleep "$KILL_AFTER_S"
      kill -0 $client 2>/dev/null || { problems+=("the streams ended before kill $k"); break; }
      local pid; pid=$(process_field pid)
      kill -KILL "$pid"; kills=$((kills + 1))
      echo "[kill/$mode] kill $k: SIGKILL to worker process pid $pid" >&2
      wait_process_ready || { problems+=("no restart after kill $k"); break; }
    done
    wait $client || true
    local restarts; restarts=$(process_field restarts)
    local mismatches; mismatches=$(compare "$DIR/$mode-undisturbed.json" "$DIR/$mode-killed.json")
    health >"$DIR/$mode-health.json"
    [ -z "$mismatches" ] || problems+=("$(wc -l <<<"$mismatches") stream(s) differ: $(head -3 <<<"$mismatches" | tr '\n' ';')")
    [ $((restarts - restarts_before)) -eq "$KILLS" ] || problems+=("/health counts $((restarts - restarts_before)) restarts, not $KILLS")
    [ "$(process_field last_exit.signal)" = 9 ] || problems+=("last_exit is not signal 9: $(process_field last_exit)")
    echo "[kill/$mode] $kills kills; restarts $restarts_before -> $restarts; $(jq '[.[] | select(.end == "done")] | length' "$DIR/$mode-killed.json")/$STREAMS streams done; identical: $([ -z "$mismatches" ] && echo all || echo no)" >&2
    verdict "kill/$mode: $STREAMS streams x $NEW_TOKENS tokens, $kills SIGKILLs" "${problems[@]}"
  done
  cp "$DIR/greedy-undisturbed.json" "$RUN_DIR/greedy-base.json"
  stop_case
}

case_oom() {
  [ -x "$LIMIT_TOOL" ] || { verdict oom "no cgroup tool at $LIMIT_TOOL"; return; }
  mkdir -p "$RUN_DIR/oom"
  local settings=$RUN_DIR/oom/settings.json
  echo '{"ActorQuery": {"Faults": {"LeakBytesPerStep": "0"}}}' >"$settings"
  start_case oom "$OOM_LIMIT" --settings "$settings" --worker-recycle-after 0 || { verdict oom "did not start"; return; }
  local base=$RUN_DIR/greedy-base.json problems=()
  [ -f "$base" ] || { stop_case; start_case oom-base none; streams "$RUN_DIR/greedy-base.json" 0 none; stop_case;
                      start_case oom "$OOM_LIMIT" --settings "$settings" --worker-recycle-after 0; }
  streams "$DIR/greedy-oom.json" 0 none &
  local client=$!
  sleep "$KILL_AFTER_S"
  echo "{\"ActorQuery\": {\"Faults\": {\"LeakBytesPerStep\": \"$LEAK\"}}}" >"$settings"
  echo "[oom] leak armed: $LEAK per engine step" >&2
  local deadline=$((SECONDS + 120))
  until [ "$(process_field last_exit.oom_killed)" = true ]; do
    if ((SECONDS >= deadline)); then problems+=("no OOM kill within 120 s"); break; fi
    sleep 0.2
  done
  echo '{"ActorQuery": {"Faults": {"LeakBytesPerStep": "0"}}}' >"$settings"
  echo "[oom] last exit: $(process_field last_exit.reason); leak disarmed" >&2
  wait $client || true
  health >"$DIR/health.json"
  # Every stream must end with `done`; byte-identical text is reported (it holds in float32, see the README).
  local unfinished; unfinished=$(jq -r '[.[] | select(.end != "done") | "stream \(.i): \(.end) \(.data)"] | .[]' "$DIR/greedy-oom.json")
  [ -z "$unfinished" ] || problems+=("$(wc -l <<<"$unfinished") stream(s) did not end: $(head -3 <<<"$unfinished" | tr '\n' ';')")
  [ "$(jq -r '.worker_processes[0].last_exit.oom_killed' "$DIR/health.json")" = true ] || problems+=("/health does not name an OOM kill")
  local mismatches; mismatches=$(compare "$base" "$DIR/greedy-oom.json")
  echo "[oom] identical to the undisturbed run: $([ -z "$mismatches" ] && echo all || echo "$(wc -l <<<"$mismatches") of $STREAMS differ")" >&2
  stop_case
  local line; line=$(grep '^in-memory-limit:' "$DIR/stderr.txt" | tail -1 || true)
  echo "[oom] $(jq '[.[] | select(.end == "done")] | length' "$DIR/greedy-oom.json")/$STREAMS streams done; cgroup: ${line#in-memory-limit: }" >&2
  verdict "oom: $STREAMS streams in $OOM_LIMIT, the kernel kills the leaking worker" "${problems[@]}"
}

for c in "${cases[@]}"; do
  case $c in
    kill) case_kill ;;
    oom) case_oom ;;
    *) echo "unknown case $c (kill, oom)" >&2; exit 2 ;;
  esac
done
echo; printf '%s\n' "${RESULTS[@]}"; echo "run folder: $RUN_DIR"
! printf '%s\n' "${RESULTS[@]}" | grep -q '^FAIL'
