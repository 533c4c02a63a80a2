#!/bin/bash
# hsmsign sign apex against AOSP releasetools' sign_apex.py (the fixture in
# ../shared/releasetools, README there; skipped when absent):
#   - one APEX from the fixture's make_apex.sh (dev keys: AVB's RSA-4096
#     test key for the payload, an RSA-2048 container key);
#   - sign_apex.py with file release keys, and `hsmsign sign apex` with the
#     same keys imported, standalone and through `hsmsign agent`: the
#     outputs are byte-identical; IN unchanged;
#   - apksigner verify accepts the container; avbtool verify_image accepts
#     the extracted payload with the release payload key, info_image shows
#     apex.key kept, apex_pubkey is the key's extract_public_key;
#   - audit check FILE.apex finds the container's and the payload's
#     signatures in the log (one more than the container alone); a
#     container re-signed outside hsmsign, and a payload re-signed outside
#     hsmsign, are each reported (exit 1);
#   - bad input: not an APEX, unknown key, payload key of the wrong size,
#     output directory missing: message naming it, non-zero exit, OUT
#     untouched, no signature logged.
# Keys: no 4096-bit key is generated (tests/vectors: AVB's test key and
# tests/vectors/apex/test_payload_rsa4096.pem).
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
VECTORS=${HSMSIGN_VECTORS:-$HERE/../vectors}
entries() { wc -l <"$HSMSIGN_AUDIT_LOG/entries.jsonl"; }
ours() { hs --json audit check "$1" | sed -n 's/^ *"ours": \([0-9]*\),*$/\1/p'; }
setup_token

# --- without the fixture: an APEX made here (aapt, hsmsign avb), re-signed,
# checked with hsmsign's own verifiers, so a plain clone tests sign apex too.
if command -v aapt >/dev/null && command -v zip >/dev/null; then
    openssl req -x509 -new -key "$VECTORS/avb/testkey_rsa2048.pem" -subj /CN=dev -days 30 \
        -out devpayload.x509.pem 2>/dev/null
    check "import a dev payload key (AVB's RSA-2048 test key)" hs -q key import devpayload \
        --pk8 "$VECTORS/avb/testkey_rsa2048.pem" --cert devpayload.x509.pem
    hs -q key generate rpayload --algorithm rsa2048 >/dev/null &&
        hs -q key generate rcontainer --algorithm rsa2048 >/dev/null || fail "generate keys"
    mkdir -p local/m
    printf '%s\n' '<?xml version="1.0" encoding="utf-8"?>' \
        '<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="org.hsmsign.t.apex">' \
        '  <uses-sdk android:minSdkVersion="29"/>' '</manifest>' >local/AndroidManifest.xml
    aapt package -M local/AndroidManifest.xml -I /usr/share/android-framework-res/framework-res.apk \
        -F local/dev.apex >/dev/null 2>&1
    head -c 200000 /dev/urandom >local/m/apex_payload.img
    hs -q avb add-hashtree-footer --image local/m/apex_payload.img --partition-name org.hsmsign.t.apex \
        --partition-size 1048576 --do-not-generate-fec --hash-algorithm sha256 --salt 0123abcd \
        --key devpayload --algorithm SHA256_RSA2048 --prop apex.key:org.hsmsign.t.apex \
        --prop other:dropped >/dev/null
    hs -q avb extract-public-key --key devpayload --output local/m/apex_pubkey >/dev/null
    (cd local/m && zip -q -0 ../dev.apex apex_payload.img apex_pubkey)
    check "sign apex (no fixture: an APEX made with aapt and hsmsign avb)" hs sign apex \
        --payload-key rpayload --container-key rcontainer local/dev.apex local/out.apex
    check "hsmsign verify apk accepts the container" hs verify apk local/out.apex
    unzip -p local/out.apex apex_payload.img >local/payload.img
    check "hsmsign avb verify --key rpayload accepts the payload" \
        hs avb verify local/payload.img --key rpayload
    hs avb info local/payload.img >local/info.txt 2>&1
    assert "payload: apex.key and salt kept, other properties and the partition name dropped" \
        test "$(grep -c "Prop: apex.key -> 'org.hsmsign.t.apex'" local/info.txt) \
$(grep -c 'Prop: other' local/info.txt) $(grep -cE 'Salt: +0123abcd$' local/info.txt) \
$(grep -cE 'Partition Name: +$' local/info.txt)" = "1 0 1 1"
    hs -q avb extract-public-key --key rpayload --output local/want.avbpubkey >/dev/null
    unzip -p local/out.apex apex_pubkey | cmp -s - local/want.avbpubkey
    assert "apex_pubkey is rpayload's AVB public key" test $? -eq 0
    check "sign apex again" hs sign apex --payload-key rpayload --container-key rcontainer \
        local/dev.apex local/again.apex
    assert "deterministic: the same bytes twice" cmp -s local/out.apex local/again.apex
    cp local/out.apex local/container-only.apk
    n_apex=$(ours local/out.apex) n_apk=$(ours local/container-only.apk)
    assert "audit check finds the container's and the payload's signatures ($n_apex = $n_apk + 1)" \
        test -n "$n_apk" -a "$n_apex" = "$((n_apk + 1))"
