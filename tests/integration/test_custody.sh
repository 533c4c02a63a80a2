#!/bin/bash
# Issue 11: no signing key can be read out of the token by someone holding
# the user PIN and a key file. The attacker (p11_attack, raw PKCS#11) tries
# to unwrap key files' blobs as extractable, non-sensitive, token objects,
# generic secrets, through other AES modes, and to change or copy the
# unwrapped key, the wrap key and the audit key, against wrap keys from all
# three paths that make one: `wrapkey create`, `ceremony provision`,
# `ceremony restore`. Every attempt must fail while hsmsign keeps signing
# with the same key files (checked by openssl).
#
# That the attack can fail is shown in the same run: a token holding the
# same wrap key as the ceremony's, made with the attributes hsmsign used
# before (no unwrap template), gives up an imported key, byte-identical to
# its .pk8; hsmsign refuses to use that wrap key, and `ceremony restore
# --replace-wrap-key` closes the hole with the key files unchanged.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
: "${P11_ATTACK:?P11_ATTACK must name the p11_attack program}"
SHARES_PY=$HERE/ceremony_shares.py
unset HSMSIGN_PIN HSMSIGN_SO_PIN

shared_softhsm

# blob KEYSTORE NAME: the key file's wrapped private key, raw.
blob() {
    python3 -c 'import base64,json,sys; sys.stdout.buffer.write(base64.b64decode(json.load(open(sys.argv[1]))["wrapped_private_key"]))' \
        "$1/$2.key" >"$WORK/$2.blob"
    echo "$WORK/$2.blob"
}
# attack TOKEN KEYSTORE NAME TYPE: every attempt must be blocked.
attack_blocked() {
    local token=$1 ks=$2 name=$3 type=$4 out=$WORK/loot-$1-$3
    mkdir -p "$out"
    "$P11_ATTACK" "$SOFTHSM_MODULE" "$token" attack hsmsign-wrap "$(blob "$ks" "$name")" "$type" "$out" \
        >"$WORK/attack.out" 2>&1
    local rc=$?
    if [ $rc -eq 0 ] && grep -q "^control: the legitimate unwrap works" "$WORK/attack.out" \
        && ! grep -q "^LEAK" "$WORK/attack.out"; then
        pass "token '$token', key '$name' ($type): $(tail -1 "$WORK/attack.out")"
    else
        fail "token '$token', key '$name' ($type): attack exit $rc"
        sed 's/^/    /' "$WORK/attack.out"
    fi
    assert "token '$token', key '$name': nothing recovered" test -z "$(ls -A "$out")"
}
# signs TOKEN KEYSTORE NAME: hsmsign still signs with the key file, openssl verifies.
signs() {
    local token=$1 ks=$2 name=$3
    check "token '$token': hsmsign signs with key '$name'" hs --token "$token" --keystore "$ks" \
        --audit-log "$WORK/audit-$token" sign raw --key "$name" data.txt "sig-$token-$name"
    hs --keystore "$ks" key show "$name" --public-key >"$WORK/$name.pub.pem"
    check "openssl verifies that signature" \
        openssl dgst -sha256 -verify "$WORK/$name.pub.pem" -signature "sig-$token-$name" data.txt
}
echo "signed data" >data.txt

# An existing AOSP-style key to import: PKCS#8 (.pk8, DER) and its certificate.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER -out imp.pk8 2>/dev/null
openssl req -new -x509 -key imp.pk8 -keyform DER -subj /CN=imp -days 30 -out imp.x509.pem 2>/dev/null
assert "test key made" test -s imp.pk8 -a -s imp.x509.pem

