#!/usr/bin/env bash
# ActorQuery's engine side by side with llama.cpp on this CPU (issue 20's ratios), from one run: the llama.cpp peer of
# ../shared/peers/llama-cpp (LLamaSharp's packaged CPU build, its README) and ActorQuery's engine bench, on the
# Qwen2.5-0.5B shape with random weights in the same weight format, alternating ROUNDS times (peer, ours, peer, ours...),
# so that both meet the same noise. Measures, per side: prefill of 512 tokens; decode of one stream after a 128-token
# prompt (64 new tokens); 16 streams of 128 + 64 tokens, aggregate over the decode steps only (as llama.cpp's figure:
# its prompts are fed before its clock starts). Writes one table with medians and ratios
# (ActorQuery / llama.cpp), with the CPU's model and features, to bench/results/peer-DATE.md and prints it.
#
#   scripts/bench-peer.sh [ROUNDS]          default 2; FORMAT=bf16 (default) or FORMAT=q8_0 (llama.cpp's q8_0 against
#                                           ActorQuery's --dtype int8: both 8-bit weights in groups of 32, one scale each)
#
# Needs python3 (the peer's GGUF writer), the .NET SDK and NuGet (the peer's LLamaSharp packages). Run it with nothing
# else busy: the figures are medians of the rounds, still noisy on a shared 2-core VM. The models and the peer's build
# stay in $PEER_DIR (default /tmp/llama-peer), outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
FORMAT=${FORMAT:-bf16}
P=../shared/peers/llama-cpp
S=${PEER_DIR:-/tmp/llama-peer}
[ -d "$P" ] || { echo "error: no llama.cpp peer at $P" >&2; exit 2; }
case $FORMAT in bf16) DTYPE=bfloat16 ;; q8_0) DTYPE=int8 ;; *) echo "error: FORMAT $FORMAT: use bf16 or q8_0" >&2; exit 2 ;; esac
mkdir -p "$S" bench/results
GGUF=$S/qwen2.5-0.5b-shape-$FORMAT.gguf
[ -f "$GGUF" ] || python3 "$P/make_gguf.py" --shape "$P/qwen2.5-0.5b-config.json" --dummy "$GGUF" --dtype "$FORMAT" >&2
if [ ! -f "$S/bin/llama-peer.dll" ]; then
  rm -rf "$S/src" && cp -r "$P" "$S/src" && dotnet build "$S/src" -c Release -o "$S/bin" -nologo -v q >&2
fi
dotnet build tools/ActorQuery.Bench -c Release -nologo -v q >&2
BENCH=$(find tools/ActorQuery.Bench/bin/Release -name actorquery-bench.dll -path '*net10.0*' | head -1)
LOG=$(mktemp -d /tmp/bench-peer-XXXXXX)

# peer: "| label | prefill | decode 1 seq | 16-seq aggregate | per seq |"
peer() {
  dotnet "$S/bin/llama-peer.dll" "$GGUF" --label peer >"$LOG/peer-$1.txt" 2>&1
  grep '^| peer |' "$LOG/peer-$1.txt" | awk -F'|' '{gsub(/ /,""); print $3, $4, $5}'
}
# ours: the engine bench's markdown row (prefill 512, decode after a 128-token prompt) and its 16-stream line
ours() {
  dotnet "$BENCH" engine --dtypes "$DTYPE" --prefill-tokens 512 --decode-prompt-lengths 128 --decode-tokens 64 --repeats 3 \
    >"$LOG/ours-$1.txt" 2>&1
  local row; row=$(grep "^| $DTYPE |" "$LOG/ours-$1.txt" | awk -F'|' '{gsub(/ /,""); print $4, $5}')
  dotnet "$BENCH" engine --dtypes "$DTYPE" --streams 16 --prompt-tokens 128 --output-tokens 64 --rounds 2 >"$LOG/ours-streams-$1.txt" 2>&1
  local agg; agg=$(sed -n 's/^16 streams: [0-9.]* tok\/s, decode only \([0-9.]*\) tok\/s.*/\1/p' "$LOG/ours-streams-$1.txt" | tail -1)
  echo "$row $agg"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }

: >"$LOG/peer.txt"; : >"$LOG/ours.txt"
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r of $ROUNDS: llama.cpp ..." >&2; peer "$r" | tee -a "$LOG/peer.txt" >&2
  echo "round $r of $ROUNDS: ActorQuery ..." >&2; ours "$r" | tee -a "$LOG/ours.txt" >&2
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|avx512_vnni|avx_vnni|amx_bf16)$' | sort | tr '\n' ' ')
out=bench/results/peer-$(date -u +%Y%m%d-%H%M%S).md
{
  echo "Qwen2.5-0.5B shape, random weights, $FORMAT; $cpu, $(nproc) cores, flags: ${flags:-none of avx2/avx512}; $(date -u +%Y-%m-%d), medians of $ROUNDS alternating rounds."
  echo
  echo "| | prefill 512 tok/s | decode, 1 stream, tok/s (128-token prompt) | 16 streams, aggregate decode tok/s |"
  echo "|---|---|---|---|"
  line() { printf '| %s |' "$1"; for c in 1 2 3; do printf ' %s |' "$(awk -v c=$c '{print $c}' "$2" | median)"; done; echo; }
  line "llama.cpp $FORMAT" "$LOG/peer.txt"
  line "ActorQuery $FORMAT" "$LOG/ours.txt"
  printf '| ratio |'
  for c in 1 2 3; do
    a=$(awk -v c=$c '{print $c}' "$LOG/ours.txt" | median); b=$(awk -v c=$c '{print $c}' "$LOG/peer.txt" | median)
    printf ' %s |' "$(awk -v a="$a" -v b="$b" 'BEGIN {printf (b > 0 ? "%.2fx" : "-"), a / b}')"
  done
  echo
  echo
  echo "Rounds (prefill, decode, 16-stream): llama.cpp $(paste -sd';' "$LOG/peer.txt"); ActorQuery $(paste -sd';' "$LOG/ours.txt"). Logs: $LOG."
} | tee "$out"
echo "written: $out" >&2