else
    echo "# aapt or zip missing: the fixture-less part is skipped"
fi

FIXTURE=${RELEASETOOLS_FIXTURE:-}
if [ -z "$FIXTURE" ] || [ ! -f "$FIXTURE/scripts/env.sh" ]; then
    echo "# SKIP the comparison with releasetools: AOSP releasetools fixture not found" \
        "(RELEASETOOLS_FIXTURE=${FIXTURE:-unset}; expected ../shared/releasetools next to the repository)"
    finish; exit
fi
for tool in java openssl zip unzip apksigner aapt mke2fs; do
    if ! command -v "$tool" >/dev/null; then
        echo "# SKIP the comparison with releasetools: $tool missing (scripts/install-deps)"
        finish; exit
    fi
done

"$HERE/../../scripts/releasetools-fixture" copy "$FIXTURE" rt || {
    echo "Bail out! cannot copy the fixture"; exit 1; }
. rt/scripts/env.sh

# --- keys, the APEX, the reference signing with file keys ------------------
mkdir -p dev rel
cp "$VECTORS/avb/testkey_rsa4096.pem" dev/apex.pem
cp "$VECTORS/apex/test_payload_rsa4096.pem" rel/payload.pem
bash rt/scripts/make_keys.sh dev 2048 apexcontainer >/dev/null 2>&1 &&
    bash rt/scripts/make_keys.sh rel 2048 container >/dev/null 2>&1 ||
    { echo "Bail out! make_keys.sh failed"; exit 1; }
check "make_apex.sh builds a dev-signed APEX" bash rt/scripts/make_apex.sh in.apex dev
check "sign_apex.py with file keys (reference)" \
    "$PY" "$RT/sign_apex.py" -p "$HOSTOUT" --signapk_path "$SIGNAPK_AOSP" \
    --container_key rel/container --payload_key rel/payload.pem in.apex ref.apex
[ -s ref.apex ] && [ -s in.apex ] || { echo "Bail out! no reference APEX"; finish; exit; }

# --- the same keys in the HSM -------------------------------------------------
check "import the container key" hs -q key import container --pk8 rel/container.pk8 \
    --cert rel/container.x509.pem
openssl pkcs8 -topk8 -nocrypt -outform DER -in rel/payload.pem -out payload.pk8
openssl req -x509 -new -key rel/payload.pem -subj /CN=payload -days 30 -out payload.x509.pem \
    2>/dev/null
check "import the payload key (RSA-4096, from the PEM)" hs -q key import payload \
    --pk8 payload.pk8 --cert payload.x509.pem
rm -f payload.pk8

in_sum=$(sha256sum <in.apex)
check "hsmsign sign apex" hs sign apex --payload-key payload --container-key container \
    in.apex out.apex
assert "byte-identical to sign_apex.py with the same keys" cmp -s out.apex ref.apex
assert "IN is unchanged" test "$(sha256sum <in.apex)" = "$in_sum"

# Through the agent: the client has no PIN and no PKCS#11 module.
mkdir -m 700 run
if hs agent start --socket "$WORK/run/agent.sock" --checkpoint-delay 1 >agent.env 2>agent.err; then
    . ./agent.env >/dev/null
    check "sign apex through the agent (no PIN, no module in the client)" \
        env -u HSMSIGN_PIN HSMSIGN_MODULE=/nonexistent/pkcs11.so \
        "$HSMSIGN" sign apex --payload-key payload --container-key container in.apex agent.apex
    assert "through the agent: byte-identical to sign_apex.py" cmp -s agent.apex ref.apex
    if hs agent stop >/dev/null 2>agent.err; then pass "agent stop"; else
        fail "agent stop"; sed 's/^/    /' agent.err; kill "$HSMSIGN_AGENT_PID"; fi
    unset HSMSIGN_AGENT HSMSIGN_AGENT_PID
else
    fail "agent start"; sed 's/^/    /' agent.err
fi

# --- the platform's verifiers ---------------------------------------------------
check "apksigner verify accepts the container" apksigner verify out.apex
unzip -p out.apex apex_payload.img >payload.img
check "avbtool verify_image: the payload verifies with the release payload key" \
    avbtool verify_image --image payload.img --key rel/payload.pem
