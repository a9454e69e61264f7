#!/usr/bin/env bash
# A cluster of N ActorQuery nodes on this machine.
#
#   scripts/cluster-local.sh start N BASEPORT [serve options...]       plain TCP remoting, loopback only
#   scripts/cluster-local.sh start-tls N BASEPORT [serve options...]   TLS with mutual authentication
#   scripts/cluster-local.sh intruder BASEPORT                         a node outside the CA tries to join (TLS)
#   scripts/cluster-local.sh restart I                                 SIGTERM node I (its drain), then start it again
#   scripts/cluster-local.sh stop
#
# Node i serves HTTP on BASEPORT+i and Akka.Remote on BASEPORT+100+i; every node is a seed (so that any one of them,
# node 0 too, can be restarted and rejoin the others instead of forming a cluster of its own) and every node is
# gateway and worker. The Host is built once (Release) and each node runs the built dll. start returns when every
# node is an Up member of the cluster (as node 0's GET /cluster shows) and every node's /health/ready is 200.
# Process ids go to .cluster/pids (one per line), logs to .cluster/node-i.log (+ .cluster/logs-i/ for Serilog files).
#
# start-tls first makes a throwaway CA and one certificate per node with openssl in .cluster/tls/ (ca.crt, node-i.pfx;
# the password, random, in .cluster/tls/password, handed over in the environment, not on the command line), then
# starts the nodes as start does with --cluster-tls-certificate/--cluster-tls-ca: remoting is akka.ssl.tcp:// and a
# node must present a certificate from that CA. intruder then starts one more node whose certificate is self-signed
# (its own CA) at seed node 0, waits, shows what the seed and the intruder logged, checks that it never became a
# member, and stops it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.cluster"
DLL="$ROOT/src/Host/bin/Release/net10.0/linux-x64/actorquery.dll"
START_TIMEOUT="${CLUSTER_START_TIMEOUT:-180}"

usage() { echo "usage: $0 start|start-tls N BASEPORT [serve options...] | $0 intruder BASEPORT | $0 restart I | $0 stop" >&2; exit 2; }

TLS_DIR="$DIR/tls"

# A CA and node-0..N-1 certificates signed by it (EC P-256, 7 days): both TLS server and client, for 127.0.0.1.
make_certs() {
  local n="$1"
  command -v openssl > /dev/null || { echo "start-tls needs openssl" >&2; exit 1; }
  rm -rf "$TLS_DIR"; mkdir -p "$TLS_DIR"; chmod 700 "$TLS_DIR"
  openssl rand -hex 16 > "$TLS_DIR/password"
  (
    cd "$TLS_DIR"
    export PFX_PASSWORD; PFX_PASSWORD=$(cat password)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 7 \
      -subj "/CN=actorquery-local-ca" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' > node.ext
    for i in $(seq 0 $((n - 1))); do
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "node-$i.key" -out "node-$i.csr" -subj "/CN=node-$i"
      openssl x509 -req -in "node-$i.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -extfile node.ext -out "node-$i.crt"
      openssl pkcs12 -export -in "node-$i.crt" -inkey "node-$i.key" -out "node-$i.pfx" -passout env:PFX_PASSWORD
      rm -f "node-$i.csr" "node-$i.key"
    done
    # The intruder: a self-signed certificate, so that its own CA is itself.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout intruder.key -out intruder.crt -days 7 \
      -subj "/CN=intruder" -addext "extendedKeyUsage=serverAuth,clientAuth" -addext "subjectAltName=IP:127.0.0.1"
    openssl pkcs12 -export -in intruder.crt -inkey intruder.key -out intruder.pfx -passout env:PFX_PASSWORD
    rm -f intruder.key ca.srl
  ) > "$DIR/certs.log" 2>&1 || { echo "making certificates failed: see $DIR/certs.log" >&2; exit 1; }
  echo "made a throwaway CA and $n node certificates in $TLS_DIR"
}

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

# Counts the nodes node 0 sees as up and reachable: the gateway members. A node's worker processes are members too
# (worker-only), so the number of members is larger than the number of nodes.
up_members() {
  curl -s --max-time 2 "http://127.0.0.1:$1/cluster" | python3 -c '
import json, sys
try: c = json.load(sys.stdin)
except Exception: print(0); sys.exit()
print(sum(1 for m in c.get("members", []) if m["status"] == "up" and m["reachable"] and "gateway" in m["roles"]))' 2>/dev/null || echo 0
}

# start_node I BASEPORT TLS SEEDS [serve options...]: node I in the background; STARTED_PID is its pid.
start_node() {
  local i="$1" base="$2" tls="$3" seeds="$4"; shift 4
  local tls_options=()
  [[ $tls == 1 ]] && tls_options=(--cluster-tls-certificate "$TLS_DIR/node-$i.pfx" --cluster-tls-ca "$TLS_DIR/ca.crt")
  (cd "$ROOT" && { [[ $tls == 1 ]] && export ACTORQUERY__CLUSTER__TLSPASSWORD="$(cat "$TLS_DIR/password")"; true; } \
      && exec dotnet "$DLL" serve --urls "http://127.0.0.1:$((base + i))" \
      --cluster-host 127.0.0.1 --cluster-port $((base + 100 + i)) --seed-nodes "$seeds" "${tls_options[@]}" \
      --node-name "node-$i" --log-folder "$DIR/logs-$i" "$@") >> "$DIR/node-$i.log" 2>&1 &
  STARTED_PID=$!
}

