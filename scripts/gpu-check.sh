#!/usr/bin/env bash
# CUDA checks, run on a machine with an NVIDIA GPU and a CUDA build of PyTorch but no .NET (see README, "Running
# on a GPU"). Here: bash ../shared/gpu/pack.sh src/Host; there: bash scripts/gpu-check.sh (with .gpu/ beside it).
# Prints each step and writes its logs to $OUT (or /tmp/gpu-check):
#   1. the default model's answers on CUDA (float32) are the CPU's;
#   2. engine throughput of the Qwen2.5-0.5B shape (random weights, bfloat16) at 1, 16 and 64 streams;
#   3. serve on CUDA: /query, /v1/chat/completions, and device memory in /memory;
#   4. a real CUDA out-of-memory while loading (a KV budget far over the GPU) degrades, then serves;
#   5. injected out-of-memory errors mid-serving: the worker restarts and every query is answered.
set -uo pipefail
out=${OUT:-/tmp/gpu-check}; mkdir -p "$out"
app() { bash .gpu/device-run.sh "$@"; }
port=8123
url=http://127.0.0.1:$port

serve() { # serve NAME ARGS... : starts the server in the background, waits until ready (90 s)
  local name=$1; shift
  if curl -sf "$url/health/live" > /dev/null; then echo "port $port is already serving"; return 1; fi
  # not through app(): $! must be the process that becomes the server, so that stop() ends it
  bash .gpu/device-run.sh serve --urls "$url" --log-folder "$out/logs-$name" "$@" > "$out/serve-$name.log" 2>&1 &
  server=$!
  for _ in $(seq 180); do
    curl -sf "$url/health/ready" > /dev/null && return 0
    kill -0 "$server" 2> /dev/null || { echo "server $name exited"; tail -20 "$out/serve-$name.log"; return 1; }
    sleep 0.5
  done
  echo "server $name not ready in 90 s"; tail -20 "$out/serve-$name.log"; return 1
}
stop() { kill "$server" 2> /dev/null; wait "$server" 2> /dev/null; for _ in $(seq 50); do curl -sf "$url/health/live" > /dev/null || break; sleep 0.2; done; }
ask() { curl -s "$url/query" -H 'Content-Type: application/json' -d "$1"; echo; }

echo "== 1. default model, CUDA float32 vs CPU"
for q in "37 + 58 =" "What is 912 - 45?" "7 times 8?"; do
  gpu=$(app generate --model models/default --device cuda --dtype float32 --prompt "$q" --max-new-tokens 8 2> "$out/gen.err" | tr "\n" " ")
  cpu=$(app generate --model models/default --device cpu --dtype float32 --prompt "$q" --max-new-tokens 8 2>> "$out/gen.err" | tr "\n" " ")
  echo "$q  cuda: $gpu  cpu: $cpu  $([ "$gpu" = "$cpu" ] && echo same || echo DIFFERENT)"
done

echo "== 2. engine bench, 0.5B shape, bfloat16, CUDA"
app bench --device cuda --dtypes bfloat16 --streams 1,16,64 --prompt-tokens 128 --output-tokens 128 --rounds 1 2>&1 | tee "$out/bench.txt" | tail -12

echo "== 3. serve the default model on CUDA"
if serve default --device cuda --dtype float32; then
  ask '{"prompt": "What is 37 + 58?", "max_new_tokens": 8}'
  curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model": "default", "messages": [{"role": "user", "content": "What is 6 times 7?"}], "temperature": 0}'; echo
  curl -s "$url/memory"; echo
  stop
fi

echo "== 4. real CUDA OOM at load: the default model with a KV budget of 240 GiB"
if serve oom-load --device cuda --dtype float32 --kv-cache-size 240GiB; then
  ask '{"prompt": "What is 37 + 58?", "max_new_tokens": 8}'
  curl -s "$url/health"; echo
  curl -s "$url/memory"; echo
  stop
fi
grep -h -i -E "out of memory|degrad" "$out"/logs-oom-load/*.log 2> /dev/null | cut -c1-300 | head -8

echo "== 5. injected OOM at steps 3 and 9 while serving on CUDA"
export ACTORQUERY__FAULTS__OOMATSTEPS__0=3 ACTORQUERY__FAULTS__OOMATSTEPS__1=9
if serve oom-steps --device cuda --dtype float32 --cache-entries 0; then
  pids=()
  for i in $(seq 8); do
    (ask "{\"prompt\": \"$((i * 11)) + $((i * 7)) =\", \"max_new_tokens\": 8}" > "$out/q$i.json") & pids+=($!)
  done
  wait "${pids[@]}"
  for i in $(seq 8); do echo "$((i * 11)) + $((i * 7)) = ($((i * 18))): $(cut -c1-160 "$out/q$i.json")"; done
  curl -s "$url/health"; echo
  stop
fi
unset ACTORQUERY__FAULTS__OOMATSTEPS__0 ACTORQUERY__FAULTS__OOMATSTEPS__1
echo "== done"
