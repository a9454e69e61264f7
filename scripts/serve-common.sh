# Shared by bench-http.sh and soak.sh (sourced, not run): build the server (src/Host) and the bench tool
# (tools/ActorQuery.Bench) once in Release, start `serve` on a free loopback port, wait for readiness, run the bench
# tool's verb against it, and stop the server by its PID when the script exits.

# ACTORQUERY_NO_BUILD=1 reuses the last Release build (e.g. while another run's server still uses its files).
build_host() {
  if [ "${ACTORQUERY_NO_BUILD:-0}" != 1 ]; then
    echo "building src/Host and tools/ActorQuery.Bench (Release) ..." >&2
    dotnet build src/Host -c Release -nologo -v q >&2
    dotnet build tools/ActorQuery.Bench -c Release -nologo -v q >&2
  fi
  HOST_DLL=$(find src/Host/bin/Release -name actorquery.dll -path '*net10.0*' | head -1)
  [ -n "$HOST_DLL" ] || { echo "error: no actorquery.dll under src/Host/bin/Release after the build" >&2; exit 2; }
  BENCH_DLL=$(find tools/ActorQuery.Bench/bin/Release -name actorquery-bench.dll -path '*net10.0*' | head -1)
  [ -n "$BENCH_DLL" ] || { echo "error: no actorquery-bench.dll under tools/ActorQuery.Bench/bin/Release after the build" >&2; exit 2; }
  HOST=(dotnet "$HOST_DLL")
  BENCH=(dotnet "$BENCH_DLL")
}

# HOST: the command that runs actorquery; BENCH: the bench tool (build_host sets both; gpu-check.sh sets the packed
# apps' launchers).

# A port nobody listens on: bash's /dev/tcp connect fails on a free one (no python or ss needed).
free_port() {
  local p
  for p in $(shuf -i 18000-28999 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "error: no free port found in 18000-28999" >&2; exit 2
}

# has_option NAME ARGS...: whether --NAME (or --NAME=...) is among ARGS.
has_option() {
  local name=$1; shift
  local a
  for a in "$@"; do [[ "$a" == "--$name" || "$a" == "--$name="* ]] && return 0; done
  return 1
}

# option_value NAME ARGS...: the value of --NAME in ARGS (empty when absent).
option_value() {
  local name=$1; shift
  while [ $# -gt 0 ]; do
    case "$1" in
      "--$name") echo "${2:-}"; return 0 ;;
      "--$name="*) echo "${1#*=}"; return 0 ;;
    esac
    shift
  done
}

