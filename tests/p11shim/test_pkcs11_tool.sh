#!/bin/bash
# The shim as seen by an independent PKCS#11 consumer (OpenSC pkcs11-tool):
# listing slots, a key pair generated and a signature made through the
# shim that openssl verifies, an injected fault that pkcs11-tool reports by
# name, and pkcs11-tool's own recovery from a failed C_Sign.
set -euo pipefail

: "${HSMSIGN_P11SHIM:?}" "${HSMSIGN_SOFTHSM_MODULE:?}"
PKCS11_TOOL=${PKCS11_TOOL:-pkcs11-tool}
SOFTHSM2_UTIL=${SOFTHSM2_UTIL:-softhsm2-util}

work=$(mktemp -d "${TMPDIR:-/tmp}/p11shim-tool-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$work" > "$work/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm2.conf
export HSMSIGN_SHIM_MODULE=$HSMSIGN_SOFTHSM_MODULE
unset HSMSIGN_SHIM_FAIL_AT HSMSIGN_SHIM_FAIL_FUNC HSMSIGN_SHIM_FAIL_RV HSMSIGN_SHIM_FAIL_MODE \
    HSMSIGN_SHIM_LATENCY_MS HSMSIGN_SHIM_LATENCY HSMSIGN_SHIM_MAX_SESSIONS \
    HSMSIGN_SHIM_IDLE_TIMEOUT_MS HSMSIGN_SHIM_COUNTS HSMSIGN_SHIM_PERSONALITY \
    HSMSIGN_SHIM_YUBIHSM_FIRMWARE HSMSIGN_SHIM_YUBIHSM_AUTH_KEYS YUBIHSM_PKCS11_CONF

"$SOFTHSM2_UTIL" --init-token --free --label shimtool --so-pin 12345678 --pin 1234 >/dev/null

fail() { echo "FAIL: $*" >&2; exit 1; }
tool() { "$PKCS11_TOOL" --module "$HSMSIGN_P11SHIM" "$@"; }

# 1. slots and token, as forwarded from SoftHSM
HSMSIGN_SHIM_COUNTS=$work/list.json tool --list-slots > "$work/slots.txt"
grep -q 'token label *: shimtool' "$work/slots.txt" || { cat "$work/slots.txt"; fail "token not listed"; }
grep -q '"finalized":true' "$work/list.json" || fail "pkcs11-tool run did not end with C_Finalize"
grep -q '"C_GetSlotList":[1-9]' "$work/list.json" || fail "C_GetSlotList not counted"

# 2. key pair and signature through the shim, verified by openssl
tool --login --pin 1234 --keypairgen --key-type rsa:2048 --id 01 --label k \
    >/dev/null 2>&1 || fail "keypairgen through the shim"
tool --read-object --type pubkey --id 01 -o "$work/pub.der" >/dev/null 2>&1 ||
    fail "reading the public key through the shim"
printf 'signed through the shim\n' > "$work/msg"
tool --login --pin 1234 --sign --id 01 --mechanism SHA256-RSA-PKCS \
    -i "$work/msg" -o "$work/msg.sig" >/dev/null 2>&1 || fail "signing through the shim"
openssl pkey -pubin -inform DER -in "$work/pub.der" -out "$work/pub.pem"
openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/msg.sig" "$work/msg" \
    >/dev/null || fail "openssl rejects the signature made through the shim"

# 3. an injected fault reaches pkcs11-tool with the requested code
if HSMSIGN_SHIM_FAIL_FUNC=C_SignInit HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_REMOVED \
    HSMSIGN_SHIM_COUNTS=$work/fault.json \
    tool --login --pin 1234 --sign --id 01 --mechanism SHA256-RSA-PKCS \
    -i "$work/msg" -o "$work/fault.sig" > "$work/fault.txt" 2>&1; then
    fail "C_SignInit fault was not reported"
fi
grep -q 'C_SignInit.*CKR_DEVICE_REMOVED' "$work/fault.txt" || { cat "$work/fault.txt"; fail "wrong error reported"; }
grep -q '"faults_injected":1' "$work/fault.json" || fail "fault not counted"
grep -q '"finalized":false' "$work/fault.json" && fail "counts say pkcs11-tool skipped C_Finalize"

# 4. after a failed C_Sign pkcs11-tool retries multi-part (C_SignInit,
#    C_SignUpdate, C_SignFinal); that only works because the shim ended the
#    real operation behind the faulted C_Sign, as a failing token would.
HSMSIGN_SHIM_FAIL_FUNC=C_Sign HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_ERROR \
    HSMSIGN_SHIM_COUNTS=$work/retry.json \
    tool --login --pin 1234 --sign --id 01 --mechanism SHA256-RSA-PKCS \
    -i "$work/msg" -o "$work/retry.sig" > "$work/retry.txt" 2>&1 ||
    { cat "$work/retry.txt"; fail "pkcs11-tool could not recover from a C_Sign fault"; }
grep -q '"C_SignFinal":1' "$work/retry.json" || fail "expected the multi-part retry"
openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/retry.sig" "$work/msg" \
    >/dev/null || fail "openssl rejects the signature made after the fault"

# 5. the yubihsm2 personality as pkcs11-tool sees it: Yubico's token, the
#    vendor CCM wrap as the only wrap mechanism, and no start without a
#    connector (pkcs11-tool passes no pReserved: the file is the way).
printf 'connector = http://127.0.0.1:12345\n' > "$work/yubihsm_pkcs11.conf"
yh() { HSMSIGN_SHIM_PERSONALITY=yubihsm2 YUBIHSM_PKCS11_CONF=$work/yubihsm_pkcs11.conf tool "$@"; }
yh --list-mechanisms > "$work/yh-mechs.txt" 2>&1 || { cat "$work/yh-mechs.txt"; fail "yubihsm2 mechanism list"; }
grep -q 'mechtype-0xD9554204.*wrap, unwrap' "$work/yh-mechs.txt" ||
    { cat "$work/yh-mechs.txt"; fail "CKM_YUBICO_AES_CCM_WRAP not listed"; }
if grep -q 'AES-KEY-WRAP' "$work/yh-mechs.txt"; then
    cat "$work/yh-mechs.txt"; fail "SoftHSM's AES key wrap is still offered"
fi
[ "$(grep -c 'wrap' "$work/yh-mechs.txt")" = 1 ] || { cat "$work/yh-mechs.txt"; fail "another wrap mechanism"; }
yh --list-slots > "$work/yh-slots.txt" 2>&1 || fail "yubihsm2 slot list"
grep -q 'token manufacturer : Yubico (www.yubico.com)' "$work/yh-slots.txt" &&
    grep -q 'firmware version   : 2.40' "$work/yh-slots.txt" ||
    { cat "$work/yh-slots.txt"; fail "not Yubico's token info"; }
if HSMSIGN_SHIM_PERSONALITY=yubihsm2 tool --list-slots > "$work/yh-noconf.txt" 2>&1; then
    fail "the yubihsm2 personality started without a connector"
fi
grep -q 'C_Initialize.*CKR_ARGUMENTS_BAD' "$work/yh-noconf.txt" ||
    { cat "$work/yh-noconf.txt"; fail "wrong error without a connector"; }
echo "ok: pkcs11-tool lists, signs (openssl-verified), sees an injected fault, recovers from another;"
echo "ok: with the yubihsm2 personality it lists Yubico's token and CKM_YUBICO_AES_CCM_WRAP only"
