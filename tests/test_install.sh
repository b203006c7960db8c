#!/bin/sh
# The installed library from outside: `meson install` into a scratch DESTDIR, then tests/outside/classify_clip.c,
# built with nothing but what pkg-config says of the installed fibvid.pc, classifies a clip with the tiny test
# model through the public API (two threads on one model included). Also: the library exports only fv_ symbols.
# usage: test_install.sh BUILD_DIR SOURCE_DIR C_COMPILER
set -eu
build=$1 src=$2 cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild >"$tmp/install.log" 2>&1 || {
    cat "$tmp/install.log"; exit 1; }
pc=$(find "$tmp/root" -name fibvid.pc | head -n 1)
lib=$(find "$tmp/root" -name 'libfibvid.so.*' -type f | head -n 1)
[ -n "$pc" ] || { echo "fibvid.pc was not installed"; exit 1; }
[ -n "$lib" ] || { echo "libfibvid.so was not installed"; exit 1; }
find "$tmp/root" -name 'libfibvid.a' | grep -q . || { echo "libfibvid.a was not installed"; exit 1; }
echo "installed: ${pc#$tmp/root}, ${lib#$tmp/root}"

others=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^fv_' || true)
[ -z "$others" ] || { echo "exported symbols outside the API:"; echo "$others"; exit 1; }
echo "exported symbols: $(nm -D --defined-only "$lib" | grep -c ' fv_') (all fv_)"

export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cflags=$(pkg-config --cflags fibvid)
libs=$(pkg-config --libs fibvid)
echo "pkg-config: $cflags $libs"
# shellcheck disable=SC2086
$cc -std=c11 -Wall -Wextra -Werror -pedantic $cflags "$src/tests/outside/classify_clip.c" -o "$tmp/classify_clip" \
    $libs -pthread
LD_LIBRARY_PATH="$(dirname "$lib")" "$tmp/classify_clip" "$src/tests/data/tiny_hf" "$src/tests/data/clip_ffv1.mkv" \
    | tee "$tmp/out"
grep -q '^1 [0-9.]* ' "$tmp/out" || { echo "no ranked label"; exit 1; }
grep -q 'two threads on one model: same' "$tmp/out"
