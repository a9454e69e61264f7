#!/usr/bin/env bash
# The memory plan at work (issue 18): the server sizes itself to the memory it really has, refuses at start what
# cannot fit (exit code 2, one `error: ...` line on stderr) instead of being killed by the kernel later, and under a
# leak it pauses and sheds instead of running into the kernel's OOM killer. Each case starts `serve` (Release build),
# mostly inside a memory cgroup of its own (../shared/tools/in-memory-limit.sh, which reports the cgroup's OOM kills),
# checks what a user would see, stops it, and ends in one row of the table printed at the end:
#
#   1  no cgroup: the Qwen2.5-7B shape (bf16, random weights) is ready within 4 minutes and answers 4 requests at once
#   2  2 GiB: the 0.5B shape (bf16) answers 16 requests of ~1,200 prompt and 100 new tokens at once; the KV pool
#      (GET /memory, saved as case2/memory.json) is sized to fit; no OOM kill
#   3  1.8 GiB with --kv-cache-size 6GiB: start fails with exit code 2 and a one-line reason; no kill
#   4  1.8 GiB, the 0.5B shape: --dtype float32 fails at start (exit code 2, the reason); --dtype auto starts, logs
#      why it chose its format, and answers 8 requests at once
#   5  2 GiB, 0.5B bf16 under 8 clients of long generations: the leak fault (Faults:LeakBytesPerStep in a --settings
#      file the server re-reads) is armed: readiness turns 503 with a memory reason, new requests get 503 with
#      Retry-After, /memory says paused or shedding, and nothing is killed; disarmed, admission resumes; every request
#      of the load got exactly one reply (200, or a 503/429 refusal)
#
#   scripts/memory-limits.sh [CASE...]        CASE: 1 to 5; default: all
#   ACTORQUERY_NO_BUILD=1 scripts/memory-limits.sh 3 4
#
# Needs root (the cgroup), curl and jq; runs one server at a time. Exit code 0 only when every case run passed.
# Each case's server output, logs, requests and replies stay in the folder printed at the start and the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-common.sh

# GET /memory's fields (see its example in /docs), as jq expressions over the whole reply: the model's plan is its
# worker process's own report (worker_processes[0].memory) when the server runs one (the default), else the top level.
JQ_KV_POOL_BYTES='(.worker_processes[0].memory // .).plan.kv_pool_bytes'
JQ_KV_POOL_TOKENS='(.worker_processes[0].memory // .).kv.capacity_tokens'
JQ_LIMIT_BYTES='(.worker_processes[0].memory // .).limit.bytes'
JQ_MEMORY_STATE='(.worker_processes[0].memory // .).watchdog.state'
# A 503 from /health/ready for memory names it in its body ({"status":"memory_pressure"} or so).
READY_MEMORY_PATTERN='memory'
# The start-up log line that says why --dtype auto chose what it chose.
DTYPE_REASON_PATTERN='auto.*(bfloat16|float32|bf16)|(bfloat16|float32|bf16).*auto'

LIMIT_TOOL=${MEMORY_LIMIT_TOOL:-../shared/tools/in-memory-limit.sh}
MODEL_7B=models/shapes/qwen2.5-7b
MODEL_05B=models/shapes/qwen2.5-0.5b
READY_LIMIT_7B=240     # case 1's promise: ready within 4 minutes
READY_LIMIT_05B=300    # the 0.5B shape loads in well under a minute; 2 busy cores can make it slow
REQUEST_DEADLINE_S=1800 # every request carries this deadline (timeout_ms), so the server's options stay the defaults
LONG_PROMPT_WORDS=${LONG_PROMPT_WORDS:-1195}  # + "Request ID:" ≈ 1,200 Qwen tokens (" hello" is one token)
LONG_NEW_TOKENS=${LONG_NEW_TOKENS:-100}
LEAK_BYTES=4194304     # 4 MiB per engine step
LEAK_NEW_TOKENS=${LEAK_NEW_TOKENS:-128}       # case 5's load: long generations, so that steps (and the leak) go on
LEAK_WATCH_S=180       # how long case 5 waits for each of pause and resume
STOP_LIMIT_S=90        # SIGTERM drains for up to 30 s (--drain-timeout); after this the server is killed