avbtool info_image --image payload.img >info.txt 2>&1
assert "info_image: apex.key kept, SHA256_RSA4096" \
    grep -q "Prop: apex.key -> 'com.android.synth.apex'" info.txt -a \
    -n "$(grep -E '^Algorithm: +SHA256_RSA4096' info.txt)"
avbtool extract_public_key --key rel/payload.pem --output want.avbpubkey
unzip -p out.apex apex_pubkey >got.avbpubkey
assert "apex_pubkey is the release payload key's AVB public key" cmp -s got.avbpubkey want.avbpubkey

# --- audit check ----------------------------------------------------------------
check "audit check out.apex: every signature is in the log" hs audit check out.apex
cp out.apex container-only.apk
n_apex=$(ours out.apex) n_apk=$(ours container-only.apk)
assert "audit check counts the payload's signature too ($n_apex = $n_apk + 1)" \
    test -n "$n_apk" -a "$n_apex" = "$((n_apk + 1))"
mkdir -p rel-dir && cp out.apex rel-dir/
check "audit check DIR reads .apex files" hs audit check rel-dir
# unlogged SIGNATURE_PATTERN FILE: audit check FILE exits 1 and lists it.
unlogged() {
    local what=$1 pattern=$2 rc=0
    hs audit check "$3" >"$WORK/out" 2>"$WORK/err" || rc=$?
    if [ "$rc" -eq 1 ] && grep -qF "$pattern" "$WORK/out"; then pass "$what"; else
        fail "$what (exit $rc)"; sed 's/^/    /' "$WORK/out" "$WORK/err"; fi
}
# A container re-signed outside hsmsign with the same key (one more entry,
# so other signatures: RSA PKCS#1 v1.5 over the same bytes would repeat).
mkdir -p x && echo extra >x/extra.txt && cp out.apex extra.apex && (cd x && zip -q ../extra.apex extra.txt)
java -jar "$SIGNAPK_AOSP" -a 4096 --align-file-size --min-sdk-version 29 \
    rel/container.x509.pem rel/container.pk8 extra.apex resigned.apex 2>/dev/null
unlogged "audit check: a container re-signed outside hsmsign is reported" \
    "NOT IN LOG: resigned.apex (apk-v3 signature by key 'container'" resigned.apex
cp payload.img mutant.img
avbtool add_hashtree_footer --image mutant.img --do_not_generate_fec --algorithm SHA256_RSA4096 \
    --key rel/payload.pem --prop apex.key:com.android.synth.apex --prop extra:1 \
    --hash_algorithm sha256 2>/dev/null
mkdir -p m && cp mutant.img m/apex_payload.img && cp out.apex payload-mutant.apex &&
    zip -q -d payload-mutant.apex apex_payload.img && (cd m && zip -q -0 ../payload-mutant.apex apex_payload.img)
unlogged "audit check: a payload re-signed outside hsmsign is reported" \
    "NOT IN LOG: payload-mutant.apex!apex_payload.img (avb signature by key 'payload'" \
    payload-mutant.apex

# --- bad input --------------------------------------------------------------------
echo keep >out-keep.apex
before=$(entries)
cp rt/signapk-aosp/signapk-aosp-main.jar not-an-apex.apex
expect_fail "not an APEX (no apex_payload.img)" 5 "not-an-apex.apex: not an APEX: no apex_payload.img" \
    hs sign apex --payload-key payload --container-key container not-an-apex.apex out-keep.apex
expect_fail "unknown payload key" 8 "payload key: .*nosuchkey" \
    hs sign apex --payload-key nosuchkey --container-key container in.apex out-keep.apex
expect_fail "unknown container key" 8 "container key: .*nosuchkey" \
    hs sign apex --payload-key payload --container-key nosuchkey in.apex out-keep.apex
expect_fail "payload key of the wrong size for SHA256_RSA4096" 2 \
    "payload key 'container' is not usable for in.apex's payload: SHA256_RSA4096 needs" \
    hs sign apex --payload-key container --container-key container in.apex out-keep.apex
expect_fail "output directory missing" 3 "no-such-dir/out.apex: cannot write in no-such-dir" \
    hs sign apex --payload-key payload --container-key container in.apex no-such-dir/out.apex
assert "bad input: OUT untouched" test "$(cat out-keep.apex)" = keep
assert "bad input: IN unchanged" test "$(sha256sum <in.apex)" = "$in_sum"
assert "bad input: no signature logged" test "$(entries)" = "$before"
check "audit verify" hs audit verify

finish
