#!/usr/bin/env bash
# Side-by-side forward-pass benchmark on this machine, in one run: fibvid (fp32) against the plain
# PyTorch reference (scripts/bench_torch.py, Debian's python3-torch, fp32) with both OpenBLAS builds
# under PyTorch (Debian's torch calls the system libblas.so.3: pthread build by default, OpenMP build via
# LD_LIBRARY_PATH). Prints each figure and the ratio. Needs `bash scripts/setup.sh --dev` and a build.
#
#   scripts/bench_compare.sh [--config base] [--frames 8] [--size 224] [--iters 5] [--threads 2]
#                            [--attn dense|fib] [--fibvid build/fibvid]
set -euo pipefail
cd "$(dirname "$0")/.."
config=base frames=8 size=224 iters=5 threads=2 attn=dense bin=build/fibvid
while [ $# -gt 0 ]; do
    case "$1" in
    --config) config=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --attn) attn=$2; shift 2 ;;
    --fibvid) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "bench_compare.sh: unknown option $1" >&2; exit 1 ;;
    esac
done
attn_opts=(--spatial-attn dense --temporal-attn dense)   # presets start as Fibottention
[ "$attn" = fib ] && attn_opts=(--spatial-attn fib --temporal-attn fib)

fv=$("$bin" bench --config "$config" --frames "$frames" --size "$size" --iters "$iters" -t "$threads" \
        "${attn_opts[@]}" -f json)
tp=$(/usr/bin/python3 scripts/bench_torch.py --config "$config" --frames "$frames" --size "$size" \
        --iters "$iters" --threads "$threads" --attn "$attn" --json)
tm=$(LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 scripts/bench_torch.py \
        --config "$config" --frames "$frames" --size "$size" --iters "$iters" --threads "$threads" \
        --attn "$attn" --json)
/usr/bin/python3 - "$fv" "$tp" "$tm" <<'PY'
import json, sys
fv, tp, tm = (json.loads(a) for a in sys.argv[1:4])
print(f"{'implementation':<34} {'min ms':>9} {'median ms':>10} {'GFLOP/s':>8} {'fibvid faster':>14}")
print(f"{'fibvid fp32':<34} {fv['min_ms']:9.1f} {fv['median_ms']:10.1f} {fv['gflops']:8.1f} {'':>14}")
for name, t in (("PyTorch fp32 (OpenBLAS pthread)", tp), ("PyTorch fp32 (OpenBLAS OpenMP)", tm)):
    print(f"{name:<34} {t['min_ms']:9.1f} {t['median_ms']:10.1f} {t['gflops_per_s']:8.1f} "
          f"{t['min_ms'] / fv['min_ms']:13.2f}x")
print(f"(ratio of minimum times; fibvid peak RSS {fv['peak_rss_mb']:.0f} MB)")
PY
