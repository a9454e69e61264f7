#!/usr/bin/env bash
# Packs the app for the GPU machine small enough to travel: the device tool carries at most 64 MiB (the tracked files,
# ~20 MiB, plus .gpu/), and ../shared/gpu/pack.sh alone writes ~62 MiB. Run here, from the project's root:
#   bash scripts/gpu-pack.sh
# then call the device tool with carry [".gpu"] and the command `bash scripts/gpu-check.sh` (it unpacks .gpu/app.tar.xz).
# Beyond pack.sh this
#   - publishes the bench tool (tools/ActorQuery.Bench) into the same folder (it shares every library with the server)
#     and writes .gpu/bench-run.sh, device-run.sh for that tool;
#   - drops the plotting libraries (SkiaSharp, HarfBuzzSharp, ScottPlot: ~13 MiB), which only the bench tool's `http`
#     verb loads;
#   - re-packs the .NET runtime at xz -9e without the debugger's and diagnostics' libraries and the alternative GCs
#     (libmscordaccore, libmscordbi, createdump, libclrgc*, libcoreclrtraceptprovider) and without
#     Microsoft.VisualBasic.Core: a `generate` and a `serve` ran here on the runtime so packed;
#   - compresses the app folder itself (~16 MiB to ~5 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ../shared/gpu/pack.sh src/Host
dotnet publish tools/ActorQuery.Bench -c Release -r linux-x64 --self-contained false -o .gpu/app -p:UseAppHost=false > /dev/null
find .gpu/app -type f \( -name 'libtorch*.so*' -o -name 'libc10*.so*' -o -name 'libgomp*.so*' -o -name 'libshm*.so*' \) -delete
sed 's#\$(cat "\$here/main")#actorquery-bench.dll#' .gpu/device-run.sh > .gpu/bench-run.sh
rm -f .gpu/app/libSkiaSharp.so .gpu/app/libHarfBuzzSharp.so .gpu/app/SkiaSharp.dll .gpu/app/HarfBuzzSharp.dll .gpu/app/ScottPlot.dll
root=$(dirname "$(readlink -f "$(command -v dotnet)")")
tar cf - -C "$root" --exclude=libmscordaccore.so --exclude=libmscordbi.so --exclude=createdump \
  --exclude='libclrgc*.so' --exclude=libcoreclrtraceptprovider.so --exclude=Microsoft.VisualBasic.Core.dll --exclude='*.xml' \
  dotnet host shared/Microsoft.NETCore.App shared/Microsoft.AspNetCore.App | xz -9e -T0 > .gpu/dotnet.tar.xz
tar cf - -C .gpu app | xz -9e -T0 > .gpu/app.tar.xz && rm -rf .gpu/app
tracked=$(git ls-files -z | xargs -0 stat -c %s 2> /dev/null | awk '{s += $1} END {print s}')
packed=$(find .gpu -type f -printf '%s\n' | awk '{s += $1} END {print s}')
awk -v t="$tracked" -v p="$packed" 'BEGIN {printf "travels: %.1f MiB (tracked %.1f + .gpu %.1f) of the 64 MiB limit\n", (t + p) / 1048576, t / 1048576, p / 1048576}'