# --- path 1: wrapkey create (a development token) ------------------------------
export HSMSIGN_PIN=dev-user-4711 HSMSIGN_SO_PIN=dev-so-4711
check "dev token" hs token init --label dev
check "wrapkey create" hs --token dev wrapkey create
check "key generate (ec-p256)" hs --token dev --keystore devkeys key generate gen --algorithm ec-p256
check "key import (rsa2048 .pk8)" hs --token dev --keystore devkeys key import imp --pk8 imp.pk8 --cert imp.x509.pem
attack_blocked dev devkeys gen ec
attack_blocked dev devkeys imp rsa
signs dev devkeys gen
signs dev devkeys imp
# attack_audit TOKEN: the audit key signs and does nothing else.
attack_audit() {
    "$P11_ATTACK" "$SOFTHSM_MODULE" "$1" attack-audit >"$WORK/attack.out" 2>&1
    local rc=$?
    if [ $rc -eq 0 ]; then pass "token '$1', audit key: $(tail -1 "$WORK/attack.out")"; else
        fail "token '$1', audit key: attack exit $rc"; sed 's/^/    /' "$WORK/attack.out"; fi
}
attack_audit dev
check "wrapkey show" hs --token dev wrapkey show
assert "wrapkey show says the custody attributes are in place" grep -q "custody: *unwrap template" "$WORK/out"

