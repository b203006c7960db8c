#!/usr/bin/env bash
# The five attentions side by side (issue 22): one command that trains dense, fib (Fibottention), sima (SimA),
# castling (Castling-ViT) and psvit (Fibottention + PSViT token pooling, fibvid's reconstruction) on the same
# `fibvid synth` data with the same architecture, schedule, augmentation and budget, at two data sizes, and
# measures each paper's claim the same way.
#
#   scripts/attention_zoo.sh [--out DIR] [--budget-clips N] [--threads N] [--seeds N] [--other-seeds N]
#                            [--clips-per-class N] [--heldout-per-class N] [--div-clips-per-class N]
#                            [--batch N] [--psvit OPTS] [--probe-steps N] [--bench-iters N] [--fibvid PATH]
#                            [--estimate-only]
#
# Presets (this project's 2-core machine; README "Attention kinds compared" in models/README.md):
#   ~6 hours:    scripts/attention_zoo.sh --out build/zoo                      (the defaults)
#   ~90 minutes: scripts/attention_zoo.sh --out build/zoo90 --budget-clips 12960 --heldout-per-class 20 --threads 1
#   While other work runs on the machine, use --threads 1: measured under a load of ~10, one thread trained
#   fib at 15 clips/s and two threads at 5 (the two threads wait for each other); --estimate-only prints the
#   estimate from this machine's probe and stops.
#
#  1. data: `fibvid synth -n 300 -s 8 --clean` (the default model's stage-1 data: 2592 training clips); the
#     full size trains on all of trainlist01, the quarter size on every 4th clip of each class (648); held out:
#     `fibvid synth -n 60 -s 1001 --clean` (set A) and `-s 1002` (set B), every clip of both lists, seeds
#     never used in training
#  2. models: the synth preset (hidden 192, 4 layers, 3 heads, 8 frames of 64x64, patch 16), from scratch,
#     one attention kind in both attentions; psvit is fib with `--token-pool 1:avg` (the PSViT search's best
#     configuration that pools: 55.6 vs 56.9 % top-1 at 65 % of the FLOPs; models/README.md). Every model sees
#     --budget-clips training clips (default 77760 = the recipe's stage 1: 30 epochs of 2592), so a quarter-
#     size model runs 4x the epochs of a full-size one: the same compute, a quarter of the data. Schedule of
#     the recipe's stage 1: batch 64, AdamW, lr 1e-3, warm-up 1/6 of the epochs, cosine, label smoothing,
#     flips and time reversal from synth.json; no validation during training (the held-out sets measure).
#     Seeds: dense and fib at the quarter size --seeds (default 2: seeds 1, 2); every other model --other-seeds
#     (default 1)
#  3. `fibvid evaluate` of every model on both held-out sets, --views 1x1 and 3x3
#  4. `fibvid diversity --models MODEL` on a fixed set of held-out clips (the first --div-clips-per-class
#     clips of each class of set A; default 2, 24 clips) for every model, and one side-by-side report of the
#     full-size dense, fib, sima and castling models (div/side-by-side/report.html)
#  5. `fibvid bench -m MODEL` (min of --bench-iters forwards of one 8x64x64 clip) and `fibvid info` GFLOPs
#  6. DIR/results.csv, DIR/results.md (one row per model, then the mean and spread over seeds per kind and
#     size) and DIR/accuracy-vs-ms.svg (held-out top-1 against forward ms per clip, one point per model)
#
# Before training it measures each kind's training clips/s with --probe-steps steps (default 4 steps of a
# batch, kept in DIR/probe/: delete it to measure again) and prints the estimated time of what is left to do.
# Resumable: rerun the same command. A finished model (runs/NAME/model.safetensors) is not trained again, an
# interrupted one continues from its last checkpoint (`train --resume`), finished evaluations, diversity runs
# and timings are kept (an interrupted evaluation continues with `evaluate --resume`). To stop a run in the
# background, signal its process group (`setsid` gives it one): kill -TERM -- -PGID; `fibvid train` then
# writes a checkpoint of its step. Exit codes: 0 done, 1 usage error, 3 a fibvid command failed (its log
# is named), 130/143 stopped by SIGINT/SIGTERM.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd) # --out and --fibvid are relative to the caller's directory
out=$repo/build/zoo budget=77760 threads=$(nproc) seeds=2 oseeds=1 cpc=300 hcpc=60 dcpc=2 batch=64
psvit="--token-pool 1:avg" probe=4 biters=30 bin=$repo/build/fibvid estimate_only=0
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --budget-clips) budget=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --other-seeds) oseeds=$2; shift 2 ;;
    --clips-per-class) cpc=$2; shift 2 ;;
    --heldout-per-class) hcpc=$2; shift 2 ;;
    --div-clips-per-class) dcpc=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --psvit) psvit=$2; shift 2 ;;
    --probe-steps) probe=$2; shift 2 ;;
    --bench-iters) biters=$2; shift 2 ;;
    --fibvid) bin=$2; shift 2 ;;
    --estimate-only) estimate_only=1; shift ;;
    -h|--help) sed -n '2,48p' "$0"; exit 0 ;;
    *) echo "attention_zoo.sh: unknown option $1 (see --help)" >&2; exit 1 ;;
    esac
