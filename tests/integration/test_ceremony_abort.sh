#!/bin/bash
# All or nothing: provisioning stopped at each PKCS#11 step that changes a
# token (the shim, tests/p11shim, fails the N-th call of that function)
# always leaves a documented state (docs/ceremony.md, "If a ceremony
# fails"): either nothing was written and no token changed (the checks
# before any change), or the ceremony directory holds an "aborted" record
# in place of the transcript (signed by the audit key once it exists),
# which voids its share set: `shares verify` and `ceremony restore` refuse
# its shares by name.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
ceremony_through_shim
# stop_at FUNCTION N DESCRIPTION [initialized]: a ceremony onto two new
# tokens (not initialized, or initialized and in use: --force-reset) whose
# N-th FUNCTION call fails.
stop_at() {
    local fn=$1 n=$2 what=$3 reset=()
    run=$((run + 1))
    if [ "${4:-}" = initialized ]; then
        fresh "p$run"; fresh "b$run"
        reset=(--force-reset --current-so-pin-source env:CUR)
    fi
    ceremony_config "c$run.json" "Stopped $run" "pkcs11:token=p$run" "b$run" 2 alice bob carol
    HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_FAIL_FUNC=$fn \
        HSMSIGN_SHIM_FAIL_AT=$n HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_REMOVED \
        "$HSMSIGN" --audit-log "audit$run" ceremony provision "c$run.json" --out-dir "cer$run" \
        "${reset[@]}" >"$WORK/out" 2>"$WORK/err"
    local rc=$?
    if [ $rc -eq 0 ]; then fail "stopped at $fn #$n ($what): the ceremony succeeded"; return; fi
    pass "stopped at $fn #$n ($what): exit $rc"
    assert "... the error names the injected fault" grep -q "CKR_DEVICE_REMOVED" "$WORK/err"
    local fmt
    fmt=$(python3 -c "import json,sys; print(json.load(open('cer$run/transcript.json'))['format'])" 2>/dev/null)
    assert "... cer$run/transcript.json is the aborted record" test "$fmt" = hsmsign-ceremony-aborted
    assert "... which names the failed step" python3 -c "
import json; a = json.load(open('cer$run/transcript.json'))
assert '$what' in a['failed_at'], a['failed_at']
assert 'CKR_DEVICE_REMOVED' in a['error'] and len(a['share_set']) == 32, a"
    if [ -e "cer$run/audit-key.pem" ]; then
        check "... the audit key existed: the record is signed by it (openssl)" \
            openssl pkeyutl -verify -pubin -inkey "cer$run/audit-key.pem" -rawin \
            -in "cer$run/transcript.json" -sigfile "cer$run/transcript.json.sig"
    else
        assert "... no audit key yet: the record is not signed" test ! -e "cer$run/transcript.json.sig"
    fi
    local s1 s2
    s1=$(ls cer$run/shares/*-alice.share.age) s2=$(ls cer$run/shares/*-bob.share.age)
    expect_fail "... shares verify refuses its shares: the set is void" 1 "ABORTED.*void" \
        "$HSMSIGN" shares verify --transcript "cer$run/transcript.json" --unsigned-transcript \
        --share "$s1" --share "$s2" --identity ids/alice.txt --identity ids/bob.txt
    expect_fail "... and so does ceremony restore" 1 "ABORTED.*void" \
        "$HSMSIGN" ceremony restore --token "p$run" --transcript "cer$run/transcript.json" \
        --unsigned-transcript --share "$s1" --share "$s2" --identity ids/alice.txt --identity ids/bob.txt
}

# The steps that change a token, in the order the ceremony makes them.
stop_at C_InitToken 1 "primary token"
stop_at C_InitPIN 1 "primary token"
stop_at C_GenerateKeyPair 1 "generating the audit key"
stop_at C_CreateObject 1 "primary token"
stop_at C_InitToken 2 "backup token"
stop_at C_InitPIN 2 "backup token"
# Each token's import makes two objects: the known-answer AES key of the
# RFC 5649 test (keystore/kwp.h), then the wrap key; #3 is the backup's first.
stop_at C_CreateObject 3 "backup token"
stop_at C_Sign 2 "writing the transcript"
# Initialized tokens: reset (C_InitToken), new SO PIN (C_SetPIN) and its
# confirming login, user PIN, and the final proof of the contents.
stop_at C_InitToken 1 "primary token" initialized
stop_at C_SetPIN 1 "primary token" initialized
stop_at C_SetPIN 2 "backup token" initialized
stop_at C_FindObjectsInit 4 "primary token: checking it holds only what the ceremony made" initialized
stop_at C_FindObjectsInit 9 "backup token: checking it holds only what the ceremony made" initialized

# Before any change: a fault in the checks leaves nothing at all.
run=$((run + 1))
fresh "p$run"; fresh "b$run"
ceremony_config "c$run.json" "Checked $run" "p$run" "b$run" 2 alice bob carol
HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_FAIL_FUNC=C_Login \
    HSMSIGN_SHIM_FAIL_AT=2 HSMSIGN_SHIM_FAIL_RV=CKR_PIN_INCORRECT \
    "$HSMSIGN" --audit-log "audit$run" ceremony provision "c$run.json" --out-dir "cer$run" \
    --force-reset --current-so-pin-source env:CUR >"$WORK/out" 2>"$WORK/err"
assert "a failing SO login of the backup, before any change: refused" \
    grep -q "backup token, before anything changed" "$WORK/err"
assert "... nothing written" test ! -e "cer$run" -a ! -e "audit$run"
check "... the primary is untouched: its user PIN still logs in" \
    pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "p$run" --login --pin 87654321 --list-objects
finish
