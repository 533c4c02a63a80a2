#!/bin/bash
# APK signing through the real HSM path (`hsmsign sign apk`/`sign batch`):
# byte-identical to apksigner 31 with the same key and schemes, accepted by
# apksigner verify and apkverifier (v1 too: the JAR files are deflated like
# apksig's zlib Deflater), and the batch costs one unwrap per key
# and one HSM signature per scheme per APK (counted by the shim).
. "$(dirname "$0")/lib.sh"
: "${P11SHIM:?}"
FW=/usr/share/android-framework-res/framework-res.apk
setup_token

openssl genrsa -out rsa.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in rsa.pem -outform DER -out rsa.pk8
openssl req -new -x509 -sha256 -key rsa.pem -subj "/C=US/O=Android/CN=hsmsign apk test" -days 3650 -out rsa.crt
check "import the RSA key from .pk8" hs key import platform --pk8 rsa.pk8 --cert rsa.crt
check "generate an EC key in the HSM" hs key generate ecapp --algorithm ec-p256
check "generate a second RSA key" hs key generate media --algorithm rsa2048

mkdir -p src/assets src/lib/arm64-v8a
head -c 200000 /dev/urandom >src/lib/arm64-v8a/libnative.so
head -c 5000 /dev/urandom | base64 >src/assets/text.txt
make_apk() { # sdk out
    rm -f "$2"
    aapt_apk "$2" "$1" &&
        (cd src && aapt add "../$2" assets/text.txt >/dev/null && zip -q -0 "../$2" lib/arm64-v8a/libnative.so)
}
apksigner_same() { # in out [scheme flags]
    apksigner sign --key rsa.pk8 --cert rsa.crt --v1-signing-enabled false --v2-signing-enabled true \
        --v3-signing-enabled true --v4-signing-enabled false --out "$2" "$1"
}

# framework-res.apk (Debian, 45 MB, 7,600 entries): identical to apksigner.
cp "$FW" fw-input.apk
check "sign framework-res.apk through the HSM" hs sign apk --key platform \
    --v1-signing false --v2-signing true --v3-signing true --v4-signing false fw-input.apk fw.hsm.apk
apksigner_same "$FW" fw.apksigner.apk
assert "framework-res.apk: byte-identical to apksigner sign" cmp -s fw.hsm.apk fw.apksigner.apk
assert "input left unchanged" cmp -s fw-input.apk "$FW"
check "apksigner verify accepts it" apksigner verify --verbose --print-certs fw.hsm.apk
assert "apksigner names our certificate" grep -q "CN=hsmsign apk test" "$WORK/out"
check "apkverifier accepts it" apkverifier fw.hsm.apk
check "hsmsign verify apk accepts it" hs verify apk --print-certs fw.hsm.apk
# With v1 on: the CLI names the v1 files CERT.*, so apksigner is told the same.
apksigner_v1() { # in out
    apksigner sign --key rsa.pk8 --cert rsa.crt --v1-signer-name CERT --v1-signing-enabled true \
        --v2-signing-enabled true --v3-signing-enabled true --v4-signing-enabled false --out "$2" "$1"
}
check "sign framework-res.apk with v1+v2+v3 through the HSM" hs sign apk --key platform \
    --v1-signing true --v2-signing true --v3-signing true fw-input.apk fw.v1.hsm.apk
apksigner_v1 "$FW" fw.v1.apksigner.apk
assert "framework-res.apk v1+v2+v3: byte-identical to apksigner sign" cmp -s fw.v1.hsm.apk fw.v1.apksigner.apk

# Small real APKs at minSdk 21, 24, 28, 33.
for sdk in 21 24 28 33; do
    make_apk "$sdk" "app$sdk.apk"
    check "minSdk $sdk: sign v2+v3" hs sign apk --key platform --v1-signing false --v2-signing true \
        --v3-signing true app$sdk.apk app$sdk.hsm.apk
    apksigner_same app$sdk.apk app$sdk.ref.apk
    assert "minSdk $sdk: byte-identical to apksigner" cmp -s app$sdk.hsm.apk app$sdk.ref.apk
    if [ "$sdk" = 21 ] || [ "$sdk" = 24 ]; then
        check "minSdk $sdk: sign v1+v2+v3" hs sign apk --key platform --v1-signing true \
            --v2-signing true --v3-signing true app$sdk.apk app$sdk.v1.hsm.apk
        apksigner_v1 app$sdk.apk app$sdk.v1.ref.apk
        assert "minSdk $sdk v1+v2+v3: byte-identical to apksigner" cmp -s app$sdk.v1.hsm.apk app$sdk.v1.ref.apk
    fi
    check "minSdk $sdk: default schemes" hs --json sign apk --key platform app$sdk.apk app$sdk.def.apk
    want_v1=False; [ "$sdk" -lt 24 ] && want_v1=True
    assert "minSdk $sdk: v1 is $want_v1 by default" \
        python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['apks'][0]; sys.exit(0 if r['v1']==$want_v1 else 1)" "$WORK/out"
    check "minSdk $sdk: apksigner verify accepts the default output" apksigner verify --min-sdk-version "$sdk" app$sdk.def.apk
    check "minSdk $sdk: apkverifier accepts it" apkverifier app$sdk.def.apk
