#!/bin/bash
# hsmsign payload-signer: releasetools' --payload_signer protocol
# (payload_signer.py runs SIGNER ARGS... -in HASH_FILE -out SIG_FILE).
# The signature must be the bytes `openssl pkeyutl -sign -pkeyopt
# digest:sha256` makes with the same key (RSA-2048, RSA-4096; ECDSA P-256
# is randomized, so openssl verifies it), written into SIG_FILE's own inode
# (releasetools made it with MakeTempFile), with an audit entry that
# records the digest. Bad requests fail clearly, sign nothing and leave
# SIG_FILE as it was. Through an agent (HSMSIGN_AGENT) it needs no PIN.
. "$(dirname "$0")/lib.sh"
setup_token

# --- keys: RSA made by openssl (so openssl can sign too) and imported -------
for bits in 2048 4096; do
    openssl genrsa -out "rsa$bits.pem" "$bits" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -outform DER -in "rsa$bits.pem" -out "rsa$bits.pk8"
    openssl req -x509 -new -key "rsa$bits.pem" -subj "/CN=payload-$bits" -days 30 \
        -out "rsa$bits.x509.pem" 2>/dev/null
    check "import RSA-$bits" hs -q key import "payload$bits" --pk8 "rsa$bits.pk8" \
        --cert "rsa$bits.x509.pem"
done
check "generate an EC P-256 key" hs -q key generate payloadec --algorithm ec-p256
hs key show payloadec --public-key >ec.pub.pem

entries() { wc -l <"$HSMSIGN_AUDIT_LOG/entries.jsonl"; }
last_entry() { tail -n 1 "$HSMSIGN_AUDIT_LOG/entries.jsonl"; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])" "$1"; }
inode() { stat -c %i "$1"; }

# --- RSA: byte-identical to openssl pkeyutl, written in place ---------------
for bits in 2048 4096; do
    for i in 1 2 3; do
        head -c 32 /dev/urandom >"h$bits.$i"
        openssl pkeyutl -sign -inkey "rsa$bits.pem" -pkeyopt digest:sha256 \
            -in "h$bits.$i" -out "want$bits.$i"
        : >"sig$bits.$i" # releasetools' MakeTempFile: exists, empty
        before=$(inode "sig$bits.$i")
        # exactly the argv payload_signer.py builds from
        # --payload_signer hsmsign --payload_signer_args "payload-signer --key payloadN"
        check "RSA-$bits digest $i: signed" \
            hs payload-signer --key "payload$bits" -in "h$bits.$i" -out "sig$bits.$i"
        assert "RSA-$bits digest $i: byte-identical to openssl pkeyutl -pkeyopt digest:sha256" \
            cmp -s "sig$bits.$i" "want$bits.$i"
        assert "RSA-$bits digest $i: SIG_FILE written in place (same inode)" \
            test "$(inode "sig$bits.$i")" = "$before"
    done
    assert "RSA-$bits: signature is the modulus length" \
        test "$(stat -c %s "sig$bits.1")" -eq $((bits / 8))
done

e=$(last_entry)
assert "audit entry: purpose payload-digest" test "$(field purpose <<<"$e")" = payload-digest
assert "audit entry: tbs_sha256 is the digest itself" \
    test "$(field tbs_sha256 <<<"$e")" = "$(od -An -v -tx1 h4096.3 | tr -d ' \n')"
assert "audit entry: the key and algorithm" \
    test "$(field key <<<"$e") $(field alg <<<"$e")" = "payload4096 rsa-pkcs1-sha256"
assert "audit entry: sig_sha256 of the signature released" \
    test "$(field sig_sha256 <<<"$e")" = "$(sha256sum sig4096.3 | cut -d' ' -f1)"
assert "audit entry: the hash file as artifact" test "$(field artifact <<<"$e")" = h4096.3

# --- --key=NAME, and a SIG_FILE that does not exist yet ---------------------
check "--key=NAME form, SIG_FILE created" \
    hs payload-signer --key=payload2048 -in h2048.1 -out new.sig
assert "created SIG_FILE has openssl's bytes" cmp -s new.sig want2048.1

