#!/usr/bin/env bash
# Run the libFuzzer harnesses of tests/fuzz one after another (nice -n 19) and print, per target, the
# executions, coverage (libFuzzer's final cov: and ft:) and crashes found.
#
#   CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false -Dlazy_libs=false
#   ninja -C build-fuzz fuzz
#   scripts/fuzz_campaign.sh -t 600                 # the long campaign: 10 minutes per target
#   scripts/fuzz_campaign.sh -t 30 fuzz_config      # a smoke run of one target (what .ci/run does for each)
#
# Options: -t SECONDS per target (default 600), -b BUILD_DIR (default build-fuzz), -o OUT_DIR (default
# BUILD_DIR/fuzz-out: per target the log, the corpus grown from tests/fuzz/corpus/<target> and crash artifacts).
# Targets: the names given, default all. Exit status 1 when a target crashed (or found a leak / timeout).
set -uo pipefail
cd "$(dirname "$0")/.."

secs=600
build=build-fuzz
out=
while getopts "t:b:o:h" opt; do
    case $opt in
    t) secs=$OPTARG ;;
    b) build=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n "2,12p" "$0"; exit 1 ;;
    esac
done
shift $((OPTIND - 1))
targets=("$@")
out=${out:-$build/fuzz-out}
if [ ${#targets[@]} -eq 0 ]; then
    targets=(fuzz_safetensors fuzz_config fuzz_dataset fuzz_evaldir fuzz_checkpoint fuzz_model_load fuzz_video)
fi

mkdir -p "$out"
failed=0
summary=()
for t in "${targets[@]}"; do
    bin=$build/tests/fuzz/$t
    if [ ! -x "$bin" ]; then
        echo "fuzz_campaign: $bin: not built (ninja -C $build)" >&2
        exit 1
    fi
    name=${t#fuzz_}
    corpus=$out/$t/corpus
    mkdir -p "$corpus" "$out/$t/artifacts"
    # -timeout: an input is a hang after 60 s. Generous on purpose: under nice on a busy machine a 2 s input
    # (a config of 60000 labels, written and read back twice under ASan) once took 31 s of wall time.
    args=(-max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$out/$t/artifacts/")
    [ -f tests/fuzz/$name.dict ] && args+=(-dict=tests/fuzz/$name.dict)
    echo "== $t: ${secs} s"
    start=$(date +%s)
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        nice -n 19 "$bin" "${args[@]}" "$corpus" "tests/fuzz/corpus/$t" > "$out/$t/log" 2>&1
    rc=$?
    wall=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t/log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$out/$t/log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    # findings: crash-, leak-, timeout-, oom- files; slow-unit- ones (inputs over 10 s) are only reported
    crashes=$(find "$out/$t/artifacts" -type f ! -name 'slow-unit-*' | wc -l)
    slow=$(find "$out/$t/artifacts" -type f -name 'slow-unit-*' | wc -l)
    ninputs=$(find "$corpus" -type f | wc -l)
    line=$(printf '%-18s rc=%-3s wall=%5ss execs=%-9s exec/s=%-6s cov=%-6s ft=%-6s corpus=%-5s crashes=%s slow=%s' \
        "$t" "$rc" "$wall" "${execs:-?}" "$(( ${execs:-0} / (wall > 0 ? wall : 1) ))" "${cov:-?}" "${ft:-?}" \
        "$ninputs" "$crashes" "$slow")
    echo "$line"
    summary+=("$line")
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$out/$t/log" >&2
        find "$out/$t/artifacts" -type f ! -name 'slow-unit-*' >&2
    fi
done
echo "== summary (${secs} s per target; logs in $out/<target>/log)"
printf '%s\n' "${summary[@]}"
exit $failed
