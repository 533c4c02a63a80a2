#!/bin/bash
# Bad input of every kind: a clear message naming the file, key or token
# and the reason, the exit status DESIGN.md gives, and no output file.
. "$(dirname "$0")/lib.sh"
setup_token
check "generate a key" hs key generate app --algorithm rsa2048
echo "data" >in.txt
cp in.txt in.orig

no_output() { # what
    assert "$1: no output file" test ! -e out.sig
    assert "$1: no temporary file left" test -z "$(find "$WORK" -name '*.tmp.*' -print -quit)"
    assert "$1: input unchanged" cmp -s in.txt in.orig
}
sign() { hs sign raw --key app in.txt out.sig "$@"; }

HSMSIGN_PIN=0000 expect_fail "wrong PIN" 4 "token 'test': C_Login failed with CKR_PIN_INCORRECT" sign
no_output "wrong PIN"
expect_fail "unknown token" 8 "no initialized token matches 'nosuch'.*tokens present: 'test'" \
    hs --token nosuch sign raw --key app in.txt out.sig
expect_fail "token by a URI that matches nothing" 8 "no initialized token matches 'pkcs11:token=zz'" \
    hs --token "pkcs11:token=zz" sign raw --key app in.txt out.sig
check "token by RFC 7512 URI" hs --token "pkcs11:token=test" sign raw --key app in.txt uri.sig
expect_fail "missing module" 8 "PKCS#11 module /nonexistent/lib.so: no such file" \
    hs --module /nonexistent/lib.so sign raw --key app in.txt out.sig
expect_fail "a file that is not a module" 4 "PKCS#11 module /etc/hostname: cannot load" \
    hs --module /etc/hostname sign raw --key app in.txt out.sig
no_output "bad module"
expect_fail "unknown key name" 8 "unknown key 'nokey': .*nokey.key does not exist" \
    hs sign raw --key nokey in.txt out.sig
expect_fail "unsupported signature algorithm" 2 "unsupported algorithm 'md5'" sign --algorithm md5
expect_fail "unsupported key algorithm" 2 "unsupported algorithm 'dsa1024'" \
    hs key generate k2 --algorithm dsa1024
expect_fail "an RSA algorithm for an EC key" 2 "key 'eck' is ec-p256 and cannot make rsa-pkcs1-sha256" \
    bash -c "$HSMSIGN -q key generate eck --algorithm ec-p256 && $HSMSIGN sign raw --key eck --algorithm rsa-pkcs1-sha256 in.txt out.sig"
expect_fail "invalid key name" 2 "key name '../x' is not valid" hs key generate ../x --algorithm rsa2048
expect_fail "a PIN on the command line" 2 "never accepted on the command line" hs --pin 1234 key list
expect_fail "PIN source variable not set" 2 "environment variable NOPE_PIN is not set" \
    hs --pin-source env:NOPE_PIN sign raw --key app in.txt out.sig
expect_fail "PIN source file missing" 3 "cannot open PIN file /nonexistent/pin" \
    hs --pin-source file:/nonexistent/pin sign raw --key app in.txt out.sig
expect_fail "PIN source not understood" 2 "PIN source 'literal:1234' not understood" \
    hs --pin-source literal:1234 sign raw --key app in.txt out.sig
printf '%s\n' "$HSMSIGN_PIN" >pin.txt
check "PIN from a file" hs --pin-source "file:$WORK/pin.txt" sign raw --key app in.txt file.sig
check "PIN from a descriptor" bash -c "$HSMSIGN --pin-source fd:3 sign raw --key app in.txt fd.sig 3<pin.txt"
no_output "PIN sources"

# Key files: corrupted, truncated, from another wrap key, forged.
cp keys/app.key app.good
flip() { python3 -c "import sys; p,i=sys.argv[1],int(sys.argv[2]); b=bytearray(open(p,'rb').read()); b[i]^=0x01; open(p,'wb').write(b)" "$@"; }
size=$(stat -c %s keys/app.key)
for pos in 40 $((size / 3)) $((size / 2)) $((size - 90)); do
    cp app.good keys/app.key; flip keys/app.key "$pos"
    expect_fail "key file with byte $pos flipped" 5 "key file .*keys/app.key: " sign
    no_output "flipped byte $pos"