done
for v in budget threads seeds oseeds cpc hcpc dcpc batch biters; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "attention_zoo.sh: ${v} must be a positive integer, not '${!v}'" >&2; exit 1; }
done
[[ $probe =~ ^[0-9]+$ ]] || { echo "attention_zoo.sh: --probe-steps must be an integer >= 0" >&2; exit 1; }
case "$bin" in /*) ;; *) bin=$PWD/$bin ;; esac
[ -x "$bin" ] || { echo "attention_zoo.sh: $bin is not an executable fibvid (build it, or --fibvid PATH)" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$out"
trap 'log "stopped by SIGINT: rerun the same command to continue"; exit 130' INT
trap 'log "stopped by SIGTERM: rerun the same command to continue"; exit 143' TERM
t_start=$(date +%s)
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "$1"; exit 3; }
# the first number after "KEY": in a file of fibvid's JSON (indented, or one record a line)
jnum() { sed -n "s/.*\"$1\": *\([-0-9.eE+]*\).*/\1/p" "$2" | head -n 1; }
# labelled SPLIT_DIR LIST...: `Class/v_....avi <1-based label>` lines
labelled() {
    local dir=$1
    shift
    awk 'NR==FNR { gsub("\r", ""); id[$2] = $1; next } { gsub("\r", ""); split($1, a, "/"); print $1 " " id[a[1]] }' \
        "$dir/classInd.txt" "$@"
}
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
isa=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|amx_tile)$' | tr '\n' ' ' || true)
log "attention zoo in $out: budget $budget clips a model, $threads threads; CPU ${cpu:-?} (${isa:-no AVX2/AVX-512})"
printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >> invocations.txt

# 1. data (an interrupted synth is redone: --force)
synth() { # dir seed clips-per-class
    if [ ! -f "$1/synth.json" ]; then
        log "data: fibvid synth -n $3 -s $2 --clean -> $1"
        "$bin" synth -o "$1" -n "$3" -s "$2" --clean -q -t "$threads" --force || fail "fibvid synth failed ($1)"
    fi
}
synth data 8 "$cpc"
synth heldoutA 1001 "$hcpc"
synth heldoutB 1002 "$hcpc"
cut -d' ' -f2 data/classInd.txt | tr -d '\r' > classes.txt
tr -d '\r' < data/trainlist01.txt | sed 's|^|data/|' > train-full.txt
# every 4th clip of each class (the first of each 4), at least one a class
awk '{ split($1, a, "/"); c = a[2]; if (n[c]++ % 4 == 0) print }' train-full.txt > train-quarter.txt
for h in heldoutA heldoutB; do labelled "$h" "$h/trainlist01.txt" "$h/testlist01.txt" > "$h/all.txt"; done
# the diversity clips: the first --div-clips-per-class of each class of set A
awk -v k="$dcpc" '{ split($1, a, "/"); if (n[a[1]]++ < k) print "heldoutA/" $1 }' heldoutA/all.txt > div-clips.txt
ntrain_full=$(wc -l < train-full.txt) ntrain_quarter=$(wc -l < train-quarter.txt)
# the mirrored class pairs: synth.json's reverse_pairs and flip_pairs, each pair once, as A:B
pairs=$(awk '/"(flip|reverse)_pairs": \[/ { on = 1; n = 0; next }
    on && /^  \]/ { on = 0; next }
    on && /"/ { gsub(/[ ",]/, ""); p[++n % 2] = $0; if (n % 2 == 0) { k = p[1] ":" p[0]; if (!(k in seen)) { seen[k] = 1; print k } } }' \
    data/synth.json)

