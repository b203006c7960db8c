#!/usr/bin/env bash
# PSViT's search over a compact set (fibvid's reconstruction, SPEC 4.3): the paper learns where to pool tokens
# and which layers share attention from data; this trains every configuration of a small set for the same
# budget on the same `fibvid synth` data and compares held-out accuracy against cost.
#
#   scripts/psvit_search.sh [--out DIR] [--epochs N] [--clips-per-class N] [--heldout-per-class N]
#                           [--batch N] [--fibvid PATH] [--threads N]
#
# The set (model: the `synth` preset, 4 layers, 3 heads, 8 frames of 64x64 on a 4x4 patch grid, Fibottention
# in both attentions; every configuration from scratch with the same seed and schedule):
#   token pooling:       none | avg after layer 0 (layers 1-3 on 2x2) | avg after layer 1 (layers 2-3 on 2x2)
#   attention sharing:   none | layer 3 (spatial and temporal) | layers 2 and 3 (spatial and temporal: a chain)
# 3 x 3 = 9 pairs less the one SPEC 4.3 forbids (pooling after 1 with layer 2 sharing across it): 8 runs.
# Data: `fibvid synth --clean` seed 8 (train and validation lists), held-out seed 1001 (every clip of both
# lists). Cost: GFLOPs per clip (fibvid's analytic count at 8x64x64, `fibvid info`) and the forward time of
# one clip on this machine (`fibvid bench -m`, min of 30).
#
# Resumable: a configuration whose model.safetensors exists is not trained again (an interrupted one continues
# from its last checkpoint with --resume); evaluation and timing are redone only when missing. Writes
# DIR/results.csv, DIR/results.md and DIR/pareto.svg (held-out top-1 against GFLOPs, the Pareto front marked:
# no other configuration is both cheaper and more accurate).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/psvit-search epochs=10 cpc=300 hcpc=60 batch=64 bin=$PWD/build/fibvid threads=$(nproc)
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --clips-per-class) cpc=$2; shift 2 ;;
    --heldout-per-class) hcpc=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --fibvid) bin=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "psvit_search.sh: unknown option $1" >&2; exit 1 ;;
    esac
done
mkdir -p "$out/runs" "$out/eval"
out=$(cd "$out" && pwd)
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# the first number of "key": in fibvid's indented JSON on stdin
jget() { sed -n "s/^ *\"$1\": *\([-0-9.eE+]*\).*/\1/p" | head -n 1; }

# data
if [ ! -f "$out/data/synth.json" ]; then
    log "data: fibvid synth -n $cpc -s 8 --clean"
    "$bin" synth -o "$out/data" -n "$cpc" -s 8 --clean -q -t "$threads" --force # an interrupted one is redone
fi
if [ ! -f "$out/heldout/all.txt" ]; then
    log "held-out: fibvid synth -n $hcpc -s 1001 --clean"
    "$bin" synth -o "$out/heldout" -n "$hcpc" -s 1001 --clean -q -t "$threads" --force
    awk 'NR==FNR { gsub("\r", ""); id[$2] = $1; next } { gsub("\r", ""); split($1, a, "/"); print $1 " " id[a[1]] }' \
        "$out/heldout/classInd.txt" "$out/heldout/trainlist01.txt" "$out/heldout/testlist01.txt" > "$out/heldout/all.tmp"
    cut -d' ' -f2 "$out/heldout/classInd.txt" | tr -d '\r' > "$out/heldout/classes.txt"
    mv "$out/heldout/all.tmp" "$out/heldout/all.txt"
fi

# the compact set: name, token pooling option, shared layers
configs=()
for pool in none avg0 avg1; do
    for share in none 3 23; do
        [ "$pool" = avg1 ] && [ "$share" = 23 ] && continue # layer 2 would share across the pooling after 1
        configs+=("$pool:$share")
    done
done