command -v jq >/dev/null || { echo "error: jq is needed (apt-get install -y jq)" >&2; exit 2; }
[ -x "$LIMIT_TOOL" ] || { echo "error: no cgroup tool at $LIMIT_TOOL (set MEMORY_LIMIT_TOOL)" >&2; exit 2; }

# --- the server under test -------------------------------------------------------------------------------------------

SERVER_PID=; SERVER_LIMITED=0; CASE_DIR=; URL=
LOAD_PIDS=()

# start_server NAME LIMIT ARGS...: `serve ARGS` on a free loopback port, inside a memory cgroup of LIMIT (2048M; none:
# no cgroup); stdout, stderr and logs in $RUN_DIR/NAME. Sets CASE_DIR, URL, SERVER_PID (the cgroup tool's, whose one
# child is the server, or the server's own) and clears the last case's figures.
start_server() {
  local name=$1 limit=$2; shift 2
  CASE_DIR=$RUN_DIR/$name; mkdir -p "$CASE_DIR"
  local port; port=$(free_port)
  URL="http://127.0.0.1:$port"
  local cmd=("${HOST[@]}" serve "$@" --urls "$URL" --log-folder "$CASE_DIR/logs")
  SERVER_LIMITED=0
  if [ "$limit" != none ]; then cmd=("$LIMIT_TOOL" "$limit" "${cmd[@]}"); SERVER_LIMITED=1; fi
  echo "${cmd[*]}" >"$CASE_DIR/command.txt"
  echo "[$name] ${cmd[*]}" >&2
  STARTED_US=${EPOCHREALTIME/./}
  "${cmd[@]}" >"$CASE_DIR/stdout.txt" 2>"$CASE_DIR/stderr.txt" &
  SERVER_PID=$!
  READY_S=; EXIT_CODE=; OOM_KILLS=; PEAK=; KV_BYTES=; KV_TOKENS=
}

# wait_ready LIMIT_S: polls GET /health/ready until 200 (0, after note_ready), the server exits (1) or LIMIT_S pass (2).
wait_ready() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    if [ "$(http_code "$URL/health/ready")" = 200 ]; then note_ready; return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 1
  done
  return 2
}

# note_ready: the server is ready: READY_S, and /memory saved as CASE_DIR/memory.json with its KV pool in KV_BYTES and
# KV_TOKENS.
note_ready() {
  READY_S=$(seconds_since "$STARTED_US")
  memory_read "$CASE_DIR/memory.json"
  KV_BYTES=$(memory_field "$CASE_DIR/memory.json" "$JQ_KV_POOL_BYTES")
  KV_TOKENS=$(memory_field "$CASE_DIR/memory.json" "$JQ_KV_POOL_TOKENS")
  echo "[${CASE_DIR##*/}] ready after $READY_S s; $(kv_pool)" >&2
}

# wait_exit LIMIT_S: waits for a start that must fail: 0 when the server exits on its own; 1 when it became ready
# (READY_S set) or still ran after LIMIT_S; then it is stopped.
wait_exit() {
  local deadline=$((SECONDS + $1))
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    if [ "$(http_code "$URL/health/ready")" = 200 ]; then note_ready; stop_server; return 1; fi
    if ((SECONDS >= deadline)); then stop_server; return 1; fi
    sleep 1
  done
  finish_server
}

# stop_server: SIGTERM to the server itself (not to the cgroup tool, whose `wait` a trapped signal would cut short),
# SIGKILL after STOP_LIMIT_S; then finish_server.
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  local target=$SERVER_PID
  if [ "$SERVER_LIMITED" = 1 ]; then target=$(pgrep -P "$SERVER_PID" | head -1 || true); fi
  if [ -n "$target" ] && kill -0 "$target" 2>/dev/null; then
    kill -TERM "$target" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_LIMIT_S))
    while kill -0 "$target" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
    if kill -0 "$target" 2>/dev/null; then echo "[${CASE_DIR##*/}] no exit $STOP_LIMIT_S s after SIGTERM: killing it" >&2; kill -KILL "$target" 2>/dev/null || true; fi
  fi
  finish_server
}