# restart I: SIGTERM to node I (it drains: readiness 503, its workers leave every gateway's routing, running queries
# finish or end with the drain reason), wait for it to exit, start it again with the same options, and wait until it
# is ready and an Up member again.
restart() {
  [[ $# -eq 1 && "$1" =~ ^[0-9]+$ && -f "$DIR/cluster" ]] || usage
  local i="$1" n base tls seeds
  { read -r n; read -r base; read -r tls; read -r seeds; } < "$DIR/cluster"
  mapfile -t options < "$DIR/options"
  [[ ${#options[@]} -eq 1 && -z "${options[0]}" ]] && options=()
  local pid; pid=$(sed -n "$((i + 1))p" "$DIR/pids")
  local t0=$SECONDS
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  echo "node $i (pid $pid) stopped after $((SECONDS - t0)) s"
  start_node "$i" "$base" "$tls" "$seeds" "${options[@]}"
  sed -i "$((i + 1))s/.*/$STARTED_PID/" "$DIR/pids"
  local deadline=$((SECONDS + START_TIMEOUT))
  until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$((base + i))/health/ready")" == 200 \
           && "$(up_members "$base")" == "$n" ]]; do
    (( SECONDS < deadline )) || { echo "node $i did not come back within ${START_TIMEOUT}s" >&2; exit 1; }
    kill -0 "$STARTED_PID" 2>/dev/null || { echo "node $i exited on restart; see $DIR/node-$i.log" >&2; exit 1; }
    sleep 1
  done
  echo "node $i back (pid $STARTED_PID) after $((SECONDS - t0)) s in all"
}

start() {
  local tls=0
  if [[ "${1:-}" == --tls ]]; then tls=1; shift; fi
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
  local scheme=akka.tcp
  if [[ $tls == 1 ]]; then make_certs "$n"; scheme=akka.ssl.tcp; fi
  local seeds; seeds=$(for i in $(seq 0 $((n - 1))); do printf '%s://actorquery@127.0.0.1:%d,' "$scheme" $((base + 100 + i)); done)
  seeds=${seeds%,}
  : > "$DIR/pids"
  printf '%s\n' "$n" "$base" "$tls" "$seeds" > "$DIR/cluster"
  printf '%s\n' "$@" > "$DIR/options"
  for i in $(seq 0 $((n - 1))); do
    start_node "$i" "$base" "$tls" "$seeds" "$@"
    echo "$STARTED_PID" >> "$DIR/pids"
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

# One more node, at HTTP BASEPORT+99 and remoting BASEPORT+199, with the self-signed certificate and itself as its CA.
intruder() {
  [[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]] || usage
  local base="$1"
  [[ -f "$TLS_DIR/intruder.pfx" ]] || { echo "no TLS cluster: run '$0 start-tls N $base' first" >&2; exit 1; }
  local log="$DIR/intruder.log"
  (cd "$ROOT" && export ACTORQUERY__CLUSTER__TLSPASSWORD="$(cat "$TLS_DIR/password")" \
      && exec dotnet "$DLL" serve --urls "http://127.0.0.1:$((base + 99))" --cluster-host 127.0.0.1 --cluster-port $((base + 199)) \
      --seed-nodes "akka.ssl.tcp://actorquery@127.0.0.1:$((base + 100))" --cluster-tls-certificate "$TLS_DIR/intruder.pfx" \
      --cluster-tls-ca "$TLS_DIR/intruder.crt" --node-name intruder --log-folder "$DIR/logs-intruder" --workers 0) > "$log" 2>&1 &
  local pid=$!
  echo "intruder started (pid $pid, remoting $((base + 199))); watching for 20 s..."
  local code=running
  for _ in $(seq 1 20); do
    sleep 1
    if ! kill -0 "$pid" 2>/dev/null; then wait "$pid" && code=0 || code=$?; break; fi
  done
  [[ $code == running ]] && { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
  echo "--- the intruder logged (exit code: $code):"
  grep -h "cluster TLS\|TLS handshake failed\|actor system stopped" "$log" "$DIR"/logs-intruder/app-*.log 2>/dev/null | sort -u | head -5 || true
  echo "--- seed node 0 logged:"
  grep -h "cluster TLS: refused" "$DIR/node-0.log" "$DIR"/logs-0/app-*.log 2>/dev/null | sort -u | tail -3 || true
  if curl -s --max-time 2 "http://127.0.0.1:$base/cluster" | grep -q "127.0.0.1:$((base + 199))"; then
    echo "FAIL: the intruder is a member" >&2; exit 1
  fi
  echo "the intruder never became a member; members up: $(up_members "$base")"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  start-tls) shift; start --tls "$@" ;;
  intruder) shift; intruder "$@" ;;
  restart) shift; restart "$@" ;;
  stop) stop ;;
  *) usage ;;
esac