# --- path 2: ceremony provision -------------------------------------------------
ceremony_config ceremony.json "Custody test" pkcs11:token=primary pkcs11:token=backup 2 alice bob carol
check "provision a primary and a backup" hs --audit-log audit2 ceremony provision ceremony.json --out-dir cer
user_pin() { age -d -i ids/operator.txt "cer/credentials/$1-user-pin.age"; }
share() { ls cer/shares/*-"$1".share.age; }
for tok in primary backup; do
    export HSMSIGN_PIN
    HSMSIGN_PIN=$(user_pin $tok)
    if [ $tok = primary ]; then
        check "key generate on the primary" hs --token primary --audit-log audit-primary --keystore keys \
            key generate gen --algorithm ec-p256
        check "key import on the primary" hs --token primary --audit-log audit-primary --keystore keys \
            key import imp --pk8 imp.pk8 --cert imp.x509.pem
    else
        # Each log belongs to one token's audit key; the backup has none yet.
        check "an audit key and log for the backup" hs --token backup --audit-log audit-backup audit init
    fi
    attack_blocked $tok keys gen ec
    attack_blocked $tok keys imp rsa
    signs $tok keys imp
done
HSMSIGN_PIN=$(user_pin primary) attack_audit primary

# --- path 3: ceremony restore -----------------------------------------------------
export HSMSIGN_PIN=restore-user-4711 HSMSIGN_SO_PIN=restore-so-4711
check "a new token" hs token init --label restored
check "its audit key and log" hs --token restored --audit-log audit-restored audit init
check "ceremony restore" hs --audit-log audit-restored ceremony restore --token restored --transcript cer/transcript.json --audit-key cer/audit-key.pem \
    --share "$(share alice)" --share "$(share carol)" --identity ids/alice.txt --identity ids/carol.txt
attack_blocked restored keys gen ec
attack_blocked restored keys imp rsa
signs restored keys gen
signs restored keys imp

# --- the attack works against a wrap key without the template -------------------
# The same wrap key as the ceremony's, rebuilt from two shares by an
# independent reader of the share format, put into a token with the
# attributes hsmsign gave wrap keys before: an old deployment.
mkdir -p plain
for h in alice bob; do age -d -i "ids/$h.txt" -o "plain/$h.share" "$(share $h)"; done
wrap_hex=$(python3 "$SHARES_PY" recover plain/alice.share plain/bob.share)
assert "the wrap key rebuilt from two shares" test ${#wrap_hex} -eq 64
export HSMSIGN_PIN=legacy-user-4711 HSMSIGN_SO_PIN=legacy-so-4711
check "a token for the old deployment" hs token init --label legacy
check "its audit key and log" hs --token legacy --audit-log audit-legacy audit init
check "an old-style wrap key (no unwrap template)" \
    "$P11_ATTACK" "$SOFTHSM_MODULE" legacy make-weak-wrapkey hsmsign-wrap "$wrap_hex"
unset wrap_hex
mkdir -p loot-legacy
"$P11_ATTACK" "$SOFTHSM_MODULE" legacy attack hsmsign-wrap "$(blob keys imp)" rsa "$WORK/loot-legacy" \
    >"$WORK/attack.out" 2>&1
rc=$?
assert "against the old wrap key the attack reports leaks (exit $rc)" test $rc -eq 1
assert "... the extractable unwrap leaks" grep -q "^LEAK: C_UnwrapKey(private key, CKA_EXTRACTABLE=true)" "$WORK/attack.out"
assert "... the non-sensitive unwrap leaks" grep -q "^LEAK: C_UnwrapKey(private key, CKA_SENSITIVE=false)" "$WORK/attack.out"
assert "... the token-object unwrap leaks" grep -q "^LEAK: C_UnwrapKey(private key, CKA_TOKEN=true)" "$WORK/attack.out"
assert "... the generic-secret unwrap leaks" grep -q "^LEAK: C_UnwrapKey(generic secret: the PKCS#8" "$WORK/attack.out"
# SoftHSM re-encodes the PKCS#8 of the components hsmsign imported, so the
# keys are compared as openssl prints them: every RSA component.
openssl pkey -inform DER -in imp.pk8 -noout -text >imp.txt 2>/dev/null
openssl pkey -inform DER -in loot-legacy/pkcs8.der -noout -text >loot.txt 2>/dev/null
assert "... and what it recovers is the imported .pk8's private key, every component" \
    bash -c "grep -q privateExponent imp.txt && cmp -s imp.txt loot.txt"
grep '^LEAK' "$WORK/attack.out" | sed 's/^/    /'

expect_fail "hsmsign refuses to sign under the old wrap key" 1 \
    "refusing to use wrap key 'hsmsign-wrap': it has no CKA_UNWRAP_TEMPLATE.*--replace-wrap-key" \
    hs --token legacy --audit-log audit-legacy --keystore keys sign raw --key imp data.txt refused.sig
assert "... and writes no signature" test ! -e refused.sig
check "wrapkey show still shows it" hs --token legacy wrapkey show
assert "... as UNPROTECTED" grep -q "custody: *UNPROTECTED: it has no CKA_UNWRAP_TEMPLATE" "$WORK/out"
expect_fail "a plain restore into the legacy token is refused (it has a wrap key)" 9 "already has a wrap key" \
    hs --audit-log audit-legacy ceremony restore --token legacy --transcript cer/transcript.json --audit-key cer/audit-key.pem \
    --share "$(share alice)" --share "$(share bob)" --identity ids/alice.txt --identity ids/bob.txt
check "ceremony restore --replace-wrap-key" hs --audit-log audit-legacy ceremony restore --replace-wrap-key \
    --token legacy --transcript cer/transcript.json --audit-key cer/audit-key.pem \
    --share "$(share alice)" --share "$(share bob)" --identity ids/alice.txt --identity ids/bob.txt
assert "... says the unprotected copy is destroyed" grep -q "unprotected copy is destroyed" "$WORK/out"
check "... running it again changes nothing" hs --audit-log audit-legacy ceremony restore --replace-wrap-key \
    --token legacy --transcript cer/transcript.json --audit-key cer/audit-key.pem \
    --share "$(share alice)" --share "$(share bob)" --identity ids/alice.txt --identity ids/bob.txt
check "wrapkey show after the upgrade" hs --token legacy wrapkey show
assert "... protected" grep -q "custody: *unwrap template" "$WORK/out"
assert "... one wrap key on the token" test "$(pkcs11-tool --module "$SOFTHSM_MODULE" --token-label legacy \
    --login --pin env:HSMSIGN_PIN --list-objects --type secrkey 2>/dev/null | grep -c 'label: *hsmsign-wrap')" -eq 1
rm -rf loot-legacy && mkdir loot-legacy
attack_blocked legacy keys imp rsa
attack_blocked legacy keys gen ec
signs legacy keys imp
signs legacy keys gen
assert "the audit log records the replacement" grep -q '"purpose":"ceremony-replace-wrap-key"' audit-legacy/entries.jsonl

# A key with another check value is never replaced.
check "another token with an unrelated old-style wrap key" hs token init --label other
check "its audit key and log" hs --token other --audit-log audit-other audit init
check "... made" "$P11_ATTACK" "$SOFTHSM_MODULE" other make-weak-wrapkey hsmsign-wrap "$(openssl rand -hex 32)"
expect_fail "--replace-wrap-key refuses a different key" 1 "refusing to replace a different key" \
    hs --audit-log audit-other ceremony restore --replace-wrap-key --token other --transcript cer/transcript.json --audit-key cer/audit-key.pem \
    --share "$(share alice)" --share "$(share bob)" --identity ids/alice.txt --identity ids/bob.txt
finish