# finish_server: reaps the server; sets EXIT_CODE, and from the cgroup tool's last stderr line OOM_KILLS and PEAK.
finish_server() {
  EXIT_CODE=0; wait "$SERVER_PID" || EXIT_CODE=$?
  SERVER_PID=
  local line; line=$(grep '^in-memory-limit:' "$CASE_DIR/stderr.txt" | tail -1 || true)
  OOM_KILLS=$(sed -n 's/.* oom_kill \([0-9]*\).*/\1/p' <<<"$line")
  PEAK=$(sed -n 's/.* peak \([0-9]*\).*/\1/p' <<<"$line")
  if [ "$SERVER_LIMITED" = 1 ] && [ -z "$OOM_KILLS" ]; then OOM_KILLS="?"; fi
  echo "[${CASE_DIR##*/}] exited with $EXIT_CODE${OOM_KILLS:+, oom_kill $OOM_KILLS}${PEAK:+, peak $(mib "$PEAK")}" >&2
}

# server_reason: the server's stderr less the cgroup tool's lines (its summary, and bash's "Killed" notice of its
# child): what a start failure said.
server_reason() { grep -v -e '^in-memory-limit:' -e 'in-memory-limit.sh: line [0-9]*:' "$CASE_DIR/stderr.txt" | sed '/^[[:space:]]*$/d' || true; }

# --- requests --------------------------------------------------------------------------------------------------------

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true; }
seconds_since() { local d=$(( ${EPOCHREALTIME/./} - $1 )); printf '%d.%d' $((d / 1000000)) $((d / 100000 % 10)); }
mib() { awk -v b="$1" 'BEGIN { if (b >= 2^30) printf "%.2f GiB", b / 2^30; else printf "%.0f MiB", b / 2^20 }'; }

# request DIR ID WORDS NEW_TOKENS [MAX_TIME]: one POST /query, not streamed: "Request ID:" (every prompt differs, so
# no answer comes from the cache) and WORDS words, NEW_TOKENS new tokens with ignore_eos, and its own deadline.
# Writes DIR/ID.status (the HTTP status, 000 when none came), DIR/ID.curl (curl's exit code), DIR/ID.headers, DIR/ID.json.
request() {
  local dir=$1 id=$2 words=$3 new=$4 max_time=${5:-$((REQUEST_DEADLINE_S + 60))}
  mkdir -p "$dir"
  jq -n --arg p "Request $id: $(printf 'hello %.0s' $(seq "$words"))" --argjson n "$new" --argjson t "$((REQUEST_DEADLINE_S * 1000))" \
    '{prompt: $p, max_new_tokens: $n, ignore_eos: true, temperature: 0, timeout_ms: $t}' >"$dir/$id.request"
  local rc=0
  curl -sS --max-time "$max_time" -o "$dir/$id.json" -D "$dir/$id.headers" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$dir/$id.request" "$URL/query" >"$dir/$id.status" 2>"$dir/$id.err" || rc=$?
  echo "$rc" >"$dir/$id.curl"
}

# burst DIR N WORDS NEW_TOKENS: N requests at once; returns when every one has ended, saying how far it got meanwhile.
burst() {
  local dir=$1 n=$2 words=$3 new=$4 i pids=() next=$((SECONDS + 30))
  for ((i = 1; i <= n; i++)); do request "$dir" "$i" "$words" "$new" & pids+=($!); done
  while :; do
    local ended; ended=$(find "$dir" -name '*.curl' 2>/dev/null | wc -l)
    ((ended < n)) || break
    if ((SECONDS >= next)); then echo "[${CASE_DIR##*/}] $ended of $n requests ended" >&2; next=$((SECONDS + 30)); fi
    sleep 1
  done
  wait "${pids[@]}" || true
}

