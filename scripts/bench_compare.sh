#!/usr/bin/env bash
# Side-by-side forward-pass benchmark on this machine, in one run: fibvid fp32 and bf16 (`fibvid bench
# --precision fp32,bf16`, each against the machine's peak for it, measured at its start) against the plain
# PyTorch reference (scripts/bench_torch.py, Debian's python3-torch) in fp32 and bf16 autocast, for
# TimeSformer-base 8x224 with dense attention and 8x448 with Fibottention (PyTorch computes the masked attention
# densely; GFLOP/s use fibvid's analytic count of the attended pairs for both). PyTorch runs without
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (they slow it here). Prints the CPU, each figure and the ratios.
# Needs `bash scripts/setup.sh --dev` and a build.
#
#   scripts/bench_compare.sh [--config base] [--iters 5] [--threads 2] [--fibvid build/fibvid] [--quick]
#   (--quick: 8x224 dense only)
set -euo pipefail
cd "$(dirname "$0")/.."
config=base iters=5 threads=2 bin=build/fibvid quick=0
while [ $# -gt 0 ]; do
    case "$1" in
    --config) config=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --fibvid) bin=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
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
    fv=$("$bin" bench --config "$config" --frames "$frames" --size "$size" --iters "$iters" -t "$threads" \
            "${attn_opts[@]}" --precision "$precs" -f json)
    t32=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 scripts/bench_torch.py --config "$config" \
            --frames "$frames" --size "$size" --iters "$iters" --threads "$threads" --attn "$attn" --json)
    t16=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 scripts/bench_torch.py --config "$config" \
            --frames "$frames" --size "$size" --iters "$iters" --threads "$threads" --attn "$attn" --dtype bf16 --json)
    /usr/bin/python3 - "$fv" "$t32" "$t16" "$config $frames x $size, $attn attention" <<'PY'
import json, sys
fv, t32, t16 = (json.loads(a) for a in sys.argv[1:4])
print(f"\n{sys.argv[4]}: {fv['gflop']:.1f} GFLOP per clip (analytic, attended pairs), min of {fv['iters']} iterations;"
      f" fibvid's GFLOP/s count the FLOPs it executes ({', '.join('%s %.1f' % (e['precision'], e['gflop_executed']) for e in fv['precisions'])}: "
      f"temporal projection folded, last block cls only), PyTorch's the analytic count")
print(f"{'implementation':<30} {'min ms':>9} {'median ms':>10} {'GFLOP/s':>8} {'of peak':>8}  products")
p = {e['precision']: e for e in fv['precisions']}
for name, e in p.items():
    print(f"{'fibvid ' + name:<30} {e['min_ms']:9.1f} {e['median_ms']:10.1f} {e['gflops']:8.1f} "
          f"{100 * e['peak_fraction']:7.0f}%  {e['isa']} (peak {e['peak_gflops']:.0f} GFLOP/s measured)")
for name, t in (("PyTorch fp32", t32), ("PyTorch bf16 autocast", t16)):
    print(f"{name:<30} {t['min_ms']:9.1f} {t['median_ms']:10.1f} {t['gflops_per_s_min']:8.1f}")
f32 = p['fp32']['min_ms']
print(f"fibvid fp32 vs PyTorch fp32: {t32['min_ms'] / f32:.2f}x faster")
if 'bf16' in p:
    b = p['bf16']['min_ms']
    print(f"fibvid bf16 vs PyTorch bf16 autocast: {t16['min_ms'] / b:.2f}x faster; vs fibvid fp32: {f32 / b:.2f}x faster")
print(f"(ratios of minimum times; fibvid peak RSS {fv['peak_rss_mb']:.0f} MB)")
PY
done
