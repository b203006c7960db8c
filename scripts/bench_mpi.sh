#!/bin/bash
# Data-parallel training on one machine: clips/s of the synth model with 1 process x T threads and with T MPI
# ranks x 1 thread (the same global batch), the gradient sum's bytes and measured time per step (train.jsonl
# "comm_ms"), and a projection of a ring allreduce of those bytes to 8 and 64 nodes on a 25 Gb/s network.
# usage: [REPS=3] scripts/bench_mpi.sh [BUILD_DIR] [EPOCHS] [BATCH]     (README "Scaling out: the communication model")
set -euo pipefail
build=${1:-build}
epochs=${2:-6}
batch=${3:-16}
fibvid=$(cd "$build" && pwd)/fibvid
cores=$(nproc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$fibvid" synth -o "$tmp/synth" -n 8 --size 64x48 --seconds 1:1.2 -s 5 -q -t "$cores"
args="--ucf101 $tmp/synth --config synth --epochs $epochs -b $batch --no-val --log-every 1 -q"
# mean clips/s of the epochs after the first (warm-up), mean comm_ms and the model's size, from a train.jsonl
summary() {
    awk -F'[,:}]' '
        /"type":"start"/ { for (i = 1; i < NF; i++) if ($i == "\"num_params\"") np = $(i + 1) }
        /"type":"epoch"/ { e++; for (i = 1; i < NF; i++) if ($i == "\"clips_per_s\"" && e > 1) { c += $(i + 1); n++ } }
        /"type":"step"/ { ep = 0; for (i = 1; i < NF; i++) if ($i == "\"epoch\"") ep = $(i + 1)
                          for (i = 1; i < NF && ep > 1; i++) if ($i == "\"comm_ms\"") { cm += $(i + 1); k++ }
                          for (i = 1; i < NF && ep > 1; i++) if ($i == "\"step_ms\"") { sm += $(i + 1); s++ } }
        END { printf "%d %.2f %.3f %.1f\n", np, n ? c / n : 0, k ? cm / k : 0, s ? sm / s : 0 }' "$1"
}
# the two set-ups alternate REPS times (default 3); the best run of each counts (a shared machine is noisy)
one=0 ranks=0
for rep in $(seq "${REPS:-3}"); do
    rm -rf "$tmp/one" "$tmp/ranks"
    "$fibvid" train $args -t "$cores" -o "$tmp/one"
    read -r np c _ s < <(summary "$tmp/one/train.jsonl")
    echo "run $rep: 1 process x $cores threads: $c clips/s"
    if awk -v a="$c" -v b="$one" 'BEGIN { exit !(a > b) }'; then one=$c one_step=$s; fi
    mpirun --oversubscribe --bind-to none -np "$cores" "$fibvid" train $args -t 1 -o "$tmp/ranks"
    read -r _ c cm s < <(summary "$tmp/ranks/train.jsonl")
    echo "run $rep: $cores ranks x 1 thread: $c clips/s, gradient sum $cm ms"
    if awk -v a="$c" -v b="$ranks" 'BEGIN { exit !(a > b) }'; then ranks=$c comm=$cm rank_step=$s; fi
done
bytes=$((np * 4))
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $cores cores; synth model: $np parameters; global batch $batch"
echo "1 process x $cores threads: $one clips/s (step $one_step ms)"
echo "$cores ranks x 1 thread:    $ranks clips/s (step $rank_step ms)"
echo "gradient sum per step: $bytes bytes (fp32), measured $comm ms over shared memory ($cores ranks, one node;" \
     "$(awk -v c="$comm" -v s="$rank_step" 'BEGIN { printf "%.1f", 100 * c / s }') % of the step)"
# ring allreduce: each node sends and receives 2 (N-1)/N of the bytes, in 2 (N-1) messages (latency 5 us each)
awk -v B="$bytes" -v one="$one" -v cores="$cores" 'BEGIN {
    bw = 25e9 / 8; lat = 5e-6; tclip = 1000 / one   # ms per clip of one node like this one
    for (k = 0; k < 2; k++) {
        N = k ? 64 : 8
        t = (2 * (N - 1) / N * B / bw + 2 * (N - 1) * lat) * 1000
        be = t / tclip; b10 = 10 * t / tclip
        printf "%2d nodes at 25 Gb/s: allreduce %.2f ms/step; compute %.1f ms/clip/node hides it from %d clips per node " \
               "(global batch %d); below 10%% overhead without overlap from %d per node (global %d)\n",
               N, t, tclip, int(be) + 1, N * (int(be) + 1), int(b10) + 1, N * (int(b10) + 1)
    }
}'
