#!/bin/bash
# README.md's command blocks run as typed (issue 11): each fenced sh block
# runs with `bash -euo pipefail` in its own empty directory, with the
# build's hsmsign on PATH as `hsmsign`, no terminal, and none of hsmsign's
# variables set, as a new user's shell after `make` would be. The block
# under "## Using it" must be among them; a block may be left out only by a
# `<!-- not-run: REASON -->` line before it, and the test says which and why.
# Also: `build/hsmsign` exists, and `hsmsign help` is `--help`.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
: "${HSMSIGN_README:?HSMSIGN_README must name README.md in the source tree}"
: "${HSMSIGN_BUILD_ROOT:?HSMSIGN_BUILD_ROOT must name the build directory}"

mkdir "$WORK/bin" "$WORK/blocks"
ln -s "$HSMSIGN" "$WORK/bin/hsmsign"
python3 "$HERE/readme_blocks.py" "$HSMSIGN_README" "$WORK/blocks" >"$WORK/blocks/list" ||
    { echo "Bail out! cannot read $HSMSIGN_README"; exit 1; }

using_it=no
while IFS=$'\t' read -r n heading state reason; do
    if [ "$heading" = "## Using it" ]; then
        using_it=$state
    fi
    if [ "$state" = skip ]; then
        echo "# skipped README block $n (under '$heading'): $reason"
        continue
    fi
    dir="$WORK/run-$n"
    mkdir "$dir"
    # A fresh login's environment: hsmsign's variables unset, its binary on PATH.
    if (cd "$dir" && setsid -w env -u HSMSIGN_PIN -u HSMSIGN_SO_PIN -u HSMSIGN_KEYSTORE \
            -u HSMSIGN_AUDIT_LOG -u HSMSIGN_PIN_SOURCE -u HSMSIGN_MODULE -u HSMSIGN_TOKEN \
            -u HSMSIGN_CONFIG -u SOFTHSM2_CONF PATH="$WORK/bin:$PATH" \
            bash -euo pipefail -x "$WORK/blocks/block-$n.sh") </dev/null >"$WORK/block-$n.log" 2>&1; then
        pass "README block $n (under '$heading') runs as typed"
    else
        fail "README block $n (under '$heading') failed (exit $?); its last lines:"
        tail -n 15 "$WORK/block-$n.log" | sed 's/^/    /'
    fi
done <"$WORK/blocks/list"
assert "README has a command block under '## Using it', and it is run" test "$using_it" = run

# "`make` builds build/hsmsign"
check "build/hsmsign runs (README: make builds build/hsmsign)" "$HSMSIGN_BUILD_ROOT/hsmsign" --version
# "hsmsign help [COMMAND [SUBCOMMAND]]" is --help at that level.
assert "hsmsign help is hsmsign --help" \
    bash -c '[ "$("$HSMSIGN" help)" = "$("$HSMSIGN" --help)" ] && [ -n "$("$HSMSIGN" help)" ]'
assert "hsmsign help key is hsmsign key --help" \
    bash -c '[ "$("$HSMSIGN" help key)" = "$("$HSMSIGN" key --help)" ]'
assert "hsmsign help key generate is hsmsign key generate --help" \
    bash -c '[ "$("$HSMSIGN" help key generate)" = "$("$HSMSIGN" key generate --help)" ]'
expect_fail "hsmsign help of an unknown command" 2 "unknown command 'nope'" hs help nope

finish
