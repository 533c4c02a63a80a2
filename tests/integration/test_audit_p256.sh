#!/bin/bash
# Checkpoints signed by an ECDSA P-256 audit key (for tokens without
# CKM_EDDSA; chosen here through the ceremony's audit-key-algorithm): the
# C2SP signature type 0x02 layout, checked with `openssl dgst -sha256
# -verify` against the public key the ceremony exported.
. "$(dirname "$0")/lib.sh"
unset HSMSIGN_PIN HSMSIGN_SO_PIN
shared_softhsm
CEREMONY_EXTRA='"audit-key-algorithm": "ecdsa-p256"' \
    ceremony_config ceremony.json "audit p256" pkcs11:token=primary backup 2 h1 h2 h3
check "provision with a P-256 audit key" hs ceremony provision ceremony.json --out-dir cer
export HSMSIGN_PIN=$(age -d -i ids/operator.txt cer/credentials/primary-user-pin.age)
export HSMSIGN_TOKEN=primary
check "generate a key" hs key generate k --algorithm ec-p256
echo data >in.txt
check "sign raw" hs sign raw --key k in.txt in.sig
assert "a checkpoint was signed" test -s audit/checkpoint
python3 - audit/checkpoint <<'PY'
import base64, sys
note = open(sys.argv[1], "rb").read()
i = note.rindex(b"\n\n")
blob = base64.b64decode(note[i + 2:].decode().strip().split(" ")[2])
open("cp.body", "wb").write(note[:i + 1])
open("cp.sig", "wb").write(blob[4:])
open("cp.keyid", "w").write(blob[:4].hex())
PY
check "openssl verifies the checkpoint's ECDSA signature over the note text" \
    openssl dgst -sha256 -verify cer/audit-key.pem -signature cp.sig cp.body
openssl pkey -pubin -in cer/audit-key.pem -outform DER -out audit.der
assert "key ID = SHA-256(DER SubjectPublicKeyInfo)[:4] (signature type 0x02)" \
    test "$(sha256sum audit.der | cut -c1-8)" = "$(cat cp.keyid)"
check "audit verify --git with the ceremony's public key" \
    hs audit verify --public-key cer/audit-key.pem --git
printf 'x' >>cp.body
openssl dgst -sha256 -verify cer/audit-key.pem -signature cp.sig cp.body >ossl.out 2>&1
assert "openssl refuses the signature over other bytes" grep -q "Verification [Ff]ailure" ossl.out
finish
