#!/bin/bash
# hsmsign key export-releasetools: a releasetools key directory with no
# secret (certificate, public PEM, .avbpubkey, placeholder .pk8), that never
# overwrites a real private key and writes nothing for a bad request.
. "$(dirname "$0")/lib.sh"
setup_token

openssl genrsa -out r.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -outform DER -in r.pem -out r.pk8
openssl req -x509 -new -key r.pem -subj /CN=releasekey -days 30 -out r.x509.pem 2>/dev/null
check "import releasekey" hs -q key import releasekey --pk8 r.pk8 --cert r.x509.pem
check "generate platform (EC P-256)" hs -q key generate platform --algorithm ec-p256

check "export every key" hs key export-releasetools kd
assert "files: certificate, public key, placeholder for both; .avbpubkey for RSA only" \
    test "$(cd kd && ls | tr '\n' ' ')" = \
    "platform.pem platform.pk8 platform.x509.pem releasekey.avbpubkey releasekey.pem releasekey.pk8 releasekey.x509.pem "
for k in releasekey platform; do
    hs key show "$k" --cert >want.crt
    hs key show "$k" --public-key >want.pub
    assert "$k.x509.pem is key show --cert" cmp -s "kd/$k.x509.pem" want.crt
    assert "$k.pem is key show --public-key" cmp -s "kd/$k.pem" want.pub
    openssl pkcs8 -inform DER -nocrypt -in "kd/$k.pk8" >/dev/null 2>&1
    assert "$k.pk8 is no key to openssl (DER)" test $? -ne 0
    openssl pkey -in "kd/$k.pk8" >/dev/null 2>&1
    assert "$k.pk8 is no key to openssl (PEM)" test $? -ne 0
    assert "$k.pk8 says what it is and names the key" \
        grep -qx "key: $k" "kd/$k.pk8"
done
hs key show releasekey --avb-public-key --output want.avbpubkey
assert "releasekey.avbpubkey is key show --avb-public-key" cmp -s kd/releasekey.avbpubkey want.avbpubkey
assert "no private key material anywhere in the directory" \
    test -z "$(grep -l 'PRIVATE KEY' kd/*)"
expect_fail "the placeholder cannot be imported as a key" 2 "placeholder written by .hsmsign key export-releasetools. for the key 'releasekey'" \
    hs key import again --pk8 kd/releasekey.pk8 --cert kd/releasekey.x509.pem

check "export again over its own placeholders" hs key export-releasetools kd
check "--keys: only the keys named" hs key export-releasetools --keys platform only
assert "--keys platform wrote platform's files only" test "$(ls only | tr '\n' ' ')" = "platform.pem platform.pk8 platform.x509.pem "

expect_fail "unknown key in --keys" 8 "nosuch" hs key export-releasetools --keys platform,nosuch none
assert "nothing written for a bad --keys (directory not created)" test ! -e none
mkdir real && cp r.pk8 real/releasekey.pk8
expect_fail "a real private key in DIR is never overwritten" 9 "real/releasekey.pk8 exists and is not an hsmsign placeholder" \
    hs key export-releasetools real
assert "the real .pk8 is unchanged, and nothing written next to it" \
    test "$(cmp -s r.pk8 real/releasekey.pk8 && echo same) $(ls real | tr '\n' ' ')" = "same releasekey.pk8 "
expect_fail "DIR inside the key store refused" 2 "key store" hs key export-releasetools "$HSMSIGN_KEYSTORE/rt"
expect_fail "no DIR" 2 "exactly one DIR" hs key export-releasetools
check "--help" hs key export-releasetools --help
finish