csv=$out/results.csv
printf 'name,token_pool,share_spatial,share_temporal,gflop,forward_ms,params,top1,top5,mean_class,train_s\n' > "$csv.tmp"
for c in "${configs[@]}"; do
    pool=${c%%:*} share=${c#*:}
    name=pool-$pool.share-$share
    opts=(--config synth --spatial-attn fib --temporal-attn fib)
    pdesc=none sdesc=none
    case "$pool" in avg0) opts+=(--token-pool 0:avg); pdesc="avg after 0" ;; avg1) opts+=(--token-pool 1:avg); pdesc="avg after 1" ;; esac
    case "$share" in 3) opts+=(--share-spatial 3 --share-temporal 3); sdesc="3" ;;
                     23) opts+=(--share-spatial 2,3 --share-temporal 2,3); sdesc="2 3" ;; esac
    run=$out/runs/$name
    if [ ! -f "$run/model.safetensors" ]; then
        resume=()
        [ -f "$run/checkpoint.json" ] && resume=(--resume)
        log "train $name (${opts[*]})"
        "$bin" train --ucf101 "$out/data" -o "$run" "${opts[@]}" --epochs "$epochs" -b "$batch" --lr 1e-3 --warmup 2 \
            --seed 1 -t "$threads" -q "${resume[@]}" > "$run.log" 2>&1 || { log "train $name failed: see $run.log"; exit 3; }
    fi
    ev=$out/eval/$name
    if [ ! -f "$ev/summary.json" ]; then
        log "evaluate $name"
        rm -rf "$ev"
        "$bin" evaluate -m "$run/model.safetensors" --root "$out/heldout" --list "$out/heldout/all.txt" --label-base 1 \
            --classes "$out/heldout/classes.txt" -t "$threads" -o "$ev" -q > /dev/null
    fi
    if [ ! -f "$ev/bench.json" ]; then
        "$bin" bench -m "$run/model.safetensors" --frames 8 --size 64 --iters 30 -t "$threads" -f json > "$ev/bench.json"
    fi
    info=$("$bin" info -m "$run/model.safetensors" -f json)
    elapsed=$(grep '"type":"done"' "$run/train.jsonl" | tail -n 1 | sed -n 's/.*"elapsed_s":\([0-9.eE+-]*\).*/\1/p')
    printf '%s,%s,%s,%s,%.4f,%.2f,%s,%.2f,%.2f,%.2f,%.0f\n' "$name" "$pdesc" "$sdesc" "$sdesc" \
        "$(jget gflop_per_view <<<"$info")" "$(jget min_ms < "$ev/bench.json")" "$(jget num_params <<<"$info")" \
        "$(jget top1_acc < "$ev/summary.json")" "$(jget top5_acc < "$ev/summary.json")" \
        "$(jget mean_class_acc < "$ev/summary.json")" "${elapsed:-0}" >> "$csv.tmp"
done
mv "$csv.tmp" "$csv"

# the Pareto front (lower GFLOPs, higher top-1), the Markdown table and the plot
awk -F, 'NR > 1 { n++; name[n] = $1; g[n] = $5; a[n] = $8; line[n] = $0 }
END {
    for (i = 1; i <= n; i++) {
        front[i] = 1
        for (j = 1; j <= n; j++)
            if (j != i && g[j] <= g[i] && a[j] >= a[i] && (g[j] < g[i] || a[j] > a[i])) front[i] = 0
        print line[i] "," front[i]
    }
}' "$csv" > "$out/front.tmp"
{
    echo "| configuration | token pooling | shared layers (spatial, temporal) | GFLOP / clip | forward ms | parameters | held-out top-1 | top-5 | Pareto |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    awk -F, '{ printf "| %s | %s | %s | %.3f | %.1f | %d | %.2f %% | %.2f %% | %s |\n", $1, $2, $3, $5, $6, $7, $8, $9, ($12 ? "yes" : "") }' \
        "$out/front.tmp"
} > "$out/results.md"
awk -F, -v epochs="$epochs" '
function X(v) { return 70 + (v - gmin) / (gmax - gmin) * 460 }
function Y(v) { return 330 - (v - amin) / (amax - amin) * 270 }
{ n++; name[n] = $1; g[n] = $5; a[n] = $8; f[n] = $12
  if (n == 1 || $5 < gmin) gmin = $5; if (n == 1 || $5 > gmax) gmax = $5
  if (n == 1 || $8 < amin) amin = $8; if (n == 1 || $8 > amax) amax = $8 }