# --- ECDSA P-256: DER signature that openssl verifies ----------------------
head -c 32 /dev/urandom >hec
: >sigec
check "EC P-256: signed" hs payload-signer --key payloadec -in hec -out sigec
check "EC P-256: openssl pkeyutl -verify accepts it" \
    openssl pkeyutl -verify -pubin -inkey ec.pub.pem -pkeyopt digest:sha256 -in hec -sigfile sigec
assert "EC P-256: DER ECDSA-Sig-Value (SEQUENCE, at most 72 bytes)" \
    test "$(head -c 1 sigec | od -An -tx1 | tr -d ' ')" = 30 -a "$(stat -c %s sigec)" -le 72
head -c 32 /dev/urandom >hother
openssl pkeyutl -verify -pubin -inkey ec.pub.pem -pkeyopt digest:sha256 -in hother \
    -sigfile sigec >/dev/null 2>&1
assert "EC P-256: openssl refuses it for another digest" test $? -ne 0
assert "EC audit entry records the digest" \
    test "$(last_entry | field tbs_sha256)" = "$(od -An -v -tx1 hec | tr -d ' \n')"

# --- bad requests: clear message, non-zero exit, nothing signed, SIG kept ---
echo "previous contents" >keep.sig
cp keep.sig keep.orig
n=$(entries)
head -c 31 /dev/urandom >short
head -c 33 /dev/urandom >long
: >empty
expect_fail "HASH of 31 bytes refused" 5 "short: fewer than 32 bytes; a payload hash file holds exactly 32" \
    hs payload-signer --key payload2048 -in short -out keep.sig
expect_fail "HASH of 33 bytes refused" 5 "long: more than 32 bytes" \
    hs payload-signer --key payload2048 -in long -out keep.sig
expect_fail "empty HASH refused" 5 "empty: fewer than 32 bytes" \
    hs payload-signer --key payload2048 -in empty -out keep.sig
expect_fail "missing HASH file" 8 "nothere" \
    hs payload-signer --key payload2048 -in nothere -out keep.sig
expect_fail "unknown key" 8 "nosuchkey" \
    hs payload-signer --key nosuchkey -in h2048.1 -out keep.sig
expect_fail "missing -out" 2 "-out SIG_FILE is required" \
    hs payload-signer --key payload2048 -in h2048.1
expect_fail "missing --key" 2 "--key NAME is required" \
    hs payload-signer -in h2048.1 -out keep.sig
expect_fail "-out without its value" 2 "-out needs a value" \
    hs payload-signer --key payload2048 -in h2048.1 -out
expect_fail "unknown argument" 2 "unexpected argument '-inkey'" \
    hs payload-signer -inkey rsa2048.pem -in h2048.1 -out keep.sig
expect_fail "SIG_FILE inside the audit log refused" 2 "audit log" \
    hs payload-signer --key payload2048 -in h2048.1 -out "$HSMSIGN_AUDIT_LOG/x.sig"
assert "SIG_FILE untouched by every failed request" cmp -s keep.sig keep.orig
assert "no audit entry for any failed request (nothing signed)" test "$(entries)" -eq "$n"
assert "no file made by the refused SIG_FILE in the audit log" test ! -e "$HSMSIGN_AUDIT_LOG/x.sig"
# --- through the agent: no PIN and no PKCS#11 module in the signer ----------
mkdir -m 700 run
eval "$("$HSMSIGN" agent start --socket "$WORK/run/agent.sock")"
trap '"$HSMSIGN" agent stop --socket "$WORK/run/agent.sock" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
: >agent.sig
check "through the agent (HSMSIGN_AGENT; no PIN, no module): signed" \
    env -u HSMSIGN_PIN HSMSIGN_MODULE=/nonexistent/pkcs11.so \
    "$HSMSIGN" payload-signer --key payload2048 -in h2048.1 -out agent.sig
assert "... the same bytes as openssl pkeyutl" cmp -s agent.sig want2048.1
check "agent stop" hs agent stop
unset HSMSIGN_AGENT HSMSIGN_AGENT_PID
check "--help" hs payload-signer --help
assert "--help names the releasetools flags" grep -q -- "--payload_signer_args" "$WORK/out"
check "audit verify: the log holds" hs audit verify
finish