# 2. the models: NAME KIND SIZE SEED
kind_opts() {
    case "$1" in
    dense|fib|sima|castling) echo "--spatial-attn $1 --temporal-attn $1" ;;
    psvit) echo "--spatial-attn fib --temporal-attn fib $psvit" ;;
    esac
}
kinds=(dense fib sima castling psvit)
models=()
for k in "${kinds[@]}"; do
    for ((s = 1; s <= oseeds; s++)); do models+=("$k-full-s$s $k full $s"); done
done
for k in "${kinds[@]}"; do
    n=$oseeds
    case "$k" in dense|fib) [ "$seeds" -gt "$n" ] && n=$seeds ;; esac
    for ((s = 1; s <= n; s++)); do models+=("$k-quarter-s$s $k quarter $s"); done
done
epochs_for() { # size -> epochs: budget / training clips, rounded, at least 1
    local n=$ntrain_full
    [ "$1" = quarter ] && n=$ntrain_quarter
    echo $(( (budget + n / 2) / n > 0 ? (budget + n / 2) / n : 1 ))
}
common() { # the training options every model shares
    echo "--label-base 1 --classes $out/classes.txt --root $out --synth-json $out/data/synth.json --config synth"
    echo "-b $batch --lr 1e-3 -t $threads -q"
}

# the probe: a few steps of each kind, for the training clips/s behind the estimate
declare -A rate
for k in "${kinds[@]}"; do
    p=probe/$k
    if [ "$probe" -gt 0 ] && [ ! -f "$p/model.safetensors" ]; then
        rm -rf "$p"
        mkdir -p "$p"
        head -n $((probe * batch)) train-full.txt > "$p/list.txt"
        # shellcheck disable=SC2046
        "$bin" train --list "$p/list.txt" -o "$p" $(common) $(kind_opts "$k") --epochs 1 --warmup 0 --seed 1 \
            > "$p.log" 2>&1 || fail "probe $k failed: see $out/$p.log"
    fi
    r=$(jnum clips_per_s "$p/train.jsonl" 2>/dev/null || true)
    rate[$k]=${r:-0}
done
line=""
for k in "${kinds[@]}"; do line+=" $k ${rate[$k]}"; done
log "training clips/s measured ($probe steps of $batch, $threads threads):$line"

# the estimate of what is left: training clips / the kind's rate, plus evaluation (4 runs: 1 + 9 views a
# held-out clip, ~67 ms a held-out clip for both on 2 cores), diversity and timings (~10 s)
estimate() {
    local name kind size seed total=0 left nh
    nh=$(($(wc -l < heldoutA/all.txt) + $(wc -l < heldoutB/all.txt)))
    for m in "${models[@]}"; do
        read -r name kind size seed <<< "$m"
        local ep n done_clips=0
        ep=$(epochs_for "$size")
        n=$ntrain_full
        [ "$size" = quarter ] && n=$ntrain_quarter
        if [ -f "runs/$name/model.safetensors" ]; then
            done_clips=$((ep * n))
        elif [ -f "runs/$name/checkpoint.json" ]; then
            done_clips=$(($(jnum step "runs/$name/checkpoint.json") * batch))
        fi
        left=$((ep * n - done_clips))
        [ "$left" -lt 0 ] && left=0
        total=$(awk -v t="$total" -v c="$left" -v r="${rate[$kind]}" 'BEGIN { printf "%d", t + (r > 0 ? c / r : 0) }')
        # decoding the training clips (~6 ms a clip), loading and saving: ~15 s
        [ -f "runs/$name/model.safetensors" ] || total=$((total + n * 6 / 1000 + 15))
        [ -f "bench/$name.info.json" ] || total=$((total + nh * 67 / 1000 + 10))
    done
    echo "$total"
}
est=$(estimate)
missing=0
for k in "${kinds[@]}"; do [ "${rate[$k]}" = 0 ] && missing=1; done
log "$(printf '%d models (%d full, %d quarter: %d and %d training clips, %d and %d epochs); estimated time left: %dh%02dm' \
    "${#models[@]}" "$(printf '%s\n' "${models[@]}" | grep -c ' full ')" "$(printf '%s\n' "${models[@]}" | grep -c ' quarter ')" \
    "$ntrain_full" "$ntrain_quarter" "$(epochs_for full)" "$(epochs_for quarter)" $((est / 3600)) $((est % 3600 / 60)))$(
    [ "$missing" = 1 ] && echo ' (training not counted: no probe of some kind, --probe-steps 0)')"
