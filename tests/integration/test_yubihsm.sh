#!/bin/bash
# The yubihsm profile (docs/yubihsm.md) through the shim's YubiHSM 2
# personality (tests/p11shim/README.md) over a fresh SoftHSM token: no
# YubiHSM 2 was available, so every device behaviour here is the
# personality's emulation of Yubico's documented semantics.
#
#   1. full flow: wrap key of YubiHSM type restored from a ceremony's shares
#      (the ceremony itself refused on the device), keys generated on it and
#      exported with CKM_YUBICO_AES_CCM_WRAP, sign raw and apk (apksigner),
#      audit verify, and no unwrapped key left on the device;
#   2. kill -9 during a signature, after the unwrap: the key is left on
#      the device; the next start deletes it and records the deletion;
#   3. a fault at each PKCS#11 call of the profile's work in one signature:
#      no unwrapped key left (a failed delete is tried again by ID), the
#      audit log verifies;
#   4. the agent with --resident-keys 2 and three keys: unwraps counted,
#      least recently used evicted, nothing left after `agent stop`;
#   5. storage full: a clear refusal naming the key and the free space,
#      nothing left.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ -n "${P11SHIM:-}" ] || { echo "SKIP: P11SHIM (tests/p11shim) not built"; exit 77; }
FW=/usr/share/android-framework-res/framework-res.apk

hs -q token init --dir "$WORK/tok" --label yh >/dev/null || { echo "Bail out! token init"; exit 1; }
export SOFTHSM2_CONF=$WORK/tok/softhsm2.conf
# The password part of the PIN is SoftHSM's user PIN; the device's PIN is
# the authentication key's ID (0001, the factory default) before it.
export SOFT_PIN=$HSMSIGN_PIN HSMSIGN_PIN=0001$HSMSIGN_PIN
export HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_PERSONALITY=yubihsm2
export HSMSIGN_MODULE_INIT_ARGS="connector=http://127.0.0.1:12345"
export HSMSIGN_SHIM_COUNTS=$WORK/counts.json
# hsmsign's lock files (the token lock, the per-object holds) of this test only
export XDG_RUNTIME_DIR=$WORK/run
mkdir -m 700 "$XDG_RUNTIME_DIR"

# Private keys hsmsign put on the device, straight from SoftHSM.
left() {
    pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin env:SOFT_PIN --list-objects \
        --type privkey 2>/dev/null | grep -c 'label: *hsmsign:'
}
nothing_left() { [ "$(left)" -eq 0 ]; }
count() { python3 -c "import json,sys; d=json.load(open('$WORK/counts.json')); print($1)"; }
ops() { grep -c "\"op\":\"$1\"" "$WORK/audit/entries.jsonl"; }

# --- 1. full flow -------------------------------------------------------------------
check "token info" hs token info
assert "... shows the yubihsm profile, detected from Yubico's module" \
    grep -q "profile: *yubihsm (module 'YubiHSM PKCS#11 Library' by Yubico" "$WORK/out"
assert "... as supported" bash -c "! grep -q 'not supported' '$WORK/out'"
# The wrap key comes from a ceremony's shares: provisioned onto two plain
# SoftHSM tokens of their own (a YubiHSM cannot be provisioned through
# PKCS#11: docs/ceremony.md "YubiHSM 2"), then restored into the device.
(
    unset HSMSIGN_PIN HSMSIGN_SO_PIN HSMSIGN_MODULE HSMSIGN_MODULE_INIT_ARGS
    shared_softhsm
    export CUR=12345678
    fresh p; fresh b
    ceremony_config c.json "YubiHSM fleet" p b 2 alice bob
    "$HSMSIGN" --audit-log "$WORK/cer-audit" ceremony provision c.json --out-dir cer --force-reset \
        --current-so-pin-source env:CUR >"$WORK/out" 2>"$WORK/err"
) || { fail "ceremony provision onto SoftHSM"; sed 's/^/    /' "$WORK/err"; }
expect_fail "ceremony provision refuses the YubiHSM, saying why and what to do" 2 \
    "Yubico's YubiHSM module.*yubihsm-shell.*ceremony restore" hs ceremony provision c.json --out-dir cer2
check "audit init on the YubiHSM" hs audit init
check "ceremony restore from 2 shares into the YubiHSM" hs ceremony restore --token YubiHSM \
    --transcript cer/transcript.json --audit-key cer/audit-key.pem --share cer/shares/01-alice.share.age \
    --share cer/shares/02-bob.share.age --identity ids/alice.txt --identity ids/bob.txt
