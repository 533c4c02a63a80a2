#!/bin/bash
# `token init` as a new user meets it (issue 11): a missing SO or user PIN
# is named by its own option and variable, and no failure leaves a token
# directory or softhsm2.conf behind (a half-made one would later be taken
# for a token without PINs).
. "$(dirname "$0")/lib.sh"

# No controlling terminal (setsid), so the prompt fallback is impossible.
notty() { setsid -w "$@" </dev/null; }
# Every path under DIR, one per line ("" when DIR is gone).
tree() { if [ -e "$1" ]; then find "$1" | sort; fi; }

expect_fail "no SO PIN: names --so-pin-source and HSMSIGN_SO_PIN" 2 \
    "security officer PIN.*HSMSIGN_SO_PIN.*--so-pin-source" \
    notty env -u HSMSIGN_SO_PIN "$HSMSIGN" token init --dir "$WORK/t1" --label a
assert "no SO PIN: nothing left behind" test ! -e "$WORK/t1"
assert "no SO PIN: the message does not send the user to --pin-source" \
    bash -c "! grep -q -- ' --pin-source' '$WORK/err'"

expect_fail "no user PIN: names --pin-source and HSMSIGN_PIN" 2 \
    "user PIN.*HSMSIGN_PIN.*--pin-source" \
    notty env -u HSMSIGN_PIN "$HSMSIGN" token init --dir "$WORK/t2" --label a
assert "no user PIN: nothing left behind" test ! -e "$WORK/t2"

expect_fail "SO PIN file missing" 3 "cannot open PIN file" \
    hs token init --dir "$WORK/t3" --label a --so-pin-source "file:$WORK/nope"
assert "SO PIN file missing: nothing left behind" test ! -e "$WORK/t3"

# A failure after the directories and the config are written: the module
# cannot be loaded. Every directory it made, parents included, goes.
expect_fail "module missing" 8 "no such file" \
    hs --module "$WORK/no-module.so" token init --dir "$WORK/new/deeper/t4" --label a
assert "module missing: no half-made directory, parents included" test ! -e "$WORK/new"

# A directory that existed keeps what it held, and only that.
mkdir "$WORK/t5" && echo keep >"$WORK/t5/notes"
expect_fail "module missing, existing directory" 8 "no such file" \
    hs --module "$WORK/no-module.so" token init --dir "$WORK/t5" --label a
assert "existing directory: only its own file is left" \
    test "$(tree "$WORK/t5")" = "$(printf '%s\n' "$WORK/t5" "$WORK/t5/notes")"

# A failure on a directory that already holds a token leaves that token whole.
check "token init --dir" hs token init --dir "$WORK/t6" --label first
assert "token init prints the SOFTHSM2_CONF line" grep -qx "export SOFTHSM2_CONF=$WORK/t6/softhsm2.conf" "$WORK/out"
before=$(tree "$WORK/t6")
expect_fail "a second token with the same label" 9 "already exists" \
    hs token init --dir "$WORK/t6" --label first
assert "the existing token's files are all still there" test "$(tree "$WORK/t6")" = "$before"
export SOFTHSM2_CONF=$WORK/t6/softhsm2.conf
check "the existing token still logs in (wrapkey create)" hs wrapkey create

finish
