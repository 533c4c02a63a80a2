#!/bin/bash
# Key generation, wrapping, signing: every algorithm, checked by openssl
# and pkcs11-tool (OpenSC), never by hsmsign itself.
. "$(dirname "$0")/lib.sh"
setup_token

echo "payload for raw signatures" >data.txt
head -c 3000000 /dev/urandom >big.bin

for alg in rsa2048 rsa3072 rsa4096 ec-p256; do
    check "generate $alg" hs key generate "k-$alg" --algorithm "$alg" --subject "CN=k-$alg, O=hsmsign test, C=US"
    hs key show "k-$alg" --cert >"k-$alg.crt"
    check "openssl accepts the HSM-signed self-signed certificate of $alg" \
        openssl verify -CAfile "k-$alg.crt" "k-$alg.crt"
    assert "certificate subject of $alg" grep -q "CN = k-$alg" <(openssl x509 -in "k-$alg.crt" -noout -subject)
    assert "certificate and key file agree on the public key of $alg" \
        cmp -s <(openssl x509 -in "k-$alg.crt" -pubkey -noout) "$(pubkey "k-$alg")"
done

# Each signature algorithm, verified with openssl dgst.
sig_check() { # key alg file dgst [sigopts...]
    local key=$1 alg=$2 file=$3 dgst=$4; shift 4
    check "sign raw $alg with $key" hs sign raw --key "$key" --algorithm "$alg" "$file" "$file.$key.$alg.sig"
    check "openssl verifies $alg by $key over $file" \
        openssl dgst "-$dgst" "$@" -verify "$(pubkey "$key")" -signature "$file.$key.$alg.sig" "$file"
}
for k in k-rsa2048 k-rsa3072 k-rsa4096; do
    sig_check "$k" rsa-pkcs1-sha256 data.txt sha256
done
sig_check k-rsa2048 rsa-pkcs1-sha512 data.txt sha512
sig_check k-rsa2048 rsa-pkcs1-sha1 data.txt sha1
sig_check k-rsa2048 rsa-pss-sha256 data.txt sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1
sig_check k-rsa4096 rsa-pss-sha512 data.txt sha512 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1
sig_check k-ec-p256 ecdsa-p256-sha256 data.txt sha256
sig_check k-rsa2048 rsa-pkcs1-sha256 big.bin sha256
sig_check k-ec-p256 ecdsa-p256-sha256 big.bin sha256

# A deliberately wrong check must fail, so the checks above can fail.
head -c 100 big.bin >other.bin
expect_fail "openssl rejects the signature over other bytes" nonzero "Verification failure|bad signature" \
    openssl dgst -sha256 -verify "$(pubkey k-rsa2048)" -signature big.bin.k-rsa2048.rsa-pkcs1-sha256.sig other.bin

# The token keeps only the wrap key and the audit key pair, however many
# signing keys exist.
token_objects >objects.txt
assert "the token holds exactly three objects after generating and signing" \
    test "$(grep -c 'Object;' objects.txt)" -eq 3
assert "one is the AES wrap key" grep -q "Secret Key Object; AES length 32" objects.txt
assert "no signing key on the token (only hsmsign-wrap and hsmsign-audit)" test -z "$(token_other_objects)"

# Key files hold no plaintext private key, and list/show work without a token.
assert "key files contain no PEM private key" bash -c "! grep -l 'PRIVATE KEY' keys/*.key"
check "key list --json" hs --json key list
assert "key list shows the four keys" test "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/out")" -eq 4
check "key show summary" hs key show k-rsa2048
assert "key show names the algorithm" grep -q "rsa2048" "$WORK/out"

# Existing keys are never overwritten.
cp keys/k-rsa2048.key before.key
expect_fail "generating over an existing key is refused" 9 "already exists" \
    hs key generate k-rsa2048 --algorithm rsa2048
assert "the existing key file is unchanged" cmp -s before.key keys/k-rsa2048.key

# The Android set: nine keys, AVB key RSA-4096, meaningful subjects.
check "generate-set android" hs key generate-set android --device sargo --organization "Example OS"
for k in releasekey platform shared media networkstack sdk_sandbox bluetooth nfc avb-sargo; do
    assert "set has $k" test -f "keys/$k.key"
done
assert "avb-sargo is RSA-4096" grep -q '"algorithm": "rsa4096"' keys/avb-sargo.key
hs key show platform --cert | openssl x509 -noout -subject >subj.txt
assert "platform subject names the device and role" grep -q "OU = sargo, CN = platform" subj.txt
check "key show --avb-public-key" hs key show avb-sargo --avb-public-key --output avb-sargo.avbpubkey
assert "AVB public key blob of RSA-4096: 8 + 2 x 512 bytes" test "$(stat -c %s avb-sargo.avbpubkey)" -eq 1032
assert "its header says 4096 bits (big-endian)" test "$(head -c 4 avb-sargo.avbpubkey | od -An -tx1 | tr -d ' ')" = 00001000
cp keys/platform.key platform.before
check "generate-set again keeps every key" hs key generate-set android --device sargo
assert "platform.key untouched by the second run" cmp -s platform.before keys/platform.key
assert "second run reports 0 generated" grep -q "0 generated, 9 already present" "$WORK/out"
token_objects >objects2.txt
assert "still three objects on the token after 13 keys" test "$(grep -c 'Object;' objects2.txt)" -eq 3
assert "and none of them a signing key" test -z "$(token_other_objects)"

# Every signature and key operation is in the audit log.
assert "audit log has one entry per raw signature" \
    test "$(grep -c '"purpose":"raw"' audit/entries.jsonl)" -eq 10
assert "audit log records each generation" test "$(grep -c '"op":"generate"' audit/entries.jsonl)" -eq 13
# Control: a key left on the token is noticed by the checks above.
pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin env:HSMSIGN_PIN --keypairgen \
    --key-type EC:prime256v1 --label stray >/dev/null 2>&1
assert "control: token_other_objects lists the stray key" grep -q stray <(token_other_objects)
finish
