#!/bin/bash
# A real single-node Slurm, started and stopped here: writes a slurm.conf for this host into a temporary
# directory (own ports, state and spool directories, own munge key and socket), starts munged, slurmctld and
# slurmd, then
#   1. submits scripts/slurm/evaluate_array.sbatch as a 2-task array and scripts/slurm/merge.sbatch after it
#      (--dependency=afterok) on a small `fibvid synth` data set, and checks that the merged results equal a
#      one-process `fibvid evaluate` (per_class.csv and confusion.csv byte for byte, the same metrics);
#   2. runs a 2-task `srun --mpi=pmix fibvid train` job and checks that its weights equal a one-process run's
#      within 1e-5 relative (scripts/slurm/train.sbatch);
# waits with a timeout for each, prints the jobs' logs, and stops every daemon it started (trap on exit).
# Installs nothing: needs Debian's slurm-wlm and munge (and openmpi-bin for step 2); .ci/run installs them.
# Exit 0 (passed), 1 (failed), 77 (skipped, with the reason printed: Slurm missing or not startable here).
# usage: tests/slurm_single_node.sh BUILD_DIR [SOURCE_DIR]   (BUILD_DIR holds fibvid and tests/st_reldiff)
set -uo pipefail

build=$(cd "${1:?usage: slurm_single_node.sh BUILD_DIR [SOURCE_DIR]}" && pwd)
src=$(cd "${2:-$(dirname "$0")/..}" && pwd)
fibvid=$build/fibvid
reldiff=$build/tests/st_reldiff
say() { echo "slurm_single_node: $*"; }
skip() { say "SKIPPED: $*"; exit 77; }
fail() { say "FAILED: $*"; exit 1; }

for p in slurmctld slurmd munged sbatch srun squeue scontrol; do
    command -v "$p" >/dev/null 2>&1 || skip "$p is not installed (Debian: slurm-wlm munge)"
done
[ "$(id -u)" = 0 ] || skip "slurmd must run as root to start jobs as their user"
[ -x "$fibvid" ] && [ -x "$reldiff" ] || fail "$fibvid or $reldiff: not built"

tmp=$(mktemp -d /tmp/fibvid-slurm-XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() { # a random port nothing listens on
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
    done
}

# munge: own key, socket, pid, log and seed files
mkdir -m 711 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
sock=$tmp/munge/munge.socket
munged -F -f --socket="$sock" --key-file="$tmp/munge/munge.key" --pid-file="$tmp/munge/munged.pid" \
    --log-file="$tmp/munge/munged.log" --seed-file="$tmp/munge/munged.seed" >"$tmp/munge/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { cat "$tmp/munge/munged.log" 2>/dev/null; skip "munged did not start"; }

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { print int($2 / 1024 / 2) }' /proc/meminfo)
ctld_port=$(free_port)
d_port=$(free_port)
while [ "$d_port" = "$ctld_port" ]; do d_port=$(free_port); done
mkdir -p "$tmp/state" "$tmp/spool" "$tmp/logs" "$tmp/work"
cat >"$tmp/slurm.conf" <<EOF
ClusterName=fibvidtest
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool/%n
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/logs/slurmctld.log
SlurmdLogFile=$tmp/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -D -f "$SLURM_CONF" >"$tmp/logs/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$host" >"$tmp/logs/slurmd.out" 2>&1 &
pids+=($!)
up=0
for _ in $(seq 100); do
    if sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then up=1; break; fi
    sleep 0.2
done
if [ $up = 0 ]; then
    tail -n 20 "$tmp/logs/slurmctld.log" "$tmp/logs/slurmd.log" "$tmp/logs/"*.out 2>/dev/null
    skip "slurmctld/slurmd did not bring node $host up within 20 s (see the logs above)"
fi
say "Slurm $(sinfo -V | awk '{print $2}') up: node $host, $cpus CPUs, ports $ctld_port/$d_port, config $SLURM_CONF"
sinfo

# wait for job $1 to leave the queue (timeout $2 s); its state into $state
wait_job() {
    local id=$1 t=$2
    for _ in $(seq $((t * 5))); do
        state=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u | tr '\n' ' ')
        case "$state" in
            *PENDING* | *RUNNING* | *CONFIGURING* | *COMPLETING* | "") ;;
            *) return 0 ;;
        esac
        sleep 0.2
    done
    scancel "$id" 2>/dev/null
    return 1
}