done
# EC (ECDSA is randomized: verified, not compared).
check "EC key: sign with v1+v2+v3" hs sign apk --key ecapp --v1-signing true app21.apk app21.ec.apk
check "EC key: apksigner verify accepts it" apksigner verify --verbose --min-sdk-version 21 app21.ec.apk
assert "EC key: apksigner saw v1, v2 and v3" \
    bash -c "grep -q 'v1 scheme (JAR signing): true' '$WORK/out' && grep -q 'v2 scheme (APK Signature Scheme v2): true' '$WORK/out'"
check "EC key: apkverifier accepts it" apkverifier app21.ec.apk
# A control: a modified APK is rejected by the same tools.
cp app33.hsm.apk tampered.apk
# a byte in the middle: inside the stored native library, so only a digest changes
printf 'X' | dd of=tampered.apk bs=1 seek=$(($(stat -c %s tampered.apk) / 2)) conv=notrunc 2>/dev/null
expect_fail "control: apksigner rejects a modified APK" nonzero "DOES NOT VERIFY|ERROR" apksigner verify tampered.apk
expect_fail "hsmsign verify rejects it too" 1 "does not|mismatch|DOES NOT" hs verify apk tampered.apk

# Bad input through the CLI: clear error, no output.
echo "not a zip" >bad.apk
expect_fail "not a zip" 5 "bad.apk" hs sign apk --key platform bad.apk bad.out.apk
assert "no output for a bad input" test ! -e bad.out.apk
expect_fail "output equal to input" 2 "same|input" hs sign apk --key platform app33.apk app33.apk
expect_fail "unwritable output directory" 3 "/nonexistent/out.apk" hs sign apk --key platform app33.apk /nonexistent/out.apk
assert "no temporary files left" test -z "$(find "$WORK" -name '*.tmp.*' -print -quit)"

# Batch: 50 APKs, 3 keys, one process. Count HSM work through the shim.
mkdir -p batch-in batch-out
for i in $(seq 1 50); do cp "app$((21 + (i % 3) * 4 > 28 ? 33 : 28)).apk" "batch-in/a$i.apk"; done
python3 - <<'PY' >manifest.json
import json
keys = ["platform", "media", "ecapp"]
print(json.dumps([{"input": f"batch-in/a{i}.apk", "output": f"batch-out/a{i}.apk", "key": keys[i % 3]} for i in range(1, 51)]))
PY
rm -f counts.json
HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_COUNTS=$WORK/counts.json \
    check "batch of 50 APKs with 3 keys" hs --json sign batch manifest.json
calls() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['calls'][sys.argv[2]])" counts.json "$1"; }
assert "batch: exactly 3 unwraps" test "$(calls C_UnwrapKey)" -eq 3
assert "batch: one C_Sign per scheme per APK (v2+v3: 100) and one for the audit checkpoint" \
    test "$(calls C_Sign)" -eq 101
assert "batch: one login" test "$(calls C_Login)" -eq 1
assert "batch: no session left open" \
    python3 -c "import json,sys; c=json.load(open(sys.argv[1])); sys.exit(0 if c['finalized'] and c['sessions_open']==0 and c['sessions_closed_by_finalize']==0 else 1)" counts.json
check "apksigner verifies a batch output (platform)" apksigner verify batch-out/a3.apk
check "apksigner verifies a batch output (ecapp)" apksigner verify batch-out/a2.apk
assert "audit log: 100 APK signatures from the batch" \
    test "$(grep -c '"purpose":"apk-v[23]"' audit/entries.jsonl)" -ge 100

# A failing APK in a batch is reported and does not stop the others.
python3 - <<'PY' >mixed.json
import json
print(json.dumps([{"input": "app28.apk", "output": "mixed/1.apk", "key": "platform"},
                  {"input": "bad.apk", "output": "mixed/2.apk", "key": "platform"},
                  {"input": "app33.apk", "output": "mixed/3.apk", "key": "nokey"},
                  {"input": "app33.apk", "output": "mixed/4.apk", "key": "media", "min_sdk": 30}]))
PY
mkdir -p mixed
expect_fail "a batch with failures exits non-zero" nonzero "bad.apk" hs sign batch --verify mixed.json
assert "the batch names the unknown key" grep -q "unknown key 'nokey'" "$WORK/err"
assert "good APKs before and after the failures were signed" test -f mixed/1.apk -a -f mixed/4.apk
assert "failed APKs have no output" test ! -e mixed/2.apk -a ! -e mixed/3.apk
check "apksigner verifies the APK signed after the failures" apksigner verify mixed/4.apk
echo '[{"input": "a", "output": "b"}]' >badmanifest.json
expect_fail "manifest entry without a key" 5 "entry 1 needs string fields input, output and key" \
    hs sign batch badmanifest.json
finish