assert "... its check value matches the transcript" grep -q "matches the transcript" "$WORK/out"
check "wrapkey show" hs wrapkey show
assert "... a YubiHSM wrap key" grep -q "CKM_YUBICO_AES_CCM_WRAP" "$WORK/out"
expect_fail "wrapkey create refuses a second one" 9 "already has a wrap key" hs wrapkey create
check "key generate p256 on the device" hs key generate p256 --algorithm ec-p256
check "key generate r2048" hs key generate r2048 --algorithm rsa2048
assert "the key file records the profile, the vendor mechanism and the object ID" python3 -c "
import json; k = json.load(open('$WORK/keys/p256.key'))
assert k['profile'] == 'yubihsm' and k['wrap']['mechanism'] == 'CKM_YUBICO_AES_CCM_WRAP', k
assert 0x4800 <= int(k['wrap']['object_id'], 16) <= 0x4fff, k"
assert "generated keys were exported and deleted: nothing left on the device" nothing_left
head -c 10000 /dev/urandom >data.bin
for k in p256 r2048; do
    check "sign raw with $k" hs sign raw --key "$k" data.bin "$k.sig"
    check "openssl verifies the $k signature" \
        openssl dgst -sha256 -verify "$(pubkey "$k")" -signature "$k.sig" data.bin
    assert "... one unwrap, and the unwrapped key deleted in the same process" \
        [ "$(count "d['yubihsm']['objects_unwrapped'], d['yubihsm']['unwrapped_left']")" = "1 0" ]
done
cp "$FW" in.apk
check "sign apk with the RSA key" hs sign apk --key r2048 --v1-signing false --v2-signing true \
    --v3-signing true --v4-signing false in.apk out.apk
check "apksigner verify accepts it" apksigner verify --print-certs out.apk
assert "apksigner names the key's certificate" grep -q "CN=r2048" "$WORK/out"
assert "nothing left on the device" nothing_left
check "audit verify" hs audit verify

# --- 2. kill -9 after the unwrap ------------------------------------------------------
# The shim blocks at the first C_Sign (the signature: the key is unwrapped),
# and the test kills the process there: its own cleanup cannot run.
rm -f "$WORK/mark"
HSMSIGN_SHIM_FAIL_FUNC=C_Sign HSMSIGN_SHIM_FAIL_MODE=hang HSMSIGN_SHIM_HANG_MARK="$WORK/mark" \
    "$HSMSIGN" sign raw --key p256 data.bin killed.sig >/dev/null 2>&1 &