END {
    pad = (gmax - gmin) * 0.08 + 1e-6; gmin -= pad; gmax += pad
    pad = (amax - amin) * 0.1 + 0.5; amin -= pad; amax += pad
    print "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"700\" height=\"400\" font-family=\"sans-serif\" font-size=\"11\">"
    print "<rect width=\"700\" height=\"400\" fill=\"white\"/>"
    print "<text x=\"300\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">PSViT compact-set search (fibvid&#8217;s reconstruction)</text>"
    printf "<text x=\"300\" y=\"38\" text-anchor=\"middle\" font-size=\"12\">held-out top-1 against GFLOPs per clip, %s epochs each, same data and seed</text>\n", epochs
    print "<line x1=\"70\" y1=\"330\" x2=\"530\" y2=\"330\" stroke=\"black\"/><line x1=\"70\" y1=\"50\" x2=\"70\" y2=\"330\" stroke=\"black\"/>"
    for (t = 0; t <= 4; t++) {
        gv = gmin + (gmax - gmin) * t / 4; av = amin + (amax - amin) * t / 4
        printf "<text x=\"%.1f\" y=\"346\" text-anchor=\"middle\">%.3f</text>\n", X(gv), gv
        printf "<text x=\"64\" y=\"%.1f\" text-anchor=\"end\">%.1f</text><line x1=\"70\" x2=\"530\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", Y(av) + 4, av, Y(av), Y(av)
    }
    print "<text x=\"300\" y=\"366\" text-anchor=\"middle\">GFLOP per clip (8 x 64 x 64)</text>"
    print "<text x=\"18\" y=\"190\" text-anchor=\"middle\" transform=\"rotate(-90 18 190)\">held-out top-1 (%)</text>"
    # the front as a step line through its points in GFLOP order
    m = 0
    for (i = 1; i <= n; i++) if (f[i]) { m++; fg[m] = g[i]; fa[m] = a[i] }
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (fg[j] < fg[i]) { t = fg[i]; fg[i] = fg[j]; fg[j] = t; t = fa[i]; fa[i] = fa[j]; fa[j] = t }
    if (m > 1) {
        printf "<polyline fill=\"none\" stroke=\"#d95f02\" stroke-width=\"1.5\" stroke-dasharray=\"4,3\" points=\""
        for (i = 1; i <= m; i++) printf "%.1f,%.1f ", X(fg[i]), Y(fa[i])
        print "\"/>"
    }
    for (i = 1; i <= n; i++) {
        printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"black\"><title>%s: %.3f GFLOP, %.2f %%</title></circle>\n", X(g[i]), Y(a[i]), f[i] ? "#d95f02" : "#7570b3", name[i], g[i], a[i]
        printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\">%s</text>\n", X(g[i]) + 7, Y(a[i]) - 6, name[i]
    }
    print "<circle cx=\"590\" cy=\"70\" r=\"5\" fill=\"#d95f02\" stroke=\"black\"/><text x=\"600\" y=\"74\">Pareto front</text>"
    print "<circle cx=\"590\" cy=\"90\" r=\"5\" fill=\"#7570b3\" stroke=\"black\"/><text x=\"600\" y=\"94\">other</text>"
    print "</svg>"
}' "$out/front.tmp" > "$out/pareto.svg.tmp"
mv "$out/pareto.svg.tmp" "$out/pareto.svg"
rm -f "$out/front.tmp"
log "wrote $out/results.csv, $out/results.md and $out/pareto.svg"
cat "$out/results.md"
