#!/usr/bin/env bash
# HTTP load benchmark: builds once (Release), starts `serve` with the Qwen2.5-0.5B shape (random weights,
# dtype auto: the faster one, bf16 weights under float32 arithmetic on an AVX2 CPU) on a free loopback port with
# router and batch limits for 64 streams, runs the bench tool's `http` verb against it (concurrency 1, 4, 16, 64; 128 tokens in,
# 128 out), stops the server and prints where the results are.
#
#   scripts/bench-http.sh [serve options] [-- http options]
#   scripts/bench-http.sh --dtype float32 -- --concurrency 1,4,16 --requests-per-stream 2
#
# Serve options given here replace the defaults below; http options go after "--"
# (see `dotnet run --project tools/ActorQuery.Bench -- help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-common.sh

# Defaults fit for 64 concurrent 256-token streams: all admitted at once (no 429), one batch of up to 64, a KV budget
# of 2 GiB (64 × 256 tokens of the 0.5B shape need about 0.4 GiB), no answer cache (every prompt differs anyway),
# an hour's deadline (a benchmark measures slow answers rather than cutting them off at the default 120 s).
defaults=(model models/shapes/qwen2.5-0.5b dtype auto max-in-flight 64 max-queue 64 max-batch 64
          kv-cache-size 2GiB cache-entries 0 deadline 3600 log-level Warning)
split_serve_args "$@"
# Random weights with the default model folder (it holds only config and tokenizer); a model of your own loads its weights.
if ! has_option model "${serve[@]}" && ! has_option dummy-weights "${serve[@]}"; then args+=(--dummy-weights); fi

build_host
start_server "${args[@]}"

model=$(option_value model "${args[@]}")
dtype=$(option_value dtype "${args[@]}")
engine=(--model "$model" --dtype "$dtype")
has_option dummy-weights "${args[@]}" && engine+=(--dummy-weights)
has_option device "${args[@]}" && engine+=(--device "$(option_value device "${args[@]}")")

run_verb http 'results: ' --url "$SERVER_URL" "${engine[@]}" --server-args "${args[*]}" "${rest[@]}"
