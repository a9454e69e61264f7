#!/usr/bin/env bash
# CUDA checks, run on a machine with an NVIDIA GPU and a CUDA build of PyTorch but no .NET (see README, "Running
# on a GPU"). Here: bash scripts/gpu-pack.sh; there (carry [".gpu"]): bash scripts/gpu-check.sh.
# Prints each step and writes its logs to $OUT (or /tmp/gpu-check):
#   1. the default model's answers on CUDA (float32) are the CPU's; its answers on CUDA in bfloat16;
#   2. engine throughput of the Qwen2.5-0.5B shape (random weights, bfloat16 and float32) at 1, 16 and 64 streams,
#      and bfloat16 at one stream with libtorch's cuDNN attention kept on (see CudnnAttention.cs);
#   3. serve on CUDA: /query, /v1/chat/completions, and device memory in /memory;
#   4. a real CUDA out-of-memory while loading (a KV budget far over the GPU) degrades, then serves;
#   5. injected out-of-memory errors mid-serving: the worker restarts and every query is answered.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-check}; mkdir -p "$out"
. scripts/serve-common.sh                  # start_server / stop_server; each server's logs go to a folder under $out
export TMPDIR=$out
[ -d .gpu/app ] || tar xJf .gpu/app.tar.xz -C .gpu   # gpu-pack.sh compresses the app to fit the 64 MiB that travel
HOST=(bash .gpu/device-run.sh)
BENCH=(bash .gpu/bench-run.sh)
app() { timeout "${STEP_LIMIT:-120}" "${HOST[@]}" "$@"; }   # no step may eat the device time of the others
bench() { timeout "${STEP_LIMIT:-120}" "${BENCH[@]}" engine "$@"; }
export READY_LIMIT=${STEP_LIMIT:-120}                     # nor may a server that never gets ready
ask() { curl -s --max-time 60 "$SERVER_URL/query" -H 'Content-Type: application/json' -d "$1"; echo; }
# answer PROMPT ARGS...: the default model's greedy answer on one line, without the GPU line device-run.sh prints first.
answer() { app generate --model models/default --prompt "$1" --max-new-tokens 8 "${@:2}" 2>> "$out/gen.err" | grep -v " MiB, " | tr "\n" " "; }

echo "== 0. the CUDA libraries' exported cache and memory calls (CudaMemory reads cudaMemGetInfo)"
torchlib=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")' 2> /dev/null)
nm -DC --defined-only "$torchlib/libc10_cuda.so" 2> /dev/null | grep -i -E "emptyCache|getDeviceStats" | cut -c1-200 | head -6
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2> /dev/null

echo "== 1. default model, CUDA float32 vs CPU, and CUDA bfloat16"
: > "$out/gen.err"
for q in "37 + 58 =" "What is 912 - 45?" "7 times 8?"; do
  gpu=$(answer "$q" --device cuda --dtype float32)
  cpu=$(answer "$q" --device cpu --dtype float32)
  bf16=$(answer "$q" --device cuda --dtype bfloat16)
  echo "$q  cuda: $gpu  cpu: $cpu  $([ "$gpu" = "$cpu" ] && echo same || echo DIFFERENT)  cuda bfloat16: $bf16"
done

echo "== 2. engine bench, 0.5B shape, CUDA, bfloat16 and float32 (cuDNN attention off, the default)"
STEP_LIMIT=240 bench --device cuda --dtypes bfloat16,float32 --streams 1,16,64 --prompt-tokens 128 --output-tokens 128 --rounds 1 2>&1 | tee "$out/bench.txt" | grep -E "^\| [0-9]|^Engine"
echo "== 2b. the same, one stream of bfloat16, with cuDNN attention kept (ACTORQUERY_CUDNN_ATTENTION=1)"
ACTORQUERY_CUDNN_ATTENTION=1 bench --device cuda --dtypes bfloat16 --streams 1 --prompt-tokens 128 --output-tokens 128 --rounds 1 2>&1 | tee "$out/bench-cudnn.txt" | grep -E "^\| [0-9]"

echo "== 3. serve the default model on CUDA"
start_server --device cuda --dtype float32
ask '{"prompt": "What is 37 + 58?", "max_new_tokens": 8}'
curl -s "$SERVER_URL/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "default", "messages": [{"role": "user", "content": "What is 6 times 7?"}], "temperature": 0}'; echo
sleep 6 # the watchdog reads memory every 5 s
curl -s "$SERVER_URL/memory"; echo
stop_server

echo "== 4. real CUDA OOM at load: the default model with a KV budget of 240 GiB"
start_server --device cuda --dtype float32 --kv-cache-size 240GiB
ask '{"prompt": "What is 37 + 58?", "max_new_tokens": 8}'
curl -s "$SERVER_URL/health"; echo
curl -s "$SERVER_URL/memory"; echo
stop_server
grep -h -i -E "out of memory|degrad" "$SERVER_LOG"/*.log 2> /dev/null | cut -c1-300 | head -8

echo "== 5. injected OOM at steps 3 and 9 while serving on CUDA"
export ACTORQUERY__FAULTS__OOMATSTEPS__0=3 ACTORQUERY__FAULTS__OOMATSTEPS__1=9
start_server --device cuda --dtype float32 --cache-entries 0
pids=()
for i in $(seq 8); do
  (ask "{\"prompt\": \"$((i * 11)) + $((i * 7)) =\", \"max_new_tokens\": 8}" > "$out/q$i.json") & pids+=($!)
done
wait "${pids[@]}"
for i in $(seq 8); do echo "$((i * 11)) + $((i * 7)) = ($((i * 18))): $(cut -c1-160 "$out/q$i.json")"; done
curl -s "$SERVER_URL/health"; echo
stop_server
unset ACTORQUERY__FAULTS__OOMATSTEPS__0 ACTORQUERY__FAULTS__OOMATSTEPS__1
echo "== done"
