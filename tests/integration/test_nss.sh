#!/bin/bash
# NSS softokn (Debian libnss3) as a second real token, `wrapped` profile:
# its configuration string through --module-init-args, RFC 5649 blobs
# through its CKM_AES_KEY_WRAP_KWP (its 0x210A is RFC 3394 + PKCS#7),
# wrap-key identity by canary (its AES keys have no CKA_CHECK_VALUE), the
# custody gap refused unless accepted, EC refused, and migration: the wrap
# key of a SoftHSM ceremony restored into NSS from the shares, key files
# made on either token signing on the other. Checked by openssl, apksigner,
# AOSP avbtool's bytes (tests/vectors/avb) and the attacker of issue 11.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
: "${P11_ATTACK:?P11_ATTACK must name the p11_attack program}" "${HSMSIGN_VECTORS:?}"
NSS_MODULE=${NSS_MODULE:-/usr/lib/x86_64-linux-gnu/libsoftokn3.so}
if [ ! -r "$NSS_MODULE" ] || ! command -v certutil >/dev/null; then
    echo "1..0 # SKIP NSS softokn or certutil missing (Debian libnss3, libnss3-tools)"
    exit 77
fi
unset HSMSIGN_PIN HSMSIGN_SO_PIN
NSS_PIN=nss-user-4711
NSS_TOKEN="NSS Certificate DB"

# A fresh NSS database in DIR whose password (the user PIN) is set from a
# file: certutil's argv names the file, never the PIN.
nss_db() {
    mkdir -p "$1"
    printf '%s\n' "$NSS_PIN" >"$1.pw"
    certutil -N -d "sql:$1" -f "$1.pw" || { echo "Bail out! certutil -N failed"; exit 1; }
    rm -f "$1.pw"
}
nss_args() { echo "configdir='sql:$1' certPrefix='' keyPrefix='' secmod='secmod.db' flags="; }
NSSDB=$WORK/nssdb
nss_db "$NSSDB"
# hsmsign on the NSS database $NSSDB, its own audit log.
nss() {
    HSMSIGN_PIN=$NSS_PIN HSMSIGN_MODULE=$NSS_MODULE HSMSIGN_MODULE_INIT_ARGS=$(nss_args "$NSSDB") \
        HSMSIGN_TOKEN=$NSS_TOKEN HSMSIGN_AUDIT_LOG=${NSS_AUDIT:-$WORK/audit-nss} "$HSMSIGN" "$@"
}
gap() { HSMSIGN_ACCEPT_CUSTODY_GAP=1 nss "$@"; }

# --- C_Initialize's configuration string ------------------------------------
expect_fail "without its configuration string NSS softokn does not start (C_Initialize)" 4 \
    "C_Initialize failed" env HSMSIGN_MODULE="$NSS_MODULE" "$HSMSIGN" token list
check "--module-init-args passes it as pReserved: token list" \
    "$HSMSIGN" --module "$NSS_MODULE" --module-init-args "$(nss_args "$NSSDB")" token list
assert "... NSS's database token is listed" grep -q "$NSS_TOKEN" "$WORK/out"
check "HSMSIGN_MODULE_INIT_ARGS does the same" nss token list
mkdir -p .config/hsmsign
printf 'module = %s\nmodule-init-args = %s\n' "$NSS_MODULE" "$(nss_args "$NSSDB")" >cfg
check "config key module-init-args does the same" "$HSMSIGN" --config cfg token list
assert "... NSS's database token is listed" grep -q "$NSS_TOKEN" "$WORK/out"

# --- a SoftHSM ceremony: the shares the NSS token is restored from ----------
shared_softhsm
ceremony_config ceremony.json "NSS migration" pkcs11:token=primary backup 2 alice bob carol
check "SoftHSM ceremony: provision 2-of-3 onto two tokens" \
    hs ceremony provision ceremony.json --out-dir cer
PRIMARY_PIN=$(age -d -i ids/operator.txt cer/credentials/primary-user-pin.age)
assert "the transcript carries the wrap key's canary" python3 -c \
    "import json,base64; assert len(base64.b64decode(json.load(open('cer/transcript.json'))['wrap_key']['canary'])) > 600"
