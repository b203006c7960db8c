#!/usr/bin/env bash
# Time to first result (issue 19): whole-process wall time of `fibvid --version` and of a one-clip `classify`
# (median of RUNS runs, hyperfine), and where the time goes:
#   - process start: an empty C program, then the same program linked with each library group fibvid uses
#     (FFmpeg's libavformat/libavcodec/libswscale/libavutil with their dependencies, oneDNN, OpenBLAS): the
#     cost of loading, relocating and initialising each group, which fibvid now pays only on first use;
#   - in the process: the dynamic loader's own statistics, page faults, and classify's decode / forward times
#     (the first forward pass includes oneDNN's kernel generation, the thread pool start and first-touch page
#     faults; a second clip in the same process shows the warm figure).
# Usage: scripts/bench_startup.sh [BUILD_DIR] [RUNS]     (BASELINE=/path/to/other/fibvid adds its rows, interleaved)
# Prints figures only; it checks nothing. Needs hyperfine (apt-get install hyperfine), cc and python3.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
runs=${2:-10}
fibvid=$build/fibvid
clip=$here/models/samples/v_MoveLeft_g01_c01.avi
command -v hyperfine >/dev/null || { echo "bench_startup: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
[ -x "$fibvid" ] || { echo "bench_startup: $fibvid: not built" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { # hyperfine JSON -> "command: median (min..max) ms"
    python3 - "$1" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1]))['results']:
    print('  %-62s median %7.1f ms  (min %6.1f, max %6.1f, %d runs)' % (r['command'], r['median'] * 1e3,
          r['min'] * 1e3, r['max'] * 1e3, len(r['times'])))
EOF
}
bench() { # name, commands...
    local json=$tmp/$1.json
    shift
    hyperfine -N -w 2 -r "$runs" --export-json "$json" "$@" >/dev/null 2>&1
    median "$json" | sed "s|$tmp/||; s|$here/||g"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== process start: an empty program linked with each library group (what loading it costs)"
echo 'int main(void) { return 0; }' > "$tmp/empty.c"
ob_dir=/usr/lib/x86_64-linux-gnu/openblas-openmp
cc -O2 "$tmp/empty.c" -o "$tmp/empty"
cc -O2 "$tmp/empty.c" -o "$tmp/ffmpeg" -Wl,--no-as-needed $(pkg-config --libs libavformat libavcodec libswscale libavutil)
cc -O2 "$tmp/empty.c" -o "$tmp/onednn" -Wl,--no-as-needed -ldnnl 2>/dev/null || cp "$tmp/empty" "$tmp/onednn"
cc -O2 "$tmp/empty.c" -o "$tmp/openblas" -Wl,--no-as-needed -L$ob_dir -Wl,-rpath,$ob_dir -lopenblas
for e in empty ffmpeg onednn openblas; do
    printf '  %-9s %3d shared libraries, %5s page faults\n' "$e" "$(ldd "$tmp/$e" | wc -l)" \
        "$( { /usr/bin/time -f %R "$tmp/$e" >/dev/null; } 2>&1 | tail -1)"
done
bench libs "$tmp/empty" "$tmp/ffmpeg" "$tmp/onednn" "$tmp/openblas"
echo
echo "== fibvid: shared libraries at start $(ldd "$fibvid" | wc -l); page faults: --version" \
     "$( { /usr/bin/time -f %R "$fibvid" --version >/dev/null; } 2>&1 | tail -1), classify" \
     "$( { /usr/bin/time -f %R "$fibvid" classify -q "$clip" >/dev/null; } 2>&1 | tail -1)"
LD_DEBUG=statistics "$fibvid" --version 2>&1 >/dev/null | grep -E 'total startup time|time needed for relocation|number of relocations:' \
    | sed 's/^ *[0-9]*: */  ld.so: /'
echo "  in classify (its own figures; the first decode includes loading FFmpeg):"
for t in 2 1; do
    printf '    -t %d: ' "$t"
    "$fibvid" classify -q -t "$t" "$clip" | head -1 | sed 's/.*(//; s/)$//'
done
printf '    two clips in one process, -t 2: '
"$fibvid" classify -q -t 2 "$clip" "$clip" | grep -E '^\S.*ms\)$' | sed 's/.*(//; s/)$//' | paste -sd'|' | sed 's/|/ then /'
echo
echo "== whole process: $runs rounds, the commands interleaved (this VM's speed drifts over seconds)"
cmds=("$fibvid --version" "$fibvid classify -q $clip" "$fibvid classify -q -t 1 $clip")
[ -n "${BASELINE:-}" ] && cmds+=("$BASELINE --version" "$BASELINE classify -q $clip" "$BASELINE classify -q -t 1 $clip")
python3 - "$runs" "$here/" "${cmds[@]}" <<'EOF2'
import statistics, subprocess, sys, time
runs, root, cmds = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
t = {c: [] for c in cmds}
for c in cmds * 2:  # warm-up: page cache, CPU frequency
    subprocess.run(c.split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(runs):
    for c in cmds:
        t0 = time.perf_counter()
        subprocess.run(c.split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t[c].append((time.perf_counter() - t0) * 1e3)
for c in cmds:
    v = sorted(t[c])
    print('  %-66s median %7.1f ms  (quartiles %6.1f..%6.1f, min %6.1f)' % (c.replace(root, ''), statistics.median(v),
          v[len(v) // 4], v[(3 * len(v)) // 4], v[0]))
EOF2
