#!/usr/bin/env bash
# Fuzz: builds src/Host, starts `serve` with the default model and an API key on a free loopback port, and runs
# tools/fuzz-api/fuzz.mjs against it: a warm-up, then 10,000 mutated requests (JSON structure and types, Unicode with
# lone surrogates, sizes, content types, auth headers) at concurrency 8. It checks that no response is a 5xx other than
# 503/504 with a reason, no connection is dropped before its response, the server's resident memory stays within 10% of
# its level after the warm-up (both readings taken after POST /admin/cleanup, with an admin key of the run, so that
# garbage not yet collected does not count; the raw readings are printed too), and a normal query is answered right afterwards. Prints its seed; exit code 0 when
# every check held.
#
#   scripts/fuzz-api.sh [serve options] [-- fuzz options: --requests N --concurrency N --seed N]
#   scripts/fuzz-api.sh -- --seed 1234 --requests 2000
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-common.sh
command -v node >/dev/null || { echo "error: node (20 or later) is needed for tools/fuzz-api/fuzz.mjs" >&2; exit 2; }

defaults=(model models/default log-level Warning)
split_serve_args "$@"

if [ "${ACTORQUERY_NO_BUILD:-0}" != 1 ]; then
  echo "building src/Host ..." >&2
  dotnet build src/Host -nologo -v q >&2
fi
HOST_DLL=$(find src/Host/bin/Debug -name actorquery.dll -path '*net10.0*' | head -1)
[ -n "$HOST_DLL" ] || { echo "error: no actorquery.dll under src/Host/bin/Debug after the build" >&2; exit 2; }
HOST=(dotnet "$HOST_DLL")

# A fresh key each run, handed to the server through its environment so that it shows in no process list.
KEY="fuzz-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ADMIN_KEY="fuzz-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export ACTORQUERY__APIKEYS__0="$KEY" ACTORQUERY__ADMINKEYS__0="$ADMIN_KEY"
start_server "${args[@]}"
set +e
node tools/fuzz-api/fuzz.mjs --url "$SERVER_URL" --key "$KEY" --admin-key "$ADMIN_KEY" --pid "$SERVER_PID" "${rest[@]}"
status=$?
set -e
stop_server
exit "$status"
