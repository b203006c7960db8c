#!/usr/bin/env bash
# Install exactly the Debian 12 packages fibvid needs (idempotent; run as root), then configure and build
# into ./build. Options:
#   --deps-only   install packages, do not build
#   --dev         also install what the fixture/benchmark scripts use (python3-torch, python3-numpy, ffmpeg)
#                 chromium (tests/test_report.c renders report.html headless; it skips without it) and
#                 strace (tests/test_cli.c checks that atomic writes sync their directory)
set -euo pipefail
cd "$(dirname "$0")/.."

deps_only=0
dev=0
for a in "$@"; do
    case "$a" in
    --deps-only) deps_only=1 ;;
    --dev) dev=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 1 ;;
    esac
done

packages=(
    gcc g++ meson ninja-build pkg-config                   # build (g++: the C++ header test)
    libavformat-dev libavcodec-dev libavutil-dev libswscale-dev  # FFmpeg: decode, encode (tests), scale
    libopenblas-openmp-dev                                 # cblas, OpenMP build (shares fibvid's threads)
    libdnnl-dev                                            # oneDNN: the default fp32 GEMM backend
    libjansson-dev                                         # JSON
    libcmocka-dev                                          # tests
)
if [ "$dev" = 1 ]; then
    packages+=(python3-torch python3-numpy ffmpeg chromium strace libxml2-utils)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup.sh: missing packages (${missing[*]}); run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ "$deps_only" = 1 ] && exit 0

if [ -d build ]; then
    meson setup --reconfigure build --buildtype=release >/dev/null
else
    meson setup build --buildtype=release >/dev/null
fi
ninja -C build
