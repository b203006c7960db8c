#!/usr/bin/env bash
# Every attention kind against dense, in one run on this machine (the figures of issue 17):
#   1. the kernels alone (`fibvid bench attention`): one clip-layer, 12 heads, head_dim 64, 8 frames, at
#      N = 196, 784 and 3136 patch tokens per frame (cls not counted) (224, 448 and 896 pixels at patch 16): each kind's time, its
#      speed-up over dense, and how its time grows per 4x tokens (linear: ~4x, quadratic: ~16x);
#   2. end to end (`fibvid bench --config base --size 448`, random weights): the forward pass with dense,
#      sima and castling in both attentions.
# Prints the CPU model and its vector ISA first: speed figures only compare within one run.
#
#   scripts/bench_attention_kinds.sh [--fibvid build/fibvid] [--iters 3] [--threads N] [--tokens "196 784 3136"]
#                                    [--size 448] [--no-model]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/fibvid config=base iters=3 threads=$(nproc) tokens="196 784 3136" size=448 model=1
while [ $# -gt 0 ]; do
    case "$1" in
    --fibvid) bin=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --no-model) model=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench_attention_kinds.sh: unknown option $1" >&2; exit 1 ;;
    esac
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
isa=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|amx_tile|amx_bf16)$' |
      tr '\n' ' ')
echo "CPU: $cpu; ISA: ${isa:-none of avx2/avx512}; $threads threads; $($bin --version 2>/dev/null || echo "$bin")"
echo

runs=()
for n in $tokens; do
    runs+=("$("$bin" bench attention --tokens "$n" --frames 8 --heads 12 --head-dim 64 --iters "$iters" \
               -t "$threads" -f json)")
done
/usr/bin/python3 - "${runs[@]}" <<'PY'
import json, sys
runs = [json.loads(a) for a in sys.argv[1:]]
print("kernels alone: one clip-layer, 12 heads, head_dim 64, 8 frames (min of the timed runs)")
print(f"{'attention':<9} {'kind':<12} {'N':>5} {'min ms':>10} {'GFLOP':>9} {'vs dense':>9} {'per 4x N':>9}")
prev = {}
for rows in runs:
    for r in rows:
        key = (r["attention"], r["kind"])
        # spatial: N patch tokens (+ cls) per sequence; temporal: N sequences of 8 frames
        n = r["tokens"] if r["attention"] == "spatial" else r["sequences"]
        grow = ""
        if key in prev and n == 4 * prev[key][0]:   # 196 -> 784 -> 3136 = 4x patches
            grow = f"{r['min_ms'] / prev[key][1]:8.1f}x"
        prev[key] = (n, r["min_ms"])
        print(f"{r['attention']:<9} {r['kind']:<12} {n:5d} {r['min_ms']:10.2f} {r['gflop']:9.3f} "
              f"{r['speedup_vs_dense']:8.1f}x {grow:>9}")
PY

if [ "$model" = 1 ]; then
    echo
    echo "end to end: fibvid bench --config base --size $size (8 frames, random weights), both attentions"
    printf '%-10s %10s %10s %9s %9s\n' kind "min ms" "median ms" GFLOP "vs dense"
    dense_ms=""
    for kind in dense sima castling fib; do
        j=$("$bin" bench --config "$config" --size "$size" --frames 8 --iters "$iters" -t "$threads" \
              --spatial-attn "$kind" --temporal-attn "$kind" -f json)
        read -r mn md gf < <(/usr/bin/python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["min_ms"], j["median_ms"], j["gflop"])' "$j")
        [ -z "$dense_ms" ] && dense_ms=$mn
        printf '%-10s %10.1f %10.1f %9.2f %8.2fx\n' "$kind" "$mn" "$md" "$gf" "$(/usr/bin/python3 -c "print($dense_ms / $mn)")"
    done
fi
