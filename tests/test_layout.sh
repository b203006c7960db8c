#!/bin/sh
# The layout's dependency rules (README "Layout"), checked on every #include "..." of src/: each folder may
# use its own files, the folders before it in this order, and the public headers listed for it; the CLI only
# the public API and its own cli.h. A new include that breaks a rule fails here, naming the file and line.
# usage: test_layout.sh SOURCE_DIR
set -eu
src=$1/src
status=0
check() { # folder, allowed include prefixes (space separated)
    folder=$1
    shift
    for f in "$src/$folder"/*.c "$src/$folder"/*.h; do
        [ -e "$f" ] || continue
        grep -n '^#include "' "$f" | while IFS= read -r line; do
            inc=$(printf '%s' "$line" | sed 's/^[0-9]*:#include "\([^"]*\)".*/\1/')
            ok=0
            for p in "$@"; do
                case "$inc" in "$p"*) ok=1 ;; esac
            done
            if [ $ok = 0 ]; then
                echo "src/$folder/$(basename "$f"):${line%%:*}: #include \"$inc\" breaks the rule of src/$folder/"
                echo x >>"$tmp"
            fi
        done
    done
}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
pub_model="fibvid/common.h fibvid/video.h fibvid/attention.h fibvid/model.h fibvid/predict.h fibvid/diag.h"
check util    util/ fibvid/common.h
check kernels util/ kernels/ fibvid/common.h fibvid/attention.h
check video   util/ video/ fibvid/common.h fibvid/video.h
check model   util/ kernels/ video/ model/ $pub_model
check eval    util/ kernels/ video/ model/ eval/ $pub_model fibvid/eval.h
check dist    util/ dist/ fibvid/common.h fibvid/dist.h
check train   util/ kernels/ video/ model/ eval/ dist/ train/ $pub_model fibvid/eval.h fibvid/train.h fibvid/dist.h
# synth encodes with FFmpeg: of video/ it may use only the loader (FFmpeg on first use, or its error)
check synth   util/ synth/ video/ffmpeg_dl.h fibvid/common.h fibvid/synth.h
check cli     fibvid/ cli.h
if [ -s "$tmp" ]; then
    echo "$(wc -l <"$tmp") include(s) break the layout's rules"
    exit 1
fi
echo "every #include of src/ keeps its folder's rule"
