#!/usr/bin/env bash
# Side-by-side forward-pass benchmark on this machine, in one run: fibvid fp32 and bf16 (`fibvid bench
# --precision fp32,bf16`, each against the machine's peak for it, measured at its start) against the plain
# PyTorch reference (scripts/bench_torch.py, Debian's python3-torch) in fp32 and bf16 autocast, for
# TimeSformer-base 8x224 with dense attention and 8x448 with Fibottention (PyTorch computes the masked attention
# densely; GFLOP/s use fibvid's analytic count of the attended pairs for both). PyTorch runs without
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (they slow it here). Prints the CPU, each figure and the ratios.
# The machine's speed drifts by several percent from one minute to the next (a VM): each case runs in rounds,
# fibvid then PyTorch fp32 then PyTorch bf16 in every round, and the ratios use each one's best round, so that a
# slow minute does not land on one side only. Needs `bash scripts/setup.sh --dev` and a build.
#
#   scripts/bench_compare.sh [--config base] [--iters 5] [--threads 2] [--rounds 3] [--fibvid build/fibvid]
#                            [--quick]
#   (--rounds: rounds of the 8x224 case; 8x448 runs one, PyTorch takes half a minute per pass there;
#    --quick: 8x224 dense only)
set -euo pipefail
cd "$(dirname "$0")/.."
config=base iters=5 threads=2 bin=build/fibvid quick=0 rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
    --config) config=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --fibvid) bin=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "bench_compare.sh: unknown option $1" >&2; exit 1 ;;
    esac
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
isa=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx512f|avx512_bf16|amx_bf16|amx_tile' | tr '\n' ' ')
echo "CPU: $cpu; ISA: ${isa:-no AVX-512}; $threads threads; $(nproc) cores online; load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" --version 2>/dev/null | grep -i 'matrix products' || true

cases=("8 224 dense")
[ "$quick" = 1 ] || cases+=("8 448 fib")
for c in "${cases[@]}"; do
    read -r frames size attn <<<"$c"
    attn_opts=(--spatial-attn dense --temporal-attn dense)   # presets start as Fibottention
    [ "$attn" = fib ] && attn_opts=(--spatial-attn fib --temporal-attn fib)
    precs=fp32
    "$bin" bench --config test --iters 1 --precision bf16 >/dev/null 2>&1 && precs=fp32,bf16
    nr=$rounds
    [ "$attn" = fib ] && nr=1
    fv=() t32=() t16=()
    for ((r = 1; r <= nr; r++)); do
        fv+=("$("$bin" bench --config "$config" --frames "$frames" --size "$size" --iters "$iters" -t "$threads" \
                "${attn_opts[@]}" --precision "$precs" -f json)")
        t32+=("$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 scripts/bench_torch.py \
                --config "$config" --frames "$frames" --size "$size" --iters "$iters" --threads "$threads" \
                --attn "$attn" --json)")
        t16+=("$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 scripts/bench_torch.py \
                --config "$config" --frames "$frames" --size "$size" --iters "$iters" --threads "$threads" \
                --attn "$attn" --dtype bf16 --json)")
    done
    /usr/bin/python3 - "$config $frames x $size, $attn attention" "$nr" "${fv[@]}" "${t32[@]}" "${t16[@]}" <<'PY'
import json, sys
title, nr = sys.argv[1], int(sys.argv[2])
runs = [json.loads(a) for a in sys.argv[3:]]
fvs, t32s, t16s = runs[:nr], runs[nr:2 * nr], runs[2 * nr:]
best = lambda rs, key: min(rs, key=key)
fv = fvs[0]
print(f"\n{title}: {fv['gflop']:.1f} GFLOP per clip (analytic, attended pairs), {nr} round(s) of {fv['iters']} "
      f"iterations each, the best round's minimum; fibvid's GFLOP/s count the FLOPs it executes "
      f"({', '.join('%s %.1f' % (e['precision'], e['gflop_executed']) for e in fv['precisions'])}: "
      f"temporal projection folded, last block cls only), PyTorch's the analytic count")
print(f"{'implementation':<30} {'min ms':>9} {'median ms':>10} {'GFLOP/s':>8} {'of peak':>8}  per round (min ms); products")
p = {}
for e0 in fv['precisions']:
    name = e0['precision']
    per = [next(e for e in r['precisions'] if e['precision'] == name) for r in fvs]
    e = best(per, lambda e: e['min_ms'])
    p[name] = e
    rounds = ' '.join('%.1f' % x['min_ms'] for x in per)
    print(f"{'fibvid ' + name:<30} {e['min_ms']:9.1f} {e['median_ms']:10.1f} {e['gflops']:8.1f} "
          f"{100 * e['peak_fraction']:7.0f}%  {rounds}; {e['isa']} (peak {e['peak_gflops']:.0f} GFLOP/s measured)")
tb = {}
for name, ts in (("PyTorch fp32", t32s), ("PyTorch bf16 autocast", t16s)):
    t = tb[name] = best(ts, lambda t: t['min_ms'])
    rounds = ' '.join('%.1f' % x['min_ms'] for x in ts)
    print(f"{name:<30} {t['min_ms']:9.1f} {t['median_ms']:10.1f} {t['gflops_per_s_min']:8.1f} {'':>8}  {rounds}")
f32 = p['fp32']['min_ms']
print(f"fibvid fp32 vs PyTorch fp32: {tb['PyTorch fp32']['min_ms'] / f32:.2f}x faster")
if 'bf16' in p:
    b = p['bf16']['min_ms']
    print(f"fibvid bf16 vs PyTorch bf16 autocast: {tb['PyTorch bf16 autocast']['min_ms'] / b:.2f}x faster; "
          f"vs fibvid fp32: {f32 / b:.2f}x faster")
    if nr > 1:
        rr = ', '.join('%.2fx' % (t['min_ms'] / next(e for e in f['precisions'] if e['precision'] == 'bf16')['min_ms'])
                       for f, t in zip(fvs, t16s))
        print(f"  bf16 vs PyTorch bf16 within each round: {rr}")
print(f"(ratios of the best rounds' minimum times; fibvid peak RSS {max(r['peak_rss_mb'] for r in fvs):.0f} MB)")
PY
done
