#!/bin/bash
# Reproducible build: the same commit, built twice in two different
# directories (different path lengths) at different times, gives the same
# hsmsign bytes, and no build directory appears in the binary. Attendees of
# a ceremony check the ceremony binary this way (README). Only the hsmsign
# target is built, without the tests, to keep it short (~1 min per build on
# 2 idle cores). HSMSIGN_REPRO_REV picks another commit (default HEAD).
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -n "${HSMSIGN_SANITIZED:-}" ]; then
    # It builds plain binaries from a clean copy: nothing sanitized to test,
    # and `make check` already ran it (two builds are the slowest test).
    echo "SKIP: the reproducible-build test runs in make check, not again under sanitizers"
    exit 77
fi
SRC=${HSMSIGN_SOURCE_ROOT:-$(cd "$HERE/../.." && pwd)}
REV=${HSMSIGN_REPRO_REV:-HEAD}
if ! command -v git >/dev/null || ! git -C "$SRC" rev-parse --verify -q "$REV^{commit}" >/dev/null; then
    echo "SKIP: git is not available or $SRC is not a git checkout: the reproducible-build test needs a clean copy of a commit (git archive)"
    exit 77
fi
. "$HERE/lib.sh"
commit=$(git -C "$SRC" rev-parse "$REV")
export SOURCE_DATE_EPOCH=$(git -C "$SRC" log -1 --format=%ct "$commit")
build_in() { # DIR: a clean copy of the commit, configured and built in DIR/src/build
    mkdir -p "$1/src" && git -C "$SRC" archive "$commit" | tar -x -C "$1/src" &&
        (cd "$1/src" && meson setup build -Dtests=false >"$1/setup.log" 2>&1 &&
         ninja -C build src/cli/hsmsign >"$1/ninja.log" 2>&1)
}
start=$(date +%s)
check "build $commit in $WORK/a" build_in "$WORK/a"
check "build it again in $WORK/a-second-and-longer-directory-name" build_in "$WORK/a-second-and-longer-directory-name"
end=$(date +%s)
A=$WORK/a/src/build/src/cli/hsmsign B=$WORK/a-second-and-longer-directory-name/src/build/src/cli/hsmsign
check "the two hsmsign binaries are byte-identical" cmp "$A" "$B"
sed 's/^/    /' "$WORK/out" | head -3
assert "no build directory is embedded" bash -c "! strings -a '$A' | grep -q '$WORK'"
echo "# two builds took $((end - start)) s; sha256 $(sha256sum "$A" | cut -d' ' -f1)"
finish