# status_summary DIR: "200×14 503×2" over the ended requests in DIR; a request whose curl failed (no reply, a reset,
# a timeout) counts as "conn-error" whatever its status.
status_summary() {
  local f code
  for f in "$1"/*.curl; do
    [ -e "$f" ] || continue
    code=$(cat "${f%.curl}.status" 2>/dev/null || true)
    [ "$(cat "$f")" = 0 ] || code=conn-error
    echo "${code:-none}"
  done | sort | uniq -c | awk '{ printf "%s%s×%s", (NR > 1 ? " " : ""), $2, $1 }'
}

# only_statuses SUMMARY CODE...: whether every status in SUMMARY is one of CODE (and there is at least one).
only_statuses() {
  local summary=$1 word; shift
  [ -n "$summary" ] || return 1
  for word in $summary; do [[ " $* " == *" ${word%%×*} "* ]] || return 1; done
}

# first_refusal DIR: the error code and detail of the first request in DIR that got no 200 (why, in a row's outcome).
first_refusal() {
  local f
  for f in "$1"/*.status; do
    [ "$(cat "$f")" = 200 ] && continue
    if [ -s "${f%.status}.json" ]; then
      jq -r '"\(.code // "?"): \(.detail // .error.message // "")"' "${f%.status}.json" 2>/dev/null | cut -c1-120
    else head -1 "${f%.status}.err"; fi
    return 0
  done
}

# answers_expected DIR N: adds to `fails` unless all N requests in DIR got 200, naming the first refusal.
answers_expected() {
  [ "$answers" = "200×$2" ] || fails+=("answers $answers ($(first_refusal "$1"))")
}

# prompt_tokens DIR: prompt_tokens of the first answered request in DIR (to show the prompts' real length).
prompt_tokens() {
  local f
  for f in "$1"/*.status; do
    if [ "$(cat "$f")" = 200 ]; then jq -r '.usage.prompt_tokens // empty' "${f%.status}.json" 2>/dev/null || true; return 0; fi
  done
}

# memory_read FILE: saves GET /memory to FILE; memory_field FILE JQ: one figure of it (empty when absent).
memory_read() { curl -s --max-time 5 "$URL/memory" >"$1" || true; }
memory_field() { jq -r "$2" "$1" 2>/dev/null | head -1 || true; }

# --- outcomes --------------------------------------------------------------------------------------------------------

ROWS=(); FAILED=0

# record CASE EXPECTATION NUMBERS: one table row; PASS when the case's `fails` array is empty, else FAIL and why.
record() {
  local outcome=PASS
  if ((${#fails[@]} > 0)); then outcome="FAIL: $(IFS=';'; echo "${fails[*]}" | sed 's/;/; /g')"; FAILED=1; fi
  local numbers=$3
  ROWS+=("| $1 | $2 | ${outcome//|/\\|} | ${numbers//|/\\|} |")
  echo "[case $1] $outcome ($3)" >&2
}

# The figures every row shows: exit code, OOM kills, time to ready and, once ready, the KV pool.
common_numbers() { echo "exit ${EXIT_CODE:-?}, oom_kill ${OOM_KILLS:-n/a}, ready ${READY_S:-never}${READY_S:+ s, $(kv_pool)}"; }
kv_pool() { echo "KV pool $(if [ -n "$KV_BYTES" ]; then mib "$KV_BYTES"; else echo '?'; fi) / ${KV_TOKENS:-?} tokens"; }

# expect_clean_exit: the checks after stop_server for a server that ran: it was not killed and exited cleanly.
expect_clean_exit() {
  [ "$EXIT_CODE" = 0 ] || fails+=("exit code $EXIT_CODE after SIGTERM")
  [[ "${OOM_KILLS:-0}" == 0 ]] || fails+=("oom_kill $OOM_KILLS")
}

# not_ready LIMIT_S: why a server that had to start did not (before stop_server): it exited (with the last line of its
# stderr), or it was not ready in time.
not_ready() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then echo "not ready within $1 s"; return 0; fi
  local r; r=$(server_reason | tail -1); echo "exited during start${r:+: $r}"
}

# not_refused: why a start that had to fail did not.
not_refused() { if [ -n "$READY_S" ]; then echo "it started (ready after $READY_S s)"; else echo "no exit within $READY_LIMIT_05B s"; fi; }

# expect_start_failure: after wait_exit, the checks of a start that must be refused: exit code 2, one `error: ` line.
expect_start_failure() {
  # The worker process's own line comes first, passed on with its prefix ("[worker-process 1] error: ..."); the server's
  # own stderr is the one unprefixed line.
  local reason; reason=$(server_reason | grep -v '^\[worker-process ' || true)
  REASON=$(head -1 <<<"$reason")
  [ "$EXIT_CODE" = 2 ] || fails+=("exit code $EXIT_CODE, not 2")
  [[ "${OOM_KILLS:-?}" == 0 ]] || fails+=("oom_kill ${OOM_KILLS:-?}")
  local lines; lines=$(printf '%s' "$reason" | grep -c '' || true)
  if [ "$lines" != 1 ] || [[ "$reason" != "error: "* ]]; then fails+=("stderr is $lines lines, not one 'error: ' line"); fi
}

# --- the cases -------------------------------------------------------------------------------------------------------

case_1() {
  local fails=() answers=
  if [ ! -f "$MODEL_7B/config.json" ]; then
    fails+=("no $MODEL_7B/config.json"); record 1 "no cgroup, 7B bf16: ready < 4 min, 4 requests 200" "-"; return
  fi
  start_server case1 none --model "$MODEL_7B" --dummy-weights --dtype bfloat16
  if wait_ready "$READY_LIMIT_7B"; then
    burst "$CASE_DIR/requests" 4 40 16
    answers=$(status_summary "$CASE_DIR/requests")
    answers_expected "$CASE_DIR/requests" 4
    stop_server
  else
    fails+=("$(not_ready "$READY_LIMIT_7B")")
    stop_server
  fi
  expect_clean_exit
  record 1 "no cgroup, 7B bf16: ready < 4 min, 4 requests 200" "$(common_numbers), answers ${answers:-none}"
}

case_2() {
  local fails=() answers= limit= tokens=
  start_server case2 2048M --model "$MODEL_05B" --dummy-weights --dtype bfloat16
  if wait_ready "$READY_LIMIT_05B"; then
    limit=$(memory_field "$CASE_DIR/memory.json" "$JQ_LIMIT_BYTES")
    echo "[case2] /memory (saved as $CASE_DIR/memory.json): $(kv_pool); limit $(if [ -n "$limit" ]; then mib "$limit"; else echo '?'; fi)" >&2
    [ -n "$KV_BYTES" ] || fails+=("no KV pool size in /memory")
    burst "$CASE_DIR/requests" 16 "$LONG_PROMPT_WORDS" "$LONG_NEW_TOKENS"
    answers=$(status_summary "$CASE_DIR/requests")
    tokens=$(prompt_tokens "$CASE_DIR/requests")
    memory_read "$CASE_DIR/memory-after-load.json"
    answers_expected "$CASE_DIR/requests" 16
    stop_server
  else
    fails+=("$(not_ready "$READY_LIMIT_05B")")
    stop_server
  fi
  expect_clean_exit
  record 2 "2 GiB, 0.5B bf16: 16 × ~1,200+100 tokens all 200, KV pool sized to fit, no kill" \
    "$(common_numbers), answers ${answers:-none} (prompt ${tokens:-?} tokens)"
}

case_3() {
  local fails=() REASON=
  start_server case3 1843M --model "$MODEL_05B" --dummy-weights --dtype bfloat16 --kv-cache-size 6GiB
  if wait_exit "$READY_LIMIT_05B"; then expect_start_failure; else fails+=("$(not_refused)"); fi
  record 3 "1.8 GiB, --kv-cache-size 6GiB: exit 2 with one 'error:' line, no kill" "$(common_numbers), stderr: ${REASON:-none}"
}

case_4() {
  local fails=() REASON= answers= why=
  start_server case4-float32 1843M --model "$MODEL_05B" --dummy-weights --dtype float32
  if wait_exit "$READY_LIMIT_05B"; then expect_start_failure; else fails+=("$(not_refused)"); fi
  record 4a "1.8 GiB, 0.5B --dtype float32: exit 2 with one 'error:' line, no kill" "$(common_numbers), stderr: ${REASON:-none}"

  fails=()
  start_server case4-auto 1843M --model "$MODEL_05B" --dummy-weights --dtype auto
  if wait_ready "$READY_LIMIT_05B"; then
    why=$(cat "$CASE_DIR/stdout.txt" "$CASE_DIR"/logs/* 2>/dev/null | grep -iE "$DTYPE_REASON_PATTERN" | head -1 || true)
    [ -n "$why" ] || fails+=("no log line on the dtype choice")
    burst "$CASE_DIR/requests" 8 40 16
    answers=$(status_summary "$CASE_DIR/requests")
    answers_expected "$CASE_DIR/requests" 8
    stop_server
  else
    fails+=("$(not_ready "$READY_LIMIT_05B")")
    stop_server
  fi
  expect_clean_exit
  record 4b "1.8 GiB, 0.5B --dtype auto: starts, logs its choice, 8 requests 200" \
    "$(common_numbers), answers ${answers:-none}, log: ${why:-none}"
}

# write_settings FILE LEAK_BYTES: the settings file case 5's server re-reads, replaced in one rename so that the
# server never reads half of it.
write_settings() {
  jq -n --argjson leak "$2" '{ActorQuery: {Faults: {LeakBytesPerStep: $leak}}}' >"$1.new"
  mv "$1.new" "$1"
}

# load_client DIR N: one client of case 5's load: long generations back to back until DIR/stop exists; a second's
# pause after a refusal (the load keeps knocking, as clients do, without spinning).
load_client() {
  local dir=$1 client=$2 n=0
  while [ ! -e "$dir/stop" ]; do
    n=$((n + 1)); request "$dir" "c$client-$n" 40 "$LEAK_NEW_TOKENS"
    [ "$(cat "$dir/c$client-$n.status")" = 200 ] || sleep 1
  done
}

# stop_load: asks case 5's clients to stop and waits until each has ended its last request.
stop_load() {
  if [ -n "${LOAD_DIR:-}" ]; then touch "$LOAD_DIR/stop"; fi
  if ((${#LOAD_PIDS[@]} > 0)); then wait "${LOAD_PIDS[@]}" || true; fi
  LOAD_PIDS=()
}

CASE_5="2 GiB, leak armed under load: ready 503 (memory), new requests 503 + Retry-After, paused or shedding, no kill; disarmed: 200 again; every load request one reply"

case_5() {
  local fails=() settings=$RUN_DIR/case5/settings.json i answers= after=
  local paused_s= ready_body= saw_probe=0 saw_state= resumed_s=
  mkdir -p "$RUN_DIR/case5"; write_settings "$settings" 0
  start_server case5 2048M --model "$MODEL_05B" --dummy-weights --dtype bfloat16 --settings "$settings"
  if ! wait_ready "$READY_LIMIT_05B"; then
    fails+=("$(not_ready "$READY_LIMIT_05B")"); stop_server; record 5 "$CASE_5" "$(common_numbers)"; return
  fi
  LOAD_DIR=$CASE_DIR/load; mkdir -p "$LOAD_DIR"
  for ((i = 1; i <= 8; i++)); do load_client "$LOAD_DIR" "$i" & LOAD_PIDS+=($!); done
  sleep 15 # the load's first requests are running

  echo "[case5] arming the leak: $LEAK_BYTES bytes per step" >&2
  write_settings "$settings" "$LEAK_BYTES"
  watch_pressure
  [ -n "$ready_body" ] || fails+=("/health/ready never 503 with a memory reason")
  ((saw_probe)) || fails+=("no new request got 503 with Retry-After")
  [ -n "$saw_state" ] || fails+=("/memory state never paused or shedding")

  echo "[case5] disarming the leak" >&2
  write_settings "$settings" 0
  local disarmed=${EPOCHREALTIME/./} deadline=$((SECONDS + LEAK_WATCH_S))
  while ((SECONDS < deadline)) && kill -0 "$SERVER_PID" 2>/dev/null; do
    if [ "$(http_code "$URL/health/ready")" = 200 ]; then resumed_s=$(seconds_since "$disarmed"); break; fi
    sleep 1
  done
  if [ -n "$resumed_s" ]; then
    echo "[case5] ready 200 again $resumed_s s after disarming; a new request ..." >&2
    request "$CASE_DIR/probes" after 40 8 600
    after=$(cat "$CASE_DIR/probes/after.status")
    [ "$after" = 200 ] || fails+=("a new request after disarming got $after")
  else
    fails+=("not ready within $LEAK_WATCH_S s of disarming")
  fi
  memory_read "$CASE_DIR/memory-disarmed.json"

  echo "[case5] stopping the load (running requests finish)" >&2
  stop_load
  answers=$(status_summary "$LOAD_DIR")
  only_statuses "$answers" 200 503 429 || fails+=("load answers $answers")
  [[ "$answers" == *"200×"* ]] || fails+=("no load request answered 200")
  stop_server
  expect_clean_exit
  record 5 "$CASE_5" "$(common_numbers), under pressure ${paused_s:-never}${paused_s:+ s after arming} (ready: ${ready_body:-no 503}, state ${saw_state:-none}), resumed ${resumed_s:-never}${resumed_s:+ s after disarming} (new request ${after:-none}), load ${answers:-none}"
}

# watch_pressure: case 5 with the leak armed, every second for up to LEAK_WATCH_S: /health/ready (503 naming memory
# sets ready_body), /memory's state (paused or shedding sets saw_state; that reply is saved as memory-STATE.json)
# and, once either showed pressure (paused_s: seconds after arming), a new request (503 with Retry-After sets saw_probe).
watch_pressure() {
  local armed=${EPOCHREALTIME/./} deadline=$((SECONDS + LEAK_WATCH_S)) body code state probe
  while ((SECONDS < deadline)) && kill -0 "$SERVER_PID" 2>/dev/null; do
    body=$(curl -s --max-time 5 -w '\n%{http_code}' "$URL/health/ready" || true); code=${body##*$'\n'}; body=${body%$'\n'*}
    if [ -z "$ready_body" ] && [ "$code" = 503 ] && grep -qiE "$READY_MEMORY_PATTERN" <<<"$body"; then
      ready_body=$body; echo "[case5] ready 503 $(seconds_since "$armed") s after arming: $body" >&2
    fi
    memory_read "$CASE_DIR/memory-armed.json"
    state=$(memory_field "$CASE_DIR/memory-armed.json" "$JQ_MEMORY_STATE")
    if [ -z "$saw_state" ] && [[ "$state" == paused || "$state" == shedding ]]; then
      saw_state=$state; cp "$CASE_DIR/memory-armed.json" "$CASE_DIR/memory-$state.json"
      echo "[case5] /memory state $state $(seconds_since "$armed") s after arming" >&2
    fi
    if [ -z "$paused_s" ] && [ -n "$ready_body$saw_state" ]; then paused_s=$(seconds_since "$armed"); fi
    if ((!saw_probe)) && [ -n "$paused_s" ]; then
      probe=armed-$SECONDS
      request "$CASE_DIR/probes" "$probe" 4 1 30
      if [ "$(cat "$CASE_DIR/probes/$probe.status")" = 503 ] && grep -qi '^retry-after:' "$CASE_DIR/probes/$probe.headers"; then
        saw_probe=1; echo "[case5] a new request: 503 with $(grep -i '^retry-after:' "$CASE_DIR/probes/$probe.headers" | tr -d '\r')" >&2
      fi
    fi
    if [ -n "$ready_body" ] && [ -n "$saw_state" ] && ((saw_probe)); then return 0; fi
    sleep 1
  done
}

# On any exit: the load's clients stop after their request, the server is stopped (which ends those requests), then
# the clients are reaped.
cleanup() {
  if [ -n "${LOAD_DIR:-}" ]; then touch "$LOAD_DIR/stop"; fi
  stop_server
  stop_load
}

# --- main ------------------------------------------------------------------------------------------------------------

cases=("$@"); ((${#cases[@]} > 0)) || cases=(1 2 3 4 5)
for c in "${cases[@]}"; do
  [[ "$c" =~ ^[1-5]$ ]] || { echo "error: no case '$c' (cases: 1 2 3 4 5)" >&2; exit 2; }
done

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/actorquery-memory-limits.XXXXXX")
echo "logs of every case's server: $RUN_DIR" >&2
build_host
trap cleanup EXIT
trap 'exit 130' INT TERM

for c in "${cases[@]}"; do "case_$c"; done

echo
echo "| case | expectation | outcome | numbers |"
echo "| --- | --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"
echo
echo "logs: $RUN_DIR"
exit "$FAILED"