[ "$estimate_only" = 1 ] && exit 0

train_model() { # name kind size seed
    local name=$1 kind=$2 size=$3 seed=$4 run=runs/$1 ep
    ep=$(epochs_for "$size")
    if [ -f "$run/model.safetensors" ]; then
        local had
        had=$(jnum epochs "$run/checkpoint.json")
        [ "$had" = "$ep" ] || log "$name: kept as trained ($had epochs; this budget asks for $ep: use another --out to retrain)"
        return 0
    fi
    mkdir -p runs
    local rc=0
    if [ -f "$run/run.json" ]; then
        log "train $name: continuing (train --resume)"
        "$bin" train --resume -o "$run" -t "$threads" -q >> "$run.log" 2>&1 || rc=$?
    else
        log "train $name ($kind, $size data, seed $seed, $ep epochs)"
        # shellcheck disable=SC2046
        "$bin" train --list "train-$size.txt" -o "$run" $(common) $(kind_opts "$kind") --epochs "$ep" \
            --warmup "$(awk -v e="$ep" 'BEGIN { printf "%g", e / 6 }')" --seed "$seed" > "$run.log" 2>&1 || rc=$?
    fi
    case $rc in
    0) ;;
    130|143) log "train $name stopped by a signal after its checkpoint: rerun the same command to continue"; exit "$rc" ;;
    *) fail "train $name failed (exit $rc): see $out/$run.log" ;;
    esac
}
evaluate_model() { # name
    local name=$1 h v e
    for h in A B; do
        for v in 1x1 3x3; do
            e=eval/$1/$h-$v
            grep -q '"complete": true' "$e/summary.json" 2>/dev/null && continue
            mkdir -p "eval/$1"
            log "evaluate $name on set $h, $v views"
            if [ -f "$e/run.json" ] && [ -s "$e/predictions.jsonl" ]; then
                "$bin" evaluate --resume -o "$e" -t "$threads" -q > "$e.log" 2>&1 || fail "evaluate $name $h $v failed: see $out/$e.log"
            else
                rm -rf "$e"
                "$bin" evaluate -m "runs/$name/model.safetensors" --root "heldout$h" --list "heldout$h/all.txt" \
                    --label-base 1 --classes classes.txt --views "$v" -t "$threads" -o "$e" -q > "$e.log" 2>&1 ||
                    fail "evaluate $name $h $v failed: see $out/$e.log"
            fi
        done
    done
}
diversity_model() { # name
    local d=div/$1
    [ -f "$d/diversity.json" ] && return 0
    mkdir -p div
    log "diversity $1 ($(wc -l < div-clips.txt) clips)"
    # shellcheck disable=SC2046
    "$bin" diversity --models "runs/$1/model.safetensors" -o "$d" --force -t "$threads" -q $(cat div-clips.txt) \
        > "$d.log" 2>&1 || fail "diversity $1 failed: see $out/$d.log"
}
bench_model() { # name
    mkdir -p bench
    [ -f "bench/$1.json" ] || { "$bin" bench -m "runs/$1/model.safetensors" --iters "$biters" -t "$threads" -f json \
        > "bench/$1.tmp" && mv "bench/$1.tmp" "bench/$1.json"; } || fail "bench $1 failed"
    [ -f "bench/$1.info.json" ] || { "$bin" info -m "runs/$1/model.safetensors" -f json > "bench/$1.info.tmp" &&
        mv "bench/$1.info.tmp" "bench/$1.info.json"; } || fail "info $1 failed"
}