pid=$!
while [ ! -e "$WORK/mark" ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
if [ -e "$WORK/mark" ]; then kill -9 $pid; pass "killed at C_Sign, after the unwrap"
else fail "the signing ended before C_Sign"; fi
wait $pid 2>/dev/null
assert "... the unwrapped key is left on the device" [ "$(left)" -eq 1 ]
sweeps=$(ops sweep)
check "the next start signs" hs sign raw --key r2048 data.bin after.sig
assert "... and deleted the leftover first" nothing_left
assert "... recorded in the audit log" [ "$(ops sweep)" -eq $((sweeps + 1)) ]
assert "... naming the key and its object" \
    grep -q '"key":"p256".*"op":"sweep".*left on the device by a run that did not finish' \
    "$WORK/audit/entries.jsonl"
check "audit verify after the sweep" hs audit verify

# --- 3. a fault at each PKCS#11 call of one signature ---------------------------------------
# What each faulted process left: the shim counts the objects it unwrapped
# and did not delete. The log is verified once at the end: a faulted run
# that broke it would fail that verify, whichever run it was.
hs -q sign raw --key p256 data.bin probe.sig
# The calls of the profile's own work (sweep, room check, unwrap, sign,
# delete); a fault in the others (initialize, login, the audit key) takes
# the paths test_fault_matrix.sh covers on every call, and ends the run
# before any unwrap. C_FindObjects and C_FindObjectsFinal fail the same
# searches C_FindObjectsInit does.
mine="C_FindObjectsInit C_GetAttributeValue C_UnwrapKey C_SignInit C_Sign C_DestroyObject"
mapfile -t calls < <(count "'\n'.join('%s %d' % (f, n) for f, n in d['calls'].items() if n > 0 and f in '$mine'.split())")
faults=0
for c in "${calls[@]}"; do
    fn=${c% *} n=${c#* }
    for i in $(seq 1 "$n"); do
        faults=$((faults + 1))
        rm -f "$WORK/counts.json"
        HSMSIGN_SHIM_FAIL_FUNC=$fn HSMSIGN_SHIM_FAIL_AT=$i "$HSMSIGN" sign raw --key p256 \
            data.bin "f$faults.sig" >/dev/null 2>"$WORK/ferr"
        rc=$?
        l=$( [ -e "$WORK/counts.json" ] && count "d['yubihsm']['unwrapped_left']" || left)
        if [ "$l" -ne 0 ]; then
            fail "fault at $fn #$i (exit $rc): $l unwrapped key(s) left"; sed 's/^/    /' "$WORK/ferr"
        fi
        if [ $rc -ne 0 ] && [ -e "f$faults.sig" ]; then
            fail "fault at $fn #$i: failed (exit $rc) but wrote a signature"
        fi
    done
done
pass "a fault at each of the $faults PKCS#11 calls of one signature left no unwrapped key"
assert "... none on the device" nothing_left
check "... and the log verifies" hs audit verify
check "a clean run after the faults" hs sign raw --key p256 data.bin clean.sig
assert "... nothing left on the device" nothing_left

# --- 4. the agent keeps a bounded set of keys resident -------------------------------------
# N=2 and three keys, signed in the order A B A B C A: A and B are unwrapped
# once each and reused, C evicts A (least recently used), A evicts B. Four
# unwraps, never more than two keys on the device, none after `agent stop`.
# Object IDs: a new key never takes a key file's ID (two keys with one ID
# could not be resident together: the agent below waited on itself). With
# the test-build knob narrowing the IDs tried to one, in a key store of its
# own, the second key must be refused, not given the first one's ID.
HSMSIGN_KEYSTORE=$WORK/keys-span HSMSIGN_TEST_YH_ID_SPAN=1 hs -q key generate span1 --algorithm ec-p256 >/dev/null 2>"$WORK/err" ||
    { fail "one ID to try: the first key"; sed 's/^/    /' "$WORK/err"; }
HSMSIGN_KEYSTORE=$WORK/keys-span HSMSIGN_TEST_YH_ID_SPAN=1 expect_fail \
    "one ID to try, taken by a key file: a second key is refused, not given the same ID" 4 \
    "no free object ID" hs key generate span2 --algorithm ec-p256
assert "... nothing left on the device" nothing_left
check "a third key" hs key generate p256b --algorithm ec-p256
SOCK=$WORK/run/agent.sock
rm -f "$WORK/counts.json"
"$HSMSIGN" agent start --foreground --socket "$SOCK" --resident-keys 2 >"$WORK/agent.out" \
    2>"$WORK/agent.log" &
apid=$!
while ! grep -q '^HSMSIGN_AGENT=' "$WORK/agent.out" && kill -0 $apid 2>/dev/null; do sleep 0.05; done
client() { env -u HSMSIGN_PIN HSMSIGN_MODULE=/nonexistent/pkcs11.so HSMSIGN_AGENT="$SOCK" "$HSMSIGN" "$@"; }
most=0 i=0
for k in p256 r2048 p256 r2048 p256b p256; do
    i=$((i + 1))
    client sign raw --key "$k" data.bin "agent$i.sig" >/dev/null 2>"$WORK/aerr" ||
        { fail "agent: sign raw with $k"; sed 's/^/    /' "$WORK/aerr"; }
    l=$(left); [ "$l" -gt "$most" ] && most=$l
done
assert "agent: the last two keys used are resident" [ "$(left)" -eq 2 ]
assert "agent: never more than 2 keys on the device" [ "$most" -le 2 ]
check "agent stop" client agent stop
while kill -0 $apid 2>/dev/null; do sleep 0.05; done
wait $apid
assert "agent: four unwraps for six signatures (A B A B C A with 2 resident)" \
    [ "$(count "d['yubihsm']['objects_unwrapped'], d['yubihsm']['unwrapped_left']")" = "4 0" ]
assert "agent: nothing left on the device after agent stop" nothing_left
check "agent: the log verifies" hs audit verify

# --- 5. storage full (last: it leaves the device nearly full) --------------------------------
# Data objects written straight into SoftHSM take every free page the
# personality counts (126 bytes a page; pkcs11-tool writes at most 5000
# bytes, 40 pages, an object).
hs -q sign raw --key p256 data.bin probe.sig
free_pages=$(count "1024 - d['yubihsm']['pages_used']")
filler() {
    head -c $(($1 * 126)) /dev/zero >filler.bin
    pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin env:SOFT_PIN --write-object filler.bin \
        --type data --label filler >/dev/null 2>&1
}
for _ in $(seq 1 $((free_pages / 39))); do filler 39; done
[ $((free_pages % 39)) -eq 0 ] || filler $((free_pages % 39))
expect_fail "a full device: signing refused" 4 \
    "YubiHSM 'YubiHSM' .* is full: key 'p256' \(ec-p256\) needs 1 object and 1 pages, and [0-9]+ of 256 objects and 0 of 1024 pages are free" \
    hs sign raw --key p256 data.bin full.sig
assert "... no signature written" test ! -e full.sig
assert "... nothing left on the device" nothing_left
expect_fail "... key generate refused the same way" 4 "is full: key 'new' \(rsa2048\) needs 1 object and 8 pages" \
    hs key generate new --algorithm rsa2048
# One filler object less (last section: the others stay) is room enough.
pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin env:SOFT_PIN --delete-object --type data \
    --label filler >/dev/null 2>&1
check "with room again, it signs" hs sign raw --key p256 data.bin full.sig

finish
