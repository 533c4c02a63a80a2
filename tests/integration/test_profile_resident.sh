#!/bin/bash
# The resident profile (issue 14) on SoftHSM, chosen with --profile: no wrap
# key and no shares; signing keys are generated as sensitive,
# non-extractable token objects that key files name by CKA_ID. Raw and APK
# signatures verify with openssl and apksigner, the audit log verifies, the
# attacker with the user PIN (p11_attack) cannot get a key out, wrap-key
# commands and the ceremony are refused, and the signer refuses a token
# object that is missing or whose private key could leave the token.
. "$(dirname "$0")/lib.sh"
: "${P11_ATTACK:?P11_ATTACK must name the p11_attack program}"
FW=/usr/share/android-framework-res/framework-res.apk

hs -q token init --dir "$WORK/tok" --label res >/dev/null || { echo "Bail out! token init"; exit 1; }
export SOFTHSM2_CONF=$WORK/tok/softhsm2.conf

# --- profile choice, shown by token info ---------------------------------------
check "token info (automatic)" hs token info
assert "... SoftHSM has AES key wrap with padding: wrapped" grep -q "profile: *wrapped" "$WORK/out"
check "token info --profile resident" hs --profile resident token info
assert "... shows the resident profile, named by --profile" \
    grep -q "profile: *resident (named by --profile)" "$WORK/out"
assert "... and says there is no wrap key and no shares" grep -q "wrap key: *none, and no shares" "$WORK/out"
check "token info --json, profile from HSMSIGN_PROFILE" env HSMSIGN_PROFILE=resident "$HSMSIGN" --json token info
assert "... JSON: profile resident, no wrap key, no shares" python3 -c "
import json; o = json.load(open('$WORK/out'))
assert o['profile'] == 'resident' and o['profile_requested'] and not o['wrap_key'] and not o['shares'], o
assert any(m['mechanism'] == 'CKM_RSA_PKCS_KEY_PAIR_GEN' and m['max_key_size'] >= 4096 for m in o['mechanisms']), o"
expect_fail "an unknown profile is a usage error naming the known ones" 2 "unknown profile 'tpm'.*resident" \
    hs --profile tpm token info

export HSMSIGN_PROFILE=resident
# --- no wrap key, no shares, no ceremony ---------------------------------------
expect_fail "wrapkey create is refused on the resident profile" 2 "resident profile.*no wrap key and no shares" \
    hs wrapkey create
expect_fail "wrapkey show is refused too" 2 "no wrap key and no shares" hs wrapkey show
ceremony_config c.json "Resident" "pkcs11:token=res" "res2" 2 alice bob carol
expect_fail "ceremony provision is refused before anything changes" 2 "no wrap key and no shares.*provision" \
    hs ceremony provision c.json --out-dir cer
assert "... and wrote nothing" test ! -e cer
check "audit init makes the audit key and the log (no wrap key needed)" hs audit init

# --- keys -------------------------------------------------------------------------
check "generate RSA-2048 as a token object" hs key generate r2048 --algorithm rsa2048
check "generate EC P-256 as a token object" hs key generate p256 --algorithm ec-p256
assert "the key file says resident and names the object by CKA_ID, no wrapped blob" python3 -c "
import json
for k in ('r2048', 'p256'):
    o = json.load(open('keys/%s.key' % k))
    assert o['profile'] == 'resident' and len(o['token_key']['id']) == 32, o
    assert o['token_key']['label'] == k and 'wrapped_private_key' not in o and 'wrap' not in o, o"
token_objects >objects.txt
assert "the private keys are sensitive and never extractable token objects" \
    test "$(grep -c 'Access: *sensitive, always sensitive, never extractable' objects.txt)" -ge 3
assert "... and only sign (no decrypt, unwrap or derive)" \
    python3 -c "
import re
t = open('objects.txt').read()
for o in re.split(r'\n(?=\S)', t):
    if o.startswith('Private Key Object'):
        assert re.search(r'Usage: *(.*)', o).group(1).strip() == 'sign', o"

# --- signing ----------------------------------------------------------------------
head -c 100000 /dev/urandom >data.bin
for k in r2048 p256; do
    check "sign raw with $k" hs sign raw --key "$k" data.bin "$k.sig"
    check "openssl verifies the $k signature" \
        openssl dgst -sha256 -verify "$(pubkey "$k")" -signature "$k.sig" data.bin
done
cp "$FW" in.apk
check "sign framework-res.apk with the resident RSA key" hs sign apk --key r2048 \
    --v1-signing false --v2-signing true --v3-signing true --v4-signing false in.apk out.apk
check "apksigner verify accepts it" apksigner verify --print-certs out.apk
assert "apksigner names the resident key's certificate" grep -q "CN=r2048" "$WORK/out"