assert "transcript.txt names the canary" grep -q "canary (RFC 5649" cer/transcript.txt
share() { ls cer/shares/*-"$1".share.age; }
ids="--identity ids/alice.txt --identity ids/bob.txt"
soft() { HSMSIGN_PIN=$PRIMARY_PIN "$HSMSIGN" --token primary "$@"; }

# --- restore the same wrap key into NSS -------------------------------------
# NSS's token replaces no token of the ceremony: its own audit key and log.
expect_fail "NSS cannot hold the audit key's custody attributes either: refused, named" 4 \
    "NSS softokn does not keep.*--accept-custody-gap" nss audit init
check "audit init on NSS, accepting the custody gap" gap audit init
expect_fail "restore into NSS is refused without --accept-custody-gap, naming NSS's gap" 4 \
    "NSS softokn does not keep CKA_ALLOWED_MECHANISMS.*--accept-custody-gap" \
    nss ceremony restore --token "$NSS_TOKEN" --transcript cer/transcript.json \
    --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" $ids
check "restore into NSS from 2 shares, accepting the custody gap" \
    gap ceremony restore --token "$NSS_TOKEN" --transcript cer/transcript.json \
    --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" $ids
check "wrapkey show on NSS" gap --json wrapkey show
wk() { python3 -c "import json,sys; print(json.load(open('$WORK/out'))['$1'])"; }
assert "NSS reads and writes RFC 5649 through CKM_AES_KEY_WRAP_KWP (its 0x210A is not 5649)" \
    test "$(wk mechanism)" = CKM_AES_KEY_WRAP_KWP
assert "NSS's AES key has no check value" test "$(wk check_value)" = ""
assert "the custody gap is shown as accepted" test "$(wk custody_gap_accepted)" = True
check "the primary's wrap key on SoftHSM" soft --json wrapkey show
assert "SoftHSM's RFC 5649 mechanism is CKM_AES_KEY_WRAP_PAD" \
    test "$(wk mechanism)" = CKM_AES_KEY_WRAP_PAD

# --- RSA end to end on NSS ----------------------------------------------------
echo "release payload" >data.txt
check "generate rsa2048 on NSS" gap key generate nss-rsa --algorithm rsa2048
hs key show nss-rsa --public-key >nss-rsa.pem
check "sign raw on NSS" gap sign raw --key nss-rsa data.txt n.sig
check "openssl verifies NSS's signature" openssl dgst -sha256 -verify nss-rsa.pem -signature n.sig data.txt
expect_fail "without --accept-custody-gap NSS's wrap key is refused, naming the gap" 1 \
    "NSS softokn enforces no CKA_UNWRAP_TEMPLATE.*--accept-custody-gap" \
    nss sign raw --key nss-rsa data.txt refused.sig
assert "... and nothing was written" test ! -e refused.sig

openssl genrsa -out apk.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in apk.pem -outform DER -out apk.pk8
openssl req -new -x509 -sha256 -key apk.pem -subj "/O=Android/CN=hsmsign nss test" -days 30 -out apk.crt
check "import an RSA key into NSS" gap key import nss-apk --pk8 apk.pk8 --cert apk.crt
check "sign apk on NSS" gap sign apk --key nss-apk "$HSMSIGN_VECTORS/apk/app21.apk" app.apk
check "apksigner verify accepts it" apksigner verify --print-certs app.apk
assert "... with our certificate" grep -q "CN=hsmsign nss test" "$WORK/out"

V=$HSMSIGN_VECTORS/avb
openssl pkcs8 -topk8 -nocrypt -outform DER -in "$V/testkey_rsa4096.pem" -out avb.pk8
openssl req -x509 -new -key "$V/testkey_rsa4096.pem" -subj "/CN=avb" -days 30 -out avb.crt 2>/dev/null
check "import AOSP testkey_rsa4096 into NSS" gap key import avb4096 --pk8 avb.pk8 --cert avb.crt
cp "$V/boot.in.img" boot.img && chmod u+w boot.img
check "avb add-hash-footer on NSS" gap avb add-hash-footer --image boot.img --partition_name boot \
    --partition_size 1048576 --key avb4096 --algorithm SHA256_RSA4096 --rollback_index 5 \
    --salt 0011223344556677889900112233445566778899001122334455667788990011
assert "boot.img is byte-identical to AOSP avbtool's" cmp -s boot.img "$V/boot.img"

# --- EC: refused, naming NSS's limitation ------------------------------------
expect_fail "EC key generation on NSS is refused, naming NSS's limitation" 4 \
    "NSS softokn, which cannot unwrap the EC keys it wraps" gap key generate nss-ec --algorithm ec-p256
assert "... no key file" test ! -e keys/nss-ec.key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in ec.pem -outform DER -out ec.pk8
openssl req -new -x509 -sha256 -key ec.pem -subj "/CN=ec" -days 30 -out ec.crt
expect_fail "EC key import into NSS is refused too" 4 "cannot unwrap the EC keys it wraps" \
    gap key import nss-ec --pk8 ec.pk8 --cert ec.crt

# --- migration: key files move between SoftHSM and NSS through the shares -----
check "generate rsa2048 on SoftHSM" soft key generate soft-rsa --algorithm rsa2048
hs key show soft-rsa --public-key >soft-rsa.pem
check "the SoftHSM key file signs on NSS" gap sign raw --key soft-rsa data.txt s-on-n.sig
check "openssl verifies it" openssl dgst -sha256 -verify soft-rsa.pem -signature s-on-n.sig data.txt
check "the NSS key file signs on SoftHSM" soft sign raw --key nss-rsa data.txt n-on-s.sig
check "openssl verifies it" openssl dgst -sha256 -verify nss-rsa.pem -signature n-on-s.sig data.txt
check "the key imported on NSS signs an APK on SoftHSM" soft sign apk --key nss-apk \
    "$HSMSIGN_VECTORS/apk/app21.apk" app-soft.apk
check "apksigner verify accepts it" apksigner verify app-soft.apk
cp "$V/boot.in.img" boot2.img && chmod u+w boot2.img
check "AVB on SoftHSM with the key imported on NSS" soft avb add-hash-footer --image boot2.img \
    --partition_name boot --partition_size 1048576 --key avb4096 --algorithm SHA256_RSA4096 \
    --rollback_index 5 --salt 0011223344556677889900112233445566778899001122334455667788990011
assert "the same bytes as on NSS and avbtool" cmp -s boot2.img "$V/boot.img"
kf() { python3 -c "import json; print(json.load(open('keys/$1.key'))['wrap'].get('$2', ''))"; }
assert "a key file made on NSS names its wrap key by canary, no check value" \
    test -z "$(kf nss-rsa key_check_value)" -a -n "$(kf nss-rsa canary)"
assert "a key file made on SoftHSM has both" \
    test -n "$(kf soft-rsa key_check_value)" -a -n "$(kf soft-rsa canary)"

# --- wrap-key identity by canary ---------------------------------------------
OTHER=$WORK/nssdb-other
nss_db "$OTHER"
other() { NSSDB=$OTHER NSS_AUDIT=$WORK/audit-other gap "$@"; }
check "another NSS database with an unrelated wrap key" other wrapkey create
expect_fail "a key file made under another wrap key is refused by its canary (NSS key file)" 1 \
    "made under another wrap key.*does not unwrap the key file's canary" \
    other sign raw --key nss-rsa data.txt wrong.sig
expect_fail "... and a SoftHSM key file too" 1 "does not unwrap the key file's canary" \
    other sign raw --key soft-rsa data.txt wrong.sig
assert "... nothing was signed" test ! -e wrong.sig

# --- the attacker of issue 11 against NSS ------------------------------------
blob() { python3 -c "import json,base64,sys; sys.stdout.buffer.write(base64.b64decode(json.load(open('keys/$1.key'))['wrapped_private_key']))"; }
blob nss-rsa >nss-rsa.blob
mkdir -p loot
HSMSIGN_PIN=$NSS_PIN HSMSIGN_MODULE_INIT_ARGS=$(nss_args "$NSSDB") \
    "$P11_ATTACK" "$NSS_MODULE" "$NSS_TOKEN" attack hsmsign-wrap nss-rsa.blob rsa loot >attack.txt 2>&1
rc=$?
sed 's/^/    attack on NSS: /' attack.txt
assert "the attack ran (the control unwrap worked, through KWP)" grep -q "0x210b" attack.txt
assert "NSS does not keep the key in (exit 1: leaks, the stated custody gap)" test "$rc" -eq 1
assert "... the leak is real: the PKCS#8 read out is the signing key" bash -c \
    "for f in loot/*.der; do openssl pkey -inform DER -in \"\$f\" -pubout 2>/dev/null; done | grep -qF \"\$(sed -n 2p nss-rsa.pem)\""
blob soft-rsa >soft-rsa.blob
HSMSIGN_PIN=$PRIMARY_PIN "$P11_ATTACK" "$SOFTHSM_MODULE" primary attack hsmsign-wrap soft-rsa.blob rsa loot-soft >attack-soft.txt 2>&1
assert "the same attack on SoftHSM finds no leak (exit 0)" test $? -eq 0

finish