# split_serve_args ARGS...: splits ARGS at the first "--" into `serve` (the serve options given) and `rest` (the
# verb's options), then sets `args` to `serve` plus each NAME VALUE pair of the caller's `defaults` not given.
split_serve_args() {
  serve=(); rest=()
  local after=0 a i
  for a in "$@"; do
    if [ "$after" = 0 ] && [ "$a" = "--" ]; then after=1; continue; fi
    if [ "$after" = 0 ]; then serve+=("$a"); else rest+=("$a"); fi
  done
  args=("${serve[@]}")
  for ((i = 0; i < ${#defaults[@]}; i += 2)); do
    has_option "${defaults[i]}" "${serve[@]}" || args+=("--${defaults[i]}" "${defaults[i+1]}")
  done
}

# start_server ARGS...: starts `serve ARGS --urls http://127.0.0.1:PORT` in the background; sets SERVER_PID and
# SERVER_URL; waits up to READY_LIMIT seconds (600) for /health/ready (loading the 0.5B shape takes a while on 2
# busy cores).
start_server() {
  local limit=${READY_LIMIT:-600}
  [[ $limit =~ ^[0-9]+$ ]] || { echo "error: READY_LIMIT must be a number of seconds, not '$limit'" >&2; exit 2; }
  local port; port=$(free_port)
  SERVER_URL="http://127.0.0.1:$port"
  SERVER_LOG=$(mktemp -d "${TMPDIR:-/tmp}/actorquery-bench.XXXXXX")
  echo "starting: serve $* --urls $SERVER_URL (logs in $SERVER_LOG)" >&2
  "${HOST[@]}" serve "$@" --urls "$SERVER_URL" --log-folder "$SERVER_LOG" >"$SERVER_LOG/stdout.txt" 2>&1 &
  SERVER_PID=$!
  trap stop_server EXIT
  trap 'stop_server; exit 143' INT TERM
  local deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    if curl -sf --max-time 2 "$SERVER_URL/health/ready" >/dev/null 2>&1; then echo "server ready (pid $SERVER_PID) after $((SECONDS + limit - deadline)) s" >&2; return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "error: the server exited during start-up; its output:" >&2; tail -20 "$SERVER_LOG/stdout.txt" >&2; exit 2
    fi
    sleep 1
  done
  echo "error: the server was not ready after $limit s" >&2; exit 2
}

# Graceful stop (SIGTERM drains running queries), then waits for that PID only.
stop_server() {
  if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "stopping the server (pid $SERVER_PID) ..." >&2
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}

# start_case NAME LIMIT ARGS...: one case's server for the chaos scripts: `serve` with SERVE_ARGS and ARGS on a free
# port, its output and logs in $RUN_DIR/NAME (DIR), in a memory cgroup of LIMIT (../shared/tools/in-memory-limit.sh, or
# MEMORY_LIMIT_TOOL; none: no cgroup); sets URL, SERVER_PID and LIMITED and waits up to 300 s for READY_PATH
# (/health/ready) to answer 200. Returns 1 when the server exits or is not ready.
start_case() {
  local name=$1 limit=$2; shift 2
  DIR=$RUN_DIR/$name; mkdir -p "$DIR"
  URL="http://127.0.0.1:$(free_port)"
  local cmd=("${HOST[@]}" serve "${SERVE_ARGS[@]}" "$@" --urls "$URL" --log-folder "$DIR/logs")
  LIMITED=0
  [ "$limit" = none ] || { cmd=("${MEMORY_LIMIT_TOOL:-../shared/tools/in-memory-limit.sh}" "$limit" "${cmd[@]}"); LIMITED=1; }
  echo "[$name] ${cmd[*]}" >&2
  "${cmd[@]}" >"$DIR/stdout.txt" 2>"$DIR/stderr.txt" &
  SERVER_PID=$!
  local deadline=$((SECONDS + 300))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL${READY_PATH:-/health/ready}")" = 200 ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "[$name] the server exited: $(tail -3 "$DIR/stderr.txt")" >&2; return 1; }
    ((SECONDS < deadline)) || { echo "[$name] not ready after 300 s" >&2; return 1; }
    sleep 1
  done
  echo "[$name] ready" >&2
}

# case_server_pid: the server's pid (in a cgroup SERVER_PID is the cgroup tool and the server its child).
case_server_pid() { if [ "$LIMITED" = 1 ]; then pgrep -P "$SERVER_PID" | head -1 || echo "$SERVER_PID"; else echo "$SERVER_PID"; fi; }

# stop_case: SIGTERM to the case's server (its worker processes stop with it), then waits for it.
stop_case() {
  [ -n "${SERVER_PID:-}" ] || return 0
  kill -TERM "$(case_server_pid)" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

command -v curl >/dev/null || { echo "error: curl is needed to wait for the server" >&2; exit 2; }

# run_verb NAME PREFIX ARGS...: runs the bench tool's `NAME ARGS...` against the server, its output also kept in
# $SERVER_LOG/NAME.txt; then stops the server, prints the verb's line that starts with PREFIX (where it wrote its
# results) or says that none came, and exits with the verb's exit code.
run_verb() {
  local name=$1 prefix=$2; shift 2
  set +e
  "${BENCH[@]}" "$name" "$@" | tee "$SERVER_LOG/$name.txt"
  local status=${PIPESTATUS[0]}
  set -e
  stop_server
  local written; written=$(grep "^$prefix" "$SERVER_LOG/$name.txt" || true)
  echo "${written:-no results written (exit code $status); server logs in $SERVER_LOG}"
  exit "$status"
}