# ---- 1. the evaluate job array and the merge job -------------------------------------------------------
data=$tmp/work/synth
"$fibvid" synth -o "$data" -n 8 --size 64x48 --seconds 1:1.2 -s 5 -q -t 2 || fail "fibvid synth"
"$fibvid" train --ucf101 "$data" -o "$tmp/work/model" --config test --epochs 1 -b 8 -t 1 -q || fail "fibvid train"
model=$tmp/work/model/model.safetensors
"$fibvid" evaluate -q -m "$model" --root "$data" --ucf101 "$data" --split 1 -t 1 --out "$tmp/work/one" >/dev/null \
    || fail "one-process evaluate"

cd "$tmp/work" || exit 1
export FIBVID=$fibvid MODEL=$model ROOT=$data DATASET_ARGS="--ucf101 $data --split 1" OUT=$tmp/work/sharded
jid=$(sbatch --parsable --array=1-2 --cpus-per-task=1 --mem=1G --time=10 \
      --output="$tmp/logs/eval-%A_%a.log" "$src/scripts/slurm/evaluate_array.sbatch") || fail "sbatch evaluate_array"
mid=$(sbatch --parsable --dependency=afterok:"$jid" --export=ALL,NSHARDS=2 --mem=1G --time=10 \
      --output="$tmp/logs/merge-%j.log" "$src/scripts/slurm/merge.sbatch") || fail "sbatch merge"
say "submitted evaluate array $jid (2 tasks) and merge $mid (afterok)"
wait_job "$jid" 300 || fail "the evaluate array did not finish within 300 s"
say "evaluate array $jid: $state"
wait_job "$mid" 120 || fail "the merge job did not finish within 120 s"
say "merge $mid: $state"
for f in "$tmp"/logs/eval-*.log "$tmp"/logs/merge-*.log; do
    echo "---- $(basename "$f")"
    cat "$f"
done
case "$state" in *COMPLETED*) ;; *) fail "merge job ended $state" ;; esac
for f in per_class.csv confusion.csv; do
    cmp "$tmp/work/one/$f" "$OUT/merged/$f" || fail "merged $f differs from the one-process run's"
done
fields() { grep -E '"(top1_acc|top5_acc|mean_class_acc|num_videos|num_evaluated|num_failed)":' "$1"; }
fields "$tmp/work/one/summary.json" >"$tmp/one.txt"
fields "$OUT/merged/summary.json" >"$tmp/merged.txt"
say "merged vs one process: $(tr -d ' \n' <"$tmp/merged.txt")"
[ "$(wc -l <"$tmp/one.txt")" = 6 ] && cmp "$tmp/one.txt" "$tmp/merged.txt" || fail "merged summary.json differs"
say "merged results of the 2-task array equal the one-process run's"

# ---- 2. a 2-task srun fibvid train (MPI over PMIx) -----------------------------------------------------
if ! srun --mpi=list 2>&1 | grep pmix >/dev/null; then
    say "srun has no PMIx plugin: the srun train step is skipped"
elif ! "$fibvid" --version >/dev/null 2>&1 || ! "$fibvid" --version 2>/dev/null | grep -q "^ranks: MPI"; then
    say "this build has no MPI: the srun train step is skipped"
else
    targs="--ucf101 $data --config test --epochs 2 -b 8 --lr 3e-3 --warmup 0.5 --seed 7 -t 1"
    # shellcheck disable=SC2086
    "$fibvid" train $targs -q -o "$tmp/work/train-one" || fail "one-process train"
    export TRAIN_ARGS="$targs" OUT=$tmp/work/train-srun
    tid=$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --mem-per-cpu=1G --time=10 --output="$tmp/logs/train-%j.log" \
          "$src/scripts/slurm/train.sbatch") || fail "sbatch train"
    say "submitted train $tid (2 tasks)"
    wait_job "$tid" 300 || fail "the train job did not finish within 300 s"
    say "train $tid: $state"
    echo "---- train-$tid.log"
    cat "$tmp/logs/train-$tid.log"
    case "$state" in *COMPLETED*) ;; *) fail "train job ended $state" ;; esac
    grep -q '"ranks":2' "$OUT/train.jsonl" || fail "$OUT/train.jsonl: no step line of 2 ranks"
    say "srun 2 tasks vs 1 process: $("$reldiff" "$tmp/work/train-one/model.safetensors" "$OUT/model.safetensors" 1e-5)" \
        || fail "the weights of the 2-task run differ from the one-process run's"
fi
say "PASSED"
