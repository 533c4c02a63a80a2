#!/bin/bash
# `sign apk`, `sign batch` and `verify apk` check every entry's data
# (issue 11): a v2/v3 signature covers the compressed bytes, so an APK with
# a corrupt entry used to be signed, and `verify apk` said verified, while
# apksigner rejects it. Each damaged input is refused (sign: exit 5, no
# output and no signature on record; verify: exit 1), the APK and the entry
# named.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
corrupt() { python3 "$HERE/apk_corrupt.py" "$@" || { echo "Bail out! apk_corrupt.py $*"; exit 1; }; }
setup_token

openssl genrsa -out rsa.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in rsa.pem -outform DER -out rsa.pk8
openssl req -new -x509 -sha256 -key rsa.pem -subj "/CN=entry data test" -days 30 -out rsa.crt
check "import the key" hs key import app --pk8 rsa.pk8 --cert rsa.crt

# AndroidManifest.xml and assets/text.txt deflated (aapt), raw.bin stored.
mkdir src src/assets
head -c 300000 /dev/urandom | base64 >src/assets/text.txt
head -c 100000 /dev/urandom >src/raw.bin
aapt_apk good.apk 29 org.hsmsign.entrydata &&
    (cd src && aapt add ../good.apk assets/text.txt >/dev/null && zip -q -0 ../good.apk raw.bin) ||
    { echo "Bail out! cannot build the test APK"; exit 1; }
assert "the test APK has deflated and stored entries" \
    bash -c "unzip -v good.apk | grep -q 'Defl.*AndroidManifest.xml' && unzip -v good.apk | grep -q 'Defl.*assets/text.txt' && unzip -v good.apk | grep -q 'Stored.*raw.bin'"
check "the undamaged APK signs" hs sign apk --key app --min-sdk 29 good.apk good.signed.apk
check "apksigner verify accepts it" apksigner verify good.signed.apk

# refused NAME ENTRY REASON: sign apk --min-sdk 29 (the manifest is not
# read for minSdk, as in the issue) refuses NAME.apk naming ENTRY and REASON.
refused() {
    local name=$1 entry=$2 reason=$3
    expect_fail "$name: sign apk refuses it, naming the entry" 5 \
        "$name\\.apk: entry $entry: ($reason).*nothing was signed" \
        hs sign apk --key app --min-sdk 29 "$name.apk" "$name.signed.apk"
    assert "$name: no output" test ! -e "$name.signed.apk"
}
corrupt good.apk bad-manifest.apk AndroidManifest.xml deflate
refused bad-manifest AndroidManifest.xml "corrupt deflate data"
corrupt good.apk bad-stored.apk raw.bin data
refused bad-stored raw.bin "CRC-32 does not match"
corrupt good.apk bad-crc.apk AndroidManifest.xml crc
refused bad-crc AndroidManifest.xml "CRC-32 does not match"
corrupt good.apk bad-asset.apk assets/text.txt data
refused bad-asset assets/text.txt "corrupt deflate data|CRC-32 does not match|inflates to"
assert "no APK signature is on record for a refused input" \
    bash -c "! grep -qE '\"artifact\":\"[^\"]*bad-' audit/entries.jsonl"

# With v1 on (JAR files over every entry) the check comes first as well.
expect_fail "v1+v2+v3: the damaged manifest is refused" 5 "entry AndroidManifest.xml: corrupt deflate data" \
    hs sign apk --key app --min-sdk 21 --v1-signing true bad-manifest.apk bad-v1.signed.apk

# The reference tool: apksigner refuses to sign the same damaged manifest.
expect_fail "apksigner sign refuses the damaged manifest too" nonzero "Data of entry AndroidManifest.xml malformed" \
    apksigner sign --key rsa.pk8 --cert rsa.crt --min-sdk-version 29 --out ref.apk bad-manifest.apk

# apksigner signs a damaged stored entry (its v2/v3 digest covers the
# bytes as they are) and its verify accepts the result; `verify apk` names
# the entry instead, as it does for the damaged manifest's CRC.
for name in bad-stored bad-crc; do
    check "$name: apksigner sign (v2+v3) accepts it (no data check)" \
        apksigner sign --key rsa.pk8 --cert rsa.crt --min-sdk-version 29 --v1-signing-enabled false \
        --out "ref-$name.apk" "$name.apk"
    check "$name: apksigner verify accepts apksigner's output" apksigner verify "ref-$name.apk"
done
expect_fail "verify apk refuses apksigner's signed damaged stored entry" 1 \
    "ref-bad-stored\.apk: entry raw.bin: CRC-32 does not match" hs verify apk ref-bad-stored.apk
expect_fail "verify apk refuses apksigner's signed damaged CRC field" 1 \
    "ref-bad-crc\.apk: entry AndroidManifest.xml: CRC-32 (does not match|mismatch)" hs verify apk ref-bad-crc.apk
check "verify apk accepts the undamaged signed APK" hs verify apk good.signed.apk

# A batch reports the damaged APK and signs the others.
mkdir batch-out
printf '[{"input":"good.apk","output":"batch-out/1.apk","key":"app","min_sdk":29},
 {"input":"bad-manifest.apk","output":"batch-out/2.apk","key":"app","min_sdk":29},
 {"input":"bad-stored.apk","output":"batch-out/3.apk","key":"app","min_sdk":29},
 {"input":"good.apk","output":"batch-out/4.apk","key":"app","min_sdk":29}]\n' >batch.json
expect_fail "sign batch exits non-zero and names the entry" nonzero \
    "bad-manifest\\.apk: entry AndroidManifest.xml: corrupt deflate data" hs sign batch batch.json
assert "sign batch names the stored entry too" grep -q "bad-stored.apk: entry raw.bin: CRC-32 does not match" "$WORK/err"
assert "sign batch: no output for the damaged APKs" test ! -e batch-out/2.apk -a ! -e batch-out/3.apk
assert "sign batch: the good APKs are signed" test -f batch-out/1.apk -a -f batch-out/4.apk

finish
