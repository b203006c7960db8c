#!/bin/sh
# scripts/psvit_search.sh end to end on a tiny budget (2 clips a class, 1 epoch, batch 4): every configuration of
# the compact set is trained, evaluated and timed; results.csv has the 8 rows with finite figures, results.md and
# pareto.svg exist with at least one configuration on the Pareto front; a second run trains nothing again.
# usage: test_psvit_search.sh SOURCE_DIR FIBVID_BINARY
set -eu
src=$1
bin=$(cd "$(dirname "$2")" && pwd)/$(basename "$2") # the script changes directory
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { "$src/scripts/psvit_search.sh" --out "$tmp/s" --epochs 1 --clips-per-class 2 --heldout-per-class 2 \
            --batch 4 --fibvid "$bin" 2>"$tmp/log$1"; }
run 1 >/dev/null
rows=$(tail -n +2 "$tmp/s/results.csv" | wc -l)
[ "$rows" -eq 8 ] || { echo "results.csv has $rows rows, want 8"; cat "$tmp/s/results.csv"; exit 1; }
# name,token_pool,share_spatial,share_temporal,gflop,forward_ms,params,top1,...: GFLOPs and times positive
awk -F, 'NR > 1 && !($5 > 0 && $6 > 0 && $7 > 0 && $8 >= 0 && $8 <= 100) { print "bad row: " $0; bad = 1 } END { exit bad }' \
    "$tmp/s/results.csv"
# pooling after layer 0 costs less than none, sharing less than none
awk -F, '$1 == "pool-none.share-none" { a = $5 } $1 == "pool-avg0.share-none" { b = $5 } $1 == "pool-none.share-23" { c = $5 }
    END { if (!(b < a && c < a)) { print "GFLOPs: none " a ", pooled " b ", shared " c; exit 1 } }' "$tmp/s/results.csv"
grep -q '| yes |' "$tmp/s/results.md" || { echo "no Pareto configuration in results.md"; exit 1; }
grep -q '<circle' "$tmp/s/pareto.svg" || { echo "pareto.svg has no points"; exit 1; }
run 2 >/dev/null
if grep -q ' train ' "$tmp/log2"; then echo "the second run trained again:"; cat "$tmp/log2"; exit 1; fi
echo "8 configurations trained, evaluated and plotted; a second run reused them"