for m in "${models[@]}"; do
    # shellcheck disable=SC2086
    set -- $m
    train_model "$@"
    evaluate_model "$1"
    diversity_model "$1"
    bench_model "$1"
done
side=(dense-full-s1 fib-full-s1 sima-full-s1 castling-full-s1)
if [ ! -f div/side-by-side/diversity.json ]; then
    log "diversity: side by side, ${side[*]}"
    # shellcheck disable=SC2046
    "$bin" diversity --models "$(printf 'runs/%s/model.safetensors,' "${side[@]}" | sed 's/,$//')" -o div/side-by-side \
        --force -t "$threads" -q $(cat div-clips.txt) > div/side-by-side.log 2>&1 || fail "diversity side by side failed: see $out/div/side-by-side.log"
fi

# results.md from results.csv: one row per model, then mean and spread over seeds per kind and data size
report_md() {
    echo "Attention zoo: \`fibvid synth\` data, the synth preset, $budget training clips a model; CPU ${cpu:-?}, $threads threads."
    echo "Held out: set A (seed 1001) and set B (seed 1002), $(wc -l < heldoutA/all.txt) clips each; top-1 in %; pairs: top-1 over"
    echo "the clips of a mirrored pair's two classes, both sets, 1x1; head sim.: mean cross-head CKA (lower = more"
    echo "diverse heads) over $(wc -l < div-clips.txt) clips of set A; CKA per layer: spatial/temporal; ms: one 8x64x64 clip's forward."
    echo
    awk -F, -v L="$layers" '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; np = 0
        for (i = 1; i <= NF; i++) if ($i ~ /^pair_/) { pc[++np] = i; nm = substr($i, 6); gsub("_", "/", nm); pn[np] = nm }
        h = "| model | kind | data | seed | top-1 A 1x1 | B 1x1 | A 3x3 | B 3x3 | top-5 A 1x1 | mean class A 1x1 | pairs ("
        for (i = 1; i <= np; i++) h = h (i > 1 ? ", " : "") pn[i]
        h = h ") | head sim. | CKA per layer | GFLOP | ms/clip | train clips/s | train wall s |"
        print h; print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        next }
    { p = ""; for (i = 1; i <= np; i++) p = p (i > 1 ? " / " : "") sprintf("%.1f", $pc[i])
      k = ""; for (l = 0; l < L; l++) k = k (l ? " · " : "") sprintf("%.2f/%.2f", $c["cka_l" l "_spatial"], $c["cka_l" l "_temporal"])
      printf "| %s | %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %.3f | %s | %.3f | %.2f | %.1f | %.0f |\n",
        $1, $2, $3, $5, $c["top1_A_1x1"], $c["top1_B_1x1"], $c["top1_A_3x3"], $c["top1_B_3x3"], $c["top5_A_1x1"],
        $c["mean_class_A_1x1"], p, $c["head_similarity"], k, $c["gflop"], $c["ms_per_clip"], $c["train_clips_per_s"],
        $c["train_wall_s"] }' results.csv
    echo
    echo "Per kind and data size (top-1: mean of sets A and B; over seeds: mean, and min-max where there are several):"
    echo
    echo "| kind | data | seeds | top-1 1x1 | top-1 3x3 | head sim. | GFLOP | ms/clip |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    { g = $2 "," $3; if (!(g in n)) order[++ng] = g; n[g]++
      a = ($c["top1_A_1x1"] + $c["top1_B_1x1"]) / 2; b = ($c["top1_A_3x3"] + $c["top1_B_3x3"]) / 2
      s1[g] += a; s3[g] += b; hs[g] += $c["head_similarity"]; gf[g] = $c["gflop"]; ms[g] += $c["ms_per_clip"]
      if (n[g] == 1 || a < lo1[g]) lo1[g] = a; if (n[g] == 1 || a > hi1[g]) hi1[g] = a
      if (n[g] == 1 || b < lo3[g]) lo3[g] = b; if (n[g] == 1 || b > hi3[g]) hi3[g] = b }
    function f(s, lo, hi, k) { return k > 1 ? sprintf("%.1f (%.1f-%.1f)", s / k, lo, hi) : sprintf("%.1f", s) }
    END { for (i = 1; i <= ng; i++) { g = order[i]; split(g, p, ",")
        printf "| %s | %s | %d | %s | %s | %.3f | %.3f | %.2f |\n", p[1], p[2], n[g], f(s1[g], lo1[g], hi1[g], n[g]),
            f(s3[g], lo3[g], hi3[g], n[g]), hs[g] / n[g], gf[g], ms[g] / n[g] } }' results.csv
}
# accuracy-vs-ms.svg: held-out top-1 (1x1, mean of sets A and B) against forward ms per clip, one point a model
plot_svg() {
    awk -F, -v budget="$budget" '
    function X(v) { return 70 + (v - xmin) / (xmax - xmin) * 460 }
    function Y(v) { return 330 - (v - ymin) / (ymax - ymin) * 270 }
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    { n++; name[n] = $1; kind[n] = $2; size[n] = $3; x[n] = $c["ms_per_clip"] + 0
      y[n] = ($c["top1_A_1x1"] + $c["top1_B_1x1"]) / 2
      if (n == 1 || x[n] < xmin) xmin = x[n]; if (n == 1 || x[n] > xmax) xmax = x[n]
      if (n == 1 || y[n] < ymin) ymin = y[n]; if (n == 1 || y[n] > ymax) ymax = y[n] }
    END {
        pad = (xmax - xmin) * 0.08 + 0.05; xmin -= pad; xmax += pad; if (xmin < 0) xmin = 0
        pad = (ymax - ymin) * 0.1 + 0.5; ymin -= pad; ymax += pad
        col["dense"] = "#1b9e77"; col["fib"] = "#d95f02"; col["sima"] = "#7570b3"; col["castling"] = "#e7298a"; col["psvit"] = "#66a61e"
        print "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"400\" font-family=\"sans-serif\" font-size=\"11\">"
        print "<rect width=\"720\" height=\"400\" fill=\"white\"/>"
        print "<text x=\"300\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Attention kinds compared on fibvid synth data</text>"
        printf "<text x=\"300\" y=\"38\" text-anchor=\"middle\" font-size=\"12\">held-out top-1 (1x1, mean of two sets) against forward ms per clip; %s training clips a model</text>\n", budget
        print "<line x1=\"70\" y1=\"330\" x2=\"530\" y2=\"330\" stroke=\"black\"/><line x1=\"70\" y1=\"50\" x2=\"70\" y2=\"330\" stroke=\"black\"/>"
        for (t = 0; t <= 4; t++) {
            xv = xmin + (xmax - xmin) * t / 4; yv = ymin + (ymax - ymin) * t / 4
            printf "<text x=\"%.1f\" y=\"346\" text-anchor=\"middle\">%.2f</text>\n", X(xv), xv
            printf "<text x=\"64\" y=\"%.1f\" text-anchor=\"end\">%.1f</text><line x1=\"70\" x2=\"530\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", Y(yv) + 4, yv, Y(yv), Y(yv)
        }
        print "<text x=\"300\" y=\"366\" text-anchor=\"middle\">forward ms per clip (8 x 64 x 64, fibvid bench -m)</text>"
        print "<text x=\"18\" y=\"190\" text-anchor=\"middle\" transform=\"rotate(-90 18 190)\">held-out top-1 (%)</text>"
        for (i = 1; i <= n; i++)
            printf "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"%s\" stroke-width=\"2\"><title>%s: %.2f ms, %.2f %%</title></circle>\n",
                X(x[i]), Y(y[i]), size[i] == "full" ? col[kind[i]] : "white", col[kind[i]], name[i], x[i], y[i]
        split("dense fib sima castling psvit", ks, " ")
        for (i = 1; i <= 5; i++)
            printf "<circle cx=\"560\" cy=\"%d\" r=\"5\" fill=\"%s\"/><text x=\"572\" y=\"%d\">%s</text>\n", 60 + 18 * i, col[ks[i]], 64 + 18 * i, ks[i]
        print "<circle cx=\"560\" cy=\"186\" r=\"5\" fill=\"#888\" stroke=\"#888\" stroke-width=\"2\"/><text x=\"572\" y=\"190\">all training data</text>"
        print "<circle cx=\"560\" cy=\"204\" r=\"5\" fill=\"white\" stroke=\"#888\" stroke-width=\"2\"/><text x=\"572\" y=\"208\">a quarter of it</text>"
        print "</svg>"
    }' results.csv
}