# --- the attacker with the user PIN -----------------------------------------------
check "p11_attack: the resident RSA key cannot be read, made extractable, copied or wrapped out" \
    "$P11_ATTACK" "$SOFTHSM_MODULE" res attack-resident r2048 rsa "$WORK/loot"
sed 's/^/    /' "$WORK/out"
assert "... SoftHSM let no attribute change either" grep -q "^6 blocked, 0 weakened, 0 leaked" "$WORK/out"
check "p11_attack: nor the resident EC key" "$P11_ATTACK" "$SOFTHSM_MODULE" res attack-resident p256 ec "$WORK/loot"
assert "nothing was recovered" test ! -e "$WORK/loot"

# --- import, and the signer's checks of the token object -------------------------------
openssl genrsa -out imp.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in imp.pem -outform DER -out imp.pk8
openssl req -new -x509 -sha256 -key imp.pem -subj "/CN=imported" -days 30 -out imp.crt
check "key import on resident: a sensitive, non-extractable token object (SoftHSM takes it)" \
    hs key import imp --pk8 imp.pk8 --cert imp.crt
check "sign raw with the imported key" hs sign raw --key imp data.bin imp.sig
check "openssl verifies it" openssl pkeyutl -verify -pubin -inkey "$(pubkey imp)" -rawin -digest sha256 \
    -in data.bin -sigfile imp.sig
id=$(python3 -c "import json; print(json.load(open('keys/imp.key'))['token_key']['id'])")
p11() { pkcs11-tool --module "$SOFTHSM_MODULE" --token-label res --login --pin env:HSMSIGN_PIN "$@" >/dev/null 2>&1; }
check "(test) replace the private object by one a PIN holder can read out" sh -c "
    pkcs11-tool --module '$SOFTHSM_MODULE' --token-label res --login --pin env:HSMSIGN_PIN --delete-object --type privkey --id $id >/dev/null 2>&1 &&
    openssl pkcs8 -topk8 -nocrypt -in imp.pem -outform DER -out imp-again.der &&
    pkcs11-tool --module '$SOFTHSM_MODULE' --token-label res --login --pin env:HSMSIGN_PIN --write-object imp-again.der \
        --type privkey --id $id --label imp --usage-sign --private --extractable >/dev/null 2>&1"
rm -f x.sig
expect_fail "the signer refuses a resident key whose private key could leave the token" 1 \
    "key 'imp' on token 'res' has CKA_(SENSITIVE false|EXTRACTABLE true).*refuses" hs sign raw --key imp data.bin x.sig
assert "... and wrote no signature" test ! -e x.sig
p11 --delete-object --type privkey --id "$id"
expect_fail "a key file whose token object is gone is 'not found', naming the CKA_ID" 8 \
    "names the private key object with CKA_ID $id, which token 'res' does not hold" hs sign raw --key imp data.bin x.sig
cp keys/p256.key p256.key.orig
# The checksum is no signature: someone who can write the key store can
# point a key file at another object, checksum and all.
python3 - <<'PY'
import hashlib, json
o = json.load(open('keys/p256.key')); r = json.load(open('keys/r2048.key'))
o['token_key']['id'] = r['token_key']['id']
del o['checksum']
canon = json.dumps(o, sort_keys=True, separators=(',', ':'), ensure_ascii=True)
o['checksum'] = 'sha256:' + hashlib.sha256(canon.encode()).hexdigest()
json.dump(o, open('keys/p256.key', 'w'))
PY
rm -f x.sig
expect_fail "a key file pointed at another key's object is refused: the token's public key differs" 1 \
    "key 'p256': the public key on token 'res' is not the one in" hs sign raw --key p256 data.bin x.sig
assert "... and wrote no signature" test ! -e x.sig
cp p256.key.orig keys/p256.key

# --- profiles do not mix ------------------------------------------------------------
# A wrapped key, made on a token of its own, and its key file brought here.
(
    export HSMSIGN_PROFILE=wrapped HSMSIGN_KEYSTORE=$WORK/wkeys HSMSIGN_AUDIT_LOG=$WORK/waudit
    setup_token wtok wrapped >/dev/null
    hs -q key generate wkey --algorithm ec-p256 >/dev/null
) || { echo "Bail out! cannot make a wrapped key"; exit 1; }
cp wkeys/wkey.key keys/
assert "wrapped key files record their profile too" python3 -c "
import json; assert json.load(open('keys/wkey.key'))['profile'] == 'wrapped'"
expect_fail "a wrapped key file is refused on the resident profile, naming both" 2 \
    "key 'wkey' .* belongs to the wrapped profile; token 'res' is used with the resident profile" \
    hs sign raw --key wkey data.bin x.sig
rm keys/wkey.key

check "audit verify: every key operation and signature is in the signed log" hs audit verify
hs audit show >log.txt 2>&1
assert "the log has the generations and the signatures" \
    test "$(grep -c generate log.txt)" -ge 2 -a "$(grep -c 'sign' log.txt)" -ge 4
finish
