#!/bin/bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang,
# -fsanitize=fuzzer,address,undefined, into BUILD_DIR (default build-fuzz).
# Separate from the main gcc build: `make check` never needs clang.
#
# libhsmsign itself comes from meson (so the source list stays in one
# place): a second meson build directory configured for clang with
# ASan/UBSan and -fsanitize=fuzzer-no-link builds only the static library,
# and each target is linked against it with the libFuzzer driver.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build-fuzz}
cd "$root"
if [ ! -f "$out/meson/build.ninja" ]; then
    CC=clang meson setup "$out/meson" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dwerror=false -Dbuildtype=debugoptimized \
        -Dc_args=-fsanitize=fuzzer-no-link >/dev/null
fi
ninja -C "$out/meson" src/lib/libhsmsign.a >/dev/null
deps="libcrypto p11-kit-1 jansson zlib libdeflate libgit2"
# shellcheck disable=SC2046,SC2086
cflags=$(pkg-config --cflags $deps)
libs=$(pkg-config --libs $deps)
mkdir -p "$out/bin"
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    bin=$out/bin/$name
    if [ "$bin" -nt "$src" ] && [ "$bin" -nt "$out/meson/src/lib/libhsmsign.a" ] &&
        [ "$bin" -nt tests/fuzz/fuzz_common.h ]; then
        continue
    fi
    # shellcheck disable=SC2086
    clang -std=c11 -g -O1 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I src/lib -DFUZZ_VECTORS_DIR="\"$PWD/tests/vectors\"" $cflags "$src" "$out/meson/src/lib/libhsmsign.a" $libs -lpthread -ldl \
        -o "$bin"
done
echo "fuzz targets in $out/bin: $(cd "$out/bin" && ls | tr '\n' ' ')"
