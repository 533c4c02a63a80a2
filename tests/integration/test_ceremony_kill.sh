#!/bin/bash
# kill -9 at each step of a ceremony: the tokens and files are always in a
# state docs/ceremony.md ("If a ceremony fails") describes, and its
# recovery works. The shim (tests/p11shim, FAIL_MODE=hang) blocks the
# process at the N-th call of a function, before the call reaches the
# token; the test waits for the shim's mark file and kills the process
# there, so nothing the ceremony does in its own cleanup can run.
#
# Documented states checked after each kill:
# - killed in the checks, before any change: nothing written, tokens
#   unchanged (their old user PIN still logs in);
# - killed after the shares are written: shares and PIN files, no
#   transcript, so `shares verify` and `ceremony restore` refuse the shares;
#   each token's SO PIN is either its old one or the new one in
#   credentials/ (readable by the admin), and with it a new ceremony into a
#   new directory resets both tokens and succeeds.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
ceremony_through_shim
user_pin_works() {
    pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$1" --login --pin 87654321 \
        --list-objects >/dev/null 2>&1
}
so_pin_works() { # the test's own token: its PIN may be in pkcs11-tool's argv
    pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$1" --session-rw --login --login-type so \
        --so-pin "$2" --list-objects >/dev/null 2>&1
}

# kill_at FUNCTION N DESCRIPTION: a ceremony onto two initialized tokens,
# killed at the N-th FUNCTION call.
kill_at() {
    local fn=$1 n=$2 what=$3
    run=$((run + 1))
    fresh "p$run"; fresh "b$run"
    ceremony_config "c$run.json" "Killed $run" "p$run" "b$run" 2 alice bob carol
    rm -f "$WORK/mark"
    HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_FAIL_FUNC=$fn \
        HSMSIGN_SHIM_FAIL_AT=$n HSMSIGN_SHIM_FAIL_MODE=hang HSMSIGN_SHIM_HANG_MARK="$WORK/mark" \
        "$HSMSIGN" --audit-log "audit$run" ceremony provision "c$run.json" --out-dir "cer$run" \
        --force-reset --current-so-pin-source env:CUR >"$WORK/out" 2>"$WORK/err" &
    local pid=$!
    # Wait on the condition: the shim's mark, or the process ending.
    while [ ! -e "$WORK/mark" ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
    if [ ! -e "$WORK/mark" ]; then
        wait $pid
        fail "killed at $fn #$n ($what): the ceremony ended (exit $?) before reaching that call"
        sed 's/^/    /' "$WORK/err"
        return
    fi
    kill -9 $pid
    wait $pid 2>/dev/null
    pass "killed at $fn #$n ($what)"
    if [ "$what" = "checks" ]; then
        assert "... nothing written" test ! -e "cer$run" -a ! -e "audit$run"
        assert "... the primary is untouched: its user PIN still logs in" user_pin_works "p$run"
        assert "... and the backup's" user_pin_works "b$run"
        return
    fi
    assert "... the shares and PIN files are there, and no transcript" \
        test -d "cer$run/shares" -a -d "cer$run/credentials" -a ! -e "cer$run/transcript.json"
    local s1 s2
    s1=$(ls cer$run/shares/*-alice.share.age) s2=$(ls cer$run/shares/*-bob.share.age)
    expect_fail "... shares verify cannot use its shares" 8 "transcript.json" \
        "$HSMSIGN" shares verify --transcript "cer$run/transcript.json" --unsigned-transcript \
        --share "$s1" --share "$s2" --identity ids/alice.txt --identity ids/bob.txt
    expect_fail "... nor can ceremony restore" 8 "transcript.json" \
        "$HSMSIGN" ceremony restore --token "p$run" --transcript "cer$run/transcript.json" \
        --unsigned-transcript --share "$s1" --share "$s2" --identity ids/alice.txt --identity ids/bob.txt
    # The recovery: each token's SO PIN is the old one or the admin's new one.
    local t role pins=()
    for t in p b; do
        role=primary; [ $t = b ] && role=backup
        local new
        new=$(age -d -i ids/admin.txt "cer$run/credentials/$role-so-pin.age" 2>/dev/null)
        if so_pin_works "$t$run" "$CUR"; then
            pins+=("$CUR")
        elif [ -n "$new" ] && so_pin_works "$t$run" "$new"; then
            pins+=("$new")
        else
            fail "... the $role's SO PIN is neither the old one nor the one in credentials/"
            return
        fi
    done
    pass "... each token's SO PIN is its old one or the admin's new one"
    export REC_P=${pins[0]} REC_B=${pins[1]}
    check "... recovery: a new ceremony into a new directory resets both tokens" \
        "$HSMSIGN" --audit-log "audit$run-again" ceremony provision "c$run.json" \
        --out-dir "cer$run-again" --force-reset --current-so-pin-source env:REC_P \
        --backup-current-so-pin-source env:REC_B
    assert "... and writes its transcript" test -s "cer$run-again/transcript.json"
}

kill_at C_Login 2 "checks"
kill_at C_InitToken 1 "primary token reset"
kill_at C_SetPIN 1 "primary token: new SO PIN"
kill_at C_InitPIN 1 "primary token: user PIN"
kill_at C_GenerateKeyPair 1 "generating the audit key"
kill_at C_CreateObject 1 "primary token: importing the wrap key"
kill_at C_InitToken 2 "backup token reset"
kill_at C_SetPIN 2 "backup token: new SO PIN"
kill_at C_CreateObject 2 "backup token: importing the wrap key"
kill_at C_FindObjectsInit 9 "backup token: checking it holds only what the ceremony made"
kill_at C_Sign 2 "writing the transcript"
finish
