#!/bin/bash
# Importing existing AOSP keys (.pk8 + .x509.pem): the key ends up wrapped,
# signs, and its plaintext bytes appear in no file hsmsign wrote.
. "$(dirname "$0")/lib.sh"
setup_token

# AOSP-style key pairs made by openssl, as development/tools/make_key does.
openssl genrsa -out rsa.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in rsa.pem -outform DER -out rsa.pk8
openssl req -new -x509 -sha256 -key rsa.pem -days 365 -subj "/C=US/O=Android/CN=Android" -out rsa.x509.pem
openssl ecparam -name prime256v1 -genkey -noout -out ec.pem
openssl pkcs8 -topk8 -nocrypt -in ec.pem -outform DER -out ec.pk8
openssl req -new -x509 -sha256 -key ec.pem -days 365 -subj "/CN=ec" -out ec.x509.pem
openssl genrsa -out other.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in other.pem -outform DER -out other.pk8

echo "data" >data.txt
check "import RSA .pk8" hs key import releasekey --pk8 rsa.pk8 --cert rsa.x509.pem
assert "import warns to destroy the plaintext file" grep -q "shred -u rsa.pk8" "$WORK/err"
check "import EC .pk8" hs key import eckey --pk8 ec.pk8 --cert ec.x509.pem
check "import PEM private key" hs key import fromPem --pk8 rsa.pem --cert rsa.x509.pem

assert "the certificate is kept byte for byte" \
    cmp -s <(openssl x509 -in rsa.x509.pem -outform DER) <(hs key show releasekey --cert | openssl x509 -outform DER)
check "sign with the imported RSA key" hs sign raw --key releasekey data.txt data.rsa.sig
check "openssl verifies it with the original certificate's key" \
    openssl dgst -sha256 -verify <(openssl x509 -in rsa.x509.pem -pubkey -noout) -signature data.rsa.sig data.txt
# PKCS#1 v1.5 is deterministic: the HSM must produce what openssl produces
# with the original plaintext key.
openssl dgst -sha256 -sign rsa.pem -out data.openssl.sig data.txt
assert "HSM signature equals openssl's with the same key" cmp -s data.rsa.sig data.openssl.sig
check "sign with the imported EC key" hs sign raw --key eckey data.txt data.ec.sig
check "openssl verifies the EC signature" \
    openssl dgst -sha256 -verify <(openssl x509 -in ec.x509.pem -pubkey -noout) -signature data.ec.sig data.txt