# 6. the table: one row per model
layers=$(jnum num_hidden_layers "bench/${models[0]%% *}.info.json")
hdr="name,kind,data,train_videos,seed,epochs,clips_seen"
for h in A B; do for v in 1x1 3x3; do hdr+=",top1_${h}_$v,top5_${h}_$v,mean_class_${h}_$v"; done; done
for p in $pairs; do hdr+=",pair_${p/:/_}"; done
hdr+=",head_similarity"
for ((l = 0; l < layers; l++)); do hdr+=",cka_l${l}_spatial,cka_l${l}_temporal"; done
hdr+=",gflop,ms_per_clip,params,train_clips_per_s,train_wall_s"
echo "$hdr" > results.csv.tmp
for m in "${models[@]}"; do
    read -r name kind size seed <<< "$m"
    run=runs/$name
    n=$(jnum train_clips "$run/train.jsonl")
    ep=$(jnum epochs "$run/checkpoint.json")
    row="$name,$kind,$size,$n,$seed,$ep,$((n * ep))"
    for h in A B; do
        for v in 1x1 3x3; do
            s=eval/$name/$h-$v/summary.json
            row+=",$(jnum top1_acc "$s"),$(jnum top5_acc "$s"),$(jnum mean_class_acc "$s")"
        done
    done
    # a pair's accuracy: top-1 over the clips of its two classes, both held-out sets, single view
    for p in $pairs; do
        row+=,$(awk -F, -v a="${p%:*}" -v b="${p#*:}" 'FNR > 1 && ($2 == a || $2 == b) { n += $4; c += $5 }
            END { printf "%.2f", n ? 100 * c / n : -1 }' "eval/$name/A-1x1/per_class.csv" "eval/$name/B-1x1/per_class.csv")
    done
    d=div/$name/diversity.json
    row+=,$(sed -n '/"head_similarity": {/,/}/ s/.*"mean": *\([-0-9.eE+]*\).*/\1/p' "$d" | head -n 1)
    row+=$(awk -v L="$layers" '/^ "compare": \[/ { on = 1; next } on && /^ \]/ { on = 0 }
        on && /"layer":/ { gsub(/[^0-9]/, ""); l = $0 }
        on && /"(spatial|temporal)_cka":/ { v = $0; sub(/.*: */, "", v); sub(/,.*/, "", v); if ($0 ~ /spatial/) s[l] = v; else t[l] = v }
        END { for (i = 0; i < L; i++) printf ",%s,%s", s[i], t[i] }' "$d")
    b=bench/$name.json
    row+=",$(jnum gflop_per_view "bench/$name.info.json"),$(jnum min_ms "$b"),$(jnum num_params "bench/$name.info.json")"
    # training clips/s: clips over the summed train_s of the epochs; wall: train.jsonl's last elapsed_s
    row+=$(awk '/"type":"epoch"/ { match($0, /"clips_per_s":[-0-9.eE+]*/); r = substr($0, RSTART + 14, RLENGTH - 14)
            match($0, /"train_s":[-0-9.eE+]*/); t = substr($0, RSTART + 10, RLENGTH - 10); c += r * t; s += t }
        /"elapsed_s":/ { match($0, /"elapsed_s":[-0-9.eE+]*/); w = substr($0, RSTART + 12, RLENGTH - 12) }
        END { printf ",%.1f,%.0f", (s > 0 ? c / s : 0), w }' "$run/train.jsonl")
    echo "$row" >> results.csv.tmp
done
mv results.csv.tmp results.csv
report_md > results.md.tmp && mv results.md.tmp results.md
plot_svg > accuracy-vs-ms.svg.tmp && mv accuracy-vs-ms.svg.tmp accuracy-vs-ms.svg
t_end=$(date +%s)
echo "$((t_end - t_start))" >> wall.txt
log "this invocation: $((t_end - t_start)) s; all invocations: $(awk '{ s += $1 } END { print s }' wall.txt) s"
log "wrote $out/results.csv, results.md, accuracy-vs-ms.svg and div/side-by-side/report.html"
cat results.md