done
head -c $((size / 2)) app.good >keys/app.key
expect_fail "truncated key file" 5 "key file .*keys/app.key: not valid JSON" sign
: >keys/app.key
expect_fail "empty key file" 5 "key file .*keys/app.key" sign
sed 's/"version": 1/"version": 2/' app.good >keys/app.key
expect_fail "key file of a future version" 5 "unsupported version 2 \\(this hsmsign reads version 1\\)" sign
# An attacker who rewrites the wrapped key and the checksum: the HSM
# refuses to unwrap it, or the signature does not match the public key.
python3 - app.good keys/app.key <<'PY'
import json, sys, base64, hashlib
kf = json.load(open(sys.argv[1]))
blob = bytearray(base64.b64decode(kf["wrapped_private_key"])); blob[20] ^= 0xff
kf["wrapped_private_key"] = base64.b64encode(bytes(blob)).decode()
del kf["checksum"]
canon = json.dumps(kf, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
kf["checksum"] = "sha256:" + hashlib.sha256(canon.encode()).hexdigest()
json.dump(kf, open(sys.argv[2], "w"), indent=2)
PY
expect_fail "forged wrapped key with a valid checksum" 4 "C_UnwrapKey failed with CKR_.*key 'app'" sign
no_output "forged wrapped key"
cp app.good keys/app.key

# A key file made under another token's wrap key.
keystore_a=$HSMSIGN_KEYSTORE conf_a=$SOFTHSM2_CONF
# Its own log: a log belongs to one token's audit key (the shared one
# would refuse the second token's wrapkey create).
HSMSIGN_AUDIT_LOG=$WORK/audit-other setup_token tok2 other
expect_fail "key file from another wrap key" 1 \
    "key 'app' .* was made under another wrap key \\(check value [0-9a-f]{6}\\); token 'other' has wrap key 'hsmsign-wrap' with check value [0-9a-f]{6}" \
    sign
no_output "another wrap key"
expect_fail "a second wrap key is refused" 9 "already has a wrap key" hs wrapkey create
hs -q token init --dir "$WORK/tok3" --label bare >/dev/null
SOFTHSM2_CONF=$WORK/tok3/softhsm2.conf expect_fail "token without a wrap key" 8 \
    "token 'bare' has no wrap key labelled 'hsmsign-wrap'" sign
export SOFTHSM2_CONF=$conf_a
expect_fail "token init with a label in use" 9 "a token labelled 'test' already exists" \
    hs token init --label test

# Inputs and outputs.
expect_fail "missing input" 8 "nope.txt: cannot open" hs sign raw --key app nope.txt out.sig
expect_fail "output is the input" 2 "is the input file" hs sign raw --key app in.txt in.txt
assert "input unchanged after output=input" cmp -s in.txt in.orig
expect_fail "output directory missing" 3 "/nonexistent/dir/out.sig" hs sign raw --key app in.txt /nonexistent/dir/out.sig

# The audit record cannot be written: no signature leaves.
# A full disk: the log holds (the gate passes) but the entry's write fails,
# here with EFBIG from a file size limit below the entries file's size.
assert "the entries file is over 1 KiB (for the limit below)" \
    test "$(wc -c <audit/entries.jsonl)" -gt 1024
expect_fail "audit log on a full disk" 7 "audit record not written, so the result was discarded" \
    bash -c "trap '' XFSZ; ulimit -f 1; $(declare -f hs sign); sign"
no_output "audit log full"
mv audit audit.real
mkdir audit && ln -s /dev/full audit/entries.jsonl
expect_fail "entries file is not a regular file: the gate refuses" 7 "audit log .*audit.*not a regular file" sign
no_output "entries file is /dev/full"
rm -rf audit && echo "not a directory" >audit
expect_fail "audit log path is a file" 7 "audit log .*audit.*not a directory" sign
no_output "audit log path is a file"
rm -f audit && mv audit.real audit

# Config file: a PIN is refused there too.
printf 'pin = 1234\n' >bad.conf
expect_fail "a PIN in the config file" 2 "never stored in the config file" hs --config bad.conf key list
printf 'keystore = %s\nunknown = 1\n' "$WORK/keys" >bad2.conf
expect_fail "unknown config key" 2 "unknown key 'unknown'" hs --config bad2.conf key list
printf '# test config\nkeystore = %s\n' "$WORK/keys" >good.conf
check "config file sets the key store" env -u HSMSIGN_KEYSTORE "$HSMSIGN" --config good.conf key list
assert "config key store is used" grep -q "^app " "$WORK/out"

# Output that cannot be written (a full disk): an I/O error, never status 0,
# whether the failure shows at a write or only when stdout is flushed.
expect_fail "--version to a full disk" 3 "error writing to standard output" \
    bash -c "$HSMSIGN --version >/dev/full"
expect_fail "key list to a full disk" 3 "writing to standard output" \
    bash -c "$HSMSIGN key list >/dev/full"

# Usage errors.
expect_fail "unknown command" 2 "unknown command 'frobnicate'" hs frobnicate
expect_fail "unknown subcommand" 2 "unknown subcommand 'nope'" hs key nope
expect_fail "sign raw without key" 2 "--key NAME, IN and OUT are required" hs sign raw in.txt out.sig
for cmd in "" "token" "token init" "token list" "wrapkey" "wrapkey create" "wrapkey show" "key" \
           "key generate" "key import" "key generate-set" "key list" "key show" "sign" "sign raw"; do
    # shellcheck disable=SC2086
    check "--help for '$cmd'" hs $cmd --help
    assert "--help for '$cmd' prints usage" grep -q "usage: hsmsign" "$WORK/out"
done
finish