# The plaintext private key bytes (PKCS#8 body, private exponent, primes,
# EC scalar) appear in no file hsmsign wrote, nor in the token directory.
python3 - "$WORK" <<'PY' >secrets.check
import re, subprocess, sys, os, base64
work = sys.argv[1]
def numbers(pem, names):
    text = subprocess.run(["openssl", "pkey", "-in", pem, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    out = []
    for name in names:
        m = re.search(name + r":\s*\n((?:\s+[0-9a-f:]+\n)+)", text)
        raw = bytes.fromhex(re.sub(r"[\s:]", "", m.group(1)))
        out.append(raw.lstrip(b"\0"))
    return out
secrets = numbers(f"{work}/rsa.pem", ["privateExponent", "prime1", "prime2"])
secrets += numbers(f"{work}/ec.pem", ["priv"])
# The tail of an RSA PKCS#8 is its CRT coefficient (secret); an EC PKCS#8
# ends with the public point, which the key file rightly holds.
for f in ("rsa.pk8",):
    der = open(f"{work}/{f}", "rb").read()
    secrets.append(der[-64:])
    secrets.append(base64.b64encode(der)[-40:])
needles = []
for s in secrets:
    needles += [s[:24], s.hex()[:40].encode(), base64.b64encode(s)[:32]]
found = []
# Control: the needles must be found where the key is, or the search proves nothing.
control = open(f"{work}/rsa.pk8", "rb").read() + open(f"{work}/ec.pk8", "rb").read()
if not any(n in control for n in needles):
    print("BROKEN search finds nothing in the .pk8 files"); sys.exit(0)
for top in ("keys", "audit", "tok"):
    for root, _, files in os.walk(os.path.join(work, top)):
        for name in files:
            data = open(os.path.join(root, name), "rb").read()
            found += [f"{name}" for n in needles if n in data]
print("FOUND", *found) if found else print("clean", len(needles), "needles")
PY
assert "no plaintext key bytes in keys/, audit/ or the token directory" grep -q "^clean" secrets.check

# The other encodings hsmsign has always accepted, now read by its own
# parser (keystore/pk8.c): PKCS#1 and SEC1, in PEM and DER.
openssl rsa -in rsa.pem -traditional -out rsa.trad.pem 2>/dev/null
openssl rsa -in rsa.pem -traditional -outform DER -out rsa.pkcs1.der 2>/dev/null
openssl ec -in ec.pem -outform DER -out ec.sec1.der 2>/dev/null
assert "ec.pem is SEC1 (EC PRIVATE KEY)" grep -q "BEGIN EC PRIVATE KEY" ec.pem
assert "rsa.trad.pem is PKCS#1 (RSA PRIVATE KEY)" grep -q "BEGIN RSA PRIVATE KEY" rsa.trad.pem
check "import PKCS#1 PEM" hs key import rsaTrad --pk8 rsa.trad.pem --cert rsa.x509.pem
check "import PKCS#1 DER" hs key import rsaDer --pk8 rsa.pkcs1.der --cert rsa.x509.pem
check "import SEC1 PEM" hs key import ecSec1 --pk8 ec.pem --cert ec.x509.pem
check "import SEC1 DER" hs key import ecSec1Der --pk8 ec.sec1.der --cert ec.x509.pem
check "sign with the key imported from PKCS#1 PEM" hs sign raw --key rsaTrad data.txt data.trad.sig
assert "same signature as openssl's with the original key" cmp -s data.trad.sig data.openssl.sig
check "sign with the key imported from SEC1 PEM" hs sign raw --key ecSec1 data.txt data.sec1.sig
check "openssl verifies it" \
    openssl dgst -sha256 -verify <(openssl x509 -in ec.x509.pem -pubkey -noout) -signature data.sec1.sig data.txt

openssl pkcs8 -topk8 -in ec.pem -outform DER -passout pass:pw -out ec.enc.pk8 2>/dev/null
expect_fail "an encrypted PKCS#8 is refused" 5 "ec.enc.pk8: .*it is encrypted" \
    hs key import encrypted --pk8 ec.enc.pk8 --cert ec.x509.pem
cat rsa.pk8 - <<<"trailing" >trailing.pk8
expect_fail "a .pk8 with data after the key is refused" 5 "trailing.pk8: .*data after the key" \
    hs key import trailing --pk8 trailing.pk8 --cert rsa.x509.pem
openssl genpkey -algorithm ed25519 -out ed.pem 2>/dev/null
openssl req -new -x509 -key ed.pem -days 1 -subj "/CN=ed" -out ed.x509.pem 2>/dev/null
expect_fail "an Ed25519 key is refused as unsupported" 2 "ed.pem: key type not supported" \
    hs key import ed --pk8 ed.pem --cert ed.x509.pem

expect_fail "a certificate for another key is refused" 1 "certificate is for a different key" \
    hs key import mismatch --pk8 other.pk8 --cert rsa.x509.pem
assert "no key file is left for the refused import" test ! -e keys/mismatch.key
echo "not a key" >junk.pk8
expect_fail "a file that is not a key is refused" 5 "junk.pk8: not an unencrypted PKCS#8" \
    hs key import junk --pk8 junk.pk8 --cert rsa.x509.pem
expect_fail "importing over an existing name is refused" 9 "already exists" \
    hs key import releasekey --pk8 rsa.pk8 --cert rsa.x509.pem
expect_fail "a missing .pk8 is named" 8 "nope.pk8" \
    hs key import x --pk8 nope.pk8 --cert rsa.x509.pem

token_objects >objects.txt
assert "after imports the token holds only the wrap key and the audit key pair" \
    test "$(grep -c 'Object;' objects.txt)" -eq 3 -a -z "$(token_other_objects)"
assert "audit log records the imports" test "$(grep -c '"op":"import"' audit/entries.jsonl)" -eq 7
finish
