#!/bin/sh
# scripts/attention_zoo.sh end to end on a tiny budget (2 clips a class, 24 training clips a model, batch 12,
# one thread): the 12 models of the default plan (5 kinds at the full size, dense and fib with 2 seeds and the
# other three with 1 at the quarter size) are trained, evaluated on both held-out sets with 1x1 and 3x3 views,
# run through `diversity --models` and timed.
#   1. the first invocation is interrupted inside the first training (FIBVID_TEST_SIGINT_AT=1: `fibvid train`
#      stops itself after step 1 with a checkpoint): exit 130, a checkpoint and no model;
#   2. the second continues it (`train --resume`: a "resume" record in its train.jsonl) and finishes the rest;
#      results.csv has the header, one row per model, every field non-empty and every figure a finite number
#      (accuracies within 0-100, GFLOPs, ms and clips/s positive), results.md a row per model, and
#      accuracy-vs-ms.svg is well-formed XML (xmllint; that check is skipped, saying so, without it) with one
#      point per model;
#   3. a third invocation trains, evaluates and times nothing again (models, train.jsonl and summaries keep
#      their bytes and times) and writes the same results.csv.
# usage: test_attention_zoo.sh SOURCE_DIR FIBVID_BINARY
set -eu
src=$1
bin=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
o=$tmp/zoo
zoo() { "$src/scripts/attention_zoo.sh" --out "$o" --budget-clips 24 --batch 12 --clips-per-class 2 \
            --heldout-per-class 2 --div-clips-per-class 1 --bench-iters 2 --threads 1 --fibvid "$bin" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

# 1. interrupted in the first model's training (no probe: the hook would stop the probe's one step too)
rc=0
FIBVID_TEST_SIGINT_AT=1 zoo --probe-steps 0 > "$tmp/out1" 2> "$tmp/log1" || rc=$?
[ "$rc" -eq 130 ] || { cat "$tmp/log1"; fail "interrupted invocation: exit $rc, want 130"; }
if [ ! -f "$o/runs/dense-full-s1/checkpoint.json" ] || [ -f "$o/runs/dense-full-s1/model.safetensors" ]; then
    ls -l "$o/runs/dense-full-s1"; fail "the interrupted training left no checkpoint, or a model"
fi

# 2. continued and finished
zoo --probe-steps 1 > "$tmp/out2" 2> "$tmp/log2" || { cat "$tmp/log2"; fail "second invocation: exit $?"; }
grep -q 'train dense-full-s1: continuing' "$tmp/log2" || { cat "$tmp/log2"; fail "dense-full-s1 was not resumed"; }
grep -q '"type":"resume"' "$o/runs/dense-full-s1/train.jsonl" || fail "dense-full-s1/train.jsonl has no resume record"
grep -q 'estimated time left' "$tmp/log2" || fail "no time estimate printed"
csv=$o/results.csv
head -n 1 "$csv" | grep -q '^name,kind,data,train_videos,seed,epochs,clips_seen,top1_A_1x1,top5_A_1x1,mean_class_A_1x1,' ||
    fail "results.csv header: $(head -n 1 "$csv")"
for c in top1_B_3x3 pair_MoveLeft_MoveRight head_similarity cka_l3_temporal gflop ms_per_clip train_clips_per_s train_wall_s; do
    head -n 1 "$csv" | tr ',' '\n' | grep -qx "$c" || fail "results.csv has no column $c"
done
want="dense-full-s1 fib-full-s1 sima-full-s1 castling-full-s1 psvit-full-s1 dense-quarter-s1 dense-quarter-s2
fib-quarter-s1 fib-quarter-s2 sima-quarter-s1 castling-quarter-s1 psvit-quarter-s1"
got=$(tail -n +2 "$csv" | cut -d, -f1 | tr '\n' ' ')
[ "$got" = "$(echo "$want" | tr '\n' ' ')" ] || fail "results.csv rows: $got; want $want"
awk -F, 'NR == 1 { n = NF; for (i = 1; i <= NF; i++) h[i] = $i; next }
    NF != n { print "row " NR " has " NF " fields, the header " n; bad = 1 }
    { for (i = 1; i <= NF; i++) {
          if ($i == "") { print $1 ": " h[i] " is empty"; bad = 1; continue }
          if (i <= 3) continue
          if ($i !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) { print $1 ": " h[i] " = " $i " is not a finite number"; bad = 1; continue }
          v = $i + 0
          if ((h[i] ~ /^(top1|top5|mean_class|pair)_/) && (v < 0 || v > 100)) { print $1 ": " h[i] " = " v " outside 0-100"; bad = 1 }
          if ((h[i] ~ /^(gflop|ms_per_clip|params|train_clips_per_s|epochs|clips_seen|train_videos)$/) && v <= 0) { print $1 ": " h[i] " = " v " not positive"; bad = 1 }
          if ((h[i] ~ /^(cka_|head_similarity)/) && (v < -0.01 || v > 1.01)) { print $1 ": " h[i] " = " v " outside 0-1"; bad = 1 }
      } }
    END { exit bad }' "$csv" || fail "results.csv has bad fields"
# psvit pools tokens: fewer GFLOPs than fib
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "gflop") g = i; next }
    $1 == "fib-full-s1" { f = $g } $1 == "psvit-full-s1" { p = $g }
    END { if (!(p < f)) { print "psvit " p " GFLOP, fib " f; exit 1 } }' "$csv" || fail "psvit does not cost less than fib"
rows=$(grep -c '^| [a-z]*-\(full\|quarter\)-s[0-9] |' "$o/results.md" || true)
[ "$rows" -eq 12 ] || fail "results.md has $rows model rows, want 12"
svg=$o/accuracy-vs-ms.svg
if command -v xmllint > /dev/null; then
    xmllint --noout "$svg" || fail "accuracy-vs-ms.svg is not well-formed XML"
else
    echo "SKIP (the XML check only): xmllint not installed (Debian: libxml2-utils)"
fi
points=$(grep -c '<circle class="point"' "$svg" || true)
[ "$points" -eq 12 ] || fail "accuracy-vs-ms.svg has $points points, want 12"
for m in $want; do grep -q "<title>$m: " "$svg" || fail "accuracy-vs-ms.svg has no point for $m"; done
[ -f "$o/div/side-by-side/report.html" ] || fail "no side-by-side diversity report"

# 3. nothing is redone
state() { (cd "$o" && ls -l --time-style=+%s.%N runs/*/model.safetensors runs/*/train.jsonl eval/*/*/summary.json \
    div/*/diversity.json bench/*.json | awk '{ print $5, $6, $7 }' && cksum runs/*/model.safetensors); }
state > "$tmp/state1"
cp "$csv" "$tmp/csv1"
zoo > "$tmp/out3" 2> "$tmp/log3" || { cat "$tmp/log3"; fail "third invocation: exit $?"; }
if grep -E ' (train|evaluate|diversity) ' "$tmp/log3" | grep -v 'estimated'; then fail "the third invocation redid work"; fi
state > "$tmp/state2"
cmp -s "$tmp/state1" "$tmp/state2" || { diff "$tmp/state1" "$tmp/state2"; fail "files changed on the third invocation"; }
cmp -s "$tmp/csv1" "$csv" || { diff "$tmp/csv1" "$csv"; fail "results.csv changed on the third invocation"; }
echo "12 models: interrupted, resumed and finished; results.csv ($(wc -l < "$csv") lines, $(head -n 1 "$csv" | tr ',' '\n' | wc -l) columns), results.md and accuracy-vs-ms.svg ($points points) complete; a third run redid nothing"
