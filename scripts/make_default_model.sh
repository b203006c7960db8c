#!/usr/bin/env bash
# The recipe for the bundled default model (models/fibvid-default.safetensors): training data, the
# Fibottention model and its dense-attention baseline trained side by side, their held-out evaluation and
# the sample clips. Needs a built ./build/fibvid; about 50 minutes on 2 cores.
#
#   bash scripts/make_default_model.sh [--install] [WORK_DIR]   (default WORK_DIR: ./build/default-model)
#
# Steps (all seeded, so a rerun on the same machine type gives the same data and, with -t 1, the same
# weights):
#   1. training data: fibvid synth seed 7 (the full procedural set: textured moving backgrounds,
#      distractors, camera jitter, noise) and seed 8 with --clean (plain background, no distractors), 300
#      clips per class each. Training uses the train lists of both (5184 clips): the clean clips are a
#      curriculum that lets the motion features form, which the full set alone did not (see STATUS). Validation: the full set's test list (1008 clips).
#   2. two trainings side by side, one thread each, same data and budget (18 epochs, batch 8):
#      Fibottention in spatial and temporal heads (the default model), and dense attention (the baseline)
#   3. held-out test data: fibvid synth, seed 1001 (never used in training, full procedural set), 60 clips
#      per class; both models evaluated on all 720 clips with `fibvid evaluate`
#   4. with --install: the fib model becomes models/fibvid-default.safetensors, and sample clips for the
#      README's quick start (fibvid synth, seed 2024) go to models/samples/
#
# STATUS (2026-11-28, 2 cores): this recipe does not yet give a model worth shipping (target: >= 90 %
# top-1 held out), so nothing is copied into models/ unless --install is given. Measured with exactly
# these settings, 18 epochs each (93,312 training clips seen), the two runs interrupted and resumed:
#                   val top-1 (1008)   held-out top-1 / top-5 / mean class (720 clips, seed 1001)
#   fib  (default)      18.1 %             18.6 % / 70.4 % / 18.6 %
#   dense (baseline)    15.0 %             13.2 % / 63.2 % / 13.2 %          (chance: 8.3 %)
# The full set alone (no clean curriculum) stayed at chance (loss ln 12) for 5 epochs, fib and dense alike.
# Throughput ~70-80 clips/s on 2 threads (an epoch of the mix ~75 s) since denormals are flushed; once the
# model started learning they had cost 1.65x (same checkpoint, one core each: 290 -> 175 ms per step).
# Next: many more epochs, a finer spatial grid (96x96 / patch 16 or 64x64 / patch 8), lower lr.
set -euo pipefail
cd "$(dirname "$0")/.."
FIBVID=$PWD/build/fibvid
install=0
if [ "${1:-}" = --install ]; then
    install=1
    shift
fi
W=${1:-build/default-model}
mkdir -p "$W"
W=$(cd "$W" && pwd)

[ -d "$W/data" ] || $FIBVID synth -o "$W/data" -n 300 -s 7 -q
[ -d "$W/clean" ] || $FIBVID synth -o "$W/clean" -n 300 -s 8 --clean -q
# `path label` lists relative to $W, labels 1-based as in classInd.txt
cut -d' ' -f2 "$W/data/classInd.txt" | tr -d '\r' > "$W/classes.txt"
for d in data clean; do tr -d '\r' < "$W/$d/trainlist01.txt" | sed "s|^|$d/|"; done > "$W/mix_train.txt"
awk 'NR==FNR { gsub("\r", ""); id[$2] = $1; next } { gsub("\r", ""); split($1, a, "/"); print "data/" $1 " " id[a[1]] }' \
    "$W/data/classInd.txt" "$W/data/testlist01.txt" > "$W/val.txt"

train() { # name, attention options...
    local n=$1
    shift
    local t0
    t0=$(date +%s)
    $FIBVID train --list "$W/mix_train.txt" --val-list "$W/val.txt" --label-base 1 --classes "$W/classes.txt" \
        --root "$W" --synth-json "$W/data/synth.json" -o "$W/$n" --epochs 18 --batch 8 --warmup 1 --seed 1 \
        -t 1 -q "$@" > "$W/$n.log" 2>&1
    echo "wall_s $(($(date +%s) - t0))" >> "$W/$n.log"
}
train fib &
train dense --spatial-attn dense --temporal-attn dense &
wait

[ -d "$W/heldout" ] || $FIBVID synth -o "$W/heldout" -n 60 -s 1001 -q
# every held-out clip (both lists of the synth split): `Class/v_....avi <1-based label>`
awk 'NR==FNR { gsub("\r", ""); id[$2] = $1; next } { gsub("\r", ""); split($1, a, "/"); print $1 " " id[a[1]] }' \
    "$W/heldout/classInd.txt" "$W/heldout/trainlist01.txt" "$W/heldout/testlist01.txt" > "$W/heldout/all.txt"
for n in fib dense; do
    rm -rf "$W/eval-$n"
    $FIBVID evaluate -m "$W/$n/model.safetensors" --root "$W/heldout" --list "$W/heldout/all.txt" \
        --label-base 1 --classes "$W/classes.txt" -o "$W/eval-$n" > /dev/null
done

if [ "$install" = 1 ]; then
    cp "$W/fib/model.safetensors" models/fibvid-default.safetensors
    [ -d "$W/samples" ] || $FIBVID synth -o "$W/samples" -n 2 -s 2024 -q
    mkdir -p models/samples
    for c in MoveLeft RotateClockwise Approach; do
        cp "$W/samples/$c/v_${c}_g01_c01.avi" models/samples/
    done
fi

for n in fib dense; do
    printf '%-6s ' "$n"
    /usr/bin/python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("top-1 %.2f%%  top-5 %.2f%%  mean class %.2f%%  (%d clips)" % (s["top1_acc"], s["top5_acc"], s["mean_class_acc"], s["num_evaluated"]))' "$W/eval-$n/summary.json"
    tail -n 1 "$W/$n.log"
done
