#!/bin/bash
# audit check reads the whole-file signature of OTA packages (signapk -w,
# docs/signapk.md; issue 13):
#   - an OTA signed by `sign ota` (and one by `signapk -w` through hsmsign)
#     is found, tied to its key, and known to the log: exit 0;
#   - a package signed by Java signapk.jar -w with the same key as a .pk8
#     is reported NOT IN LOG, scheme ota-wholefile, key named;
#   - a package whose signed bytes were changed after signing, and plain
#     zips (no footer), are no signature of ours and are not reported.
. "$(dirname "$0")/lib.sh"
SIGNAPK_JAR=/usr/share/signapk/signapk.jar
for tool in java zip; do
    command -v $tool >/dev/null || { echo "1..0 # SKIP $tool not installed (scripts/install-deps)"; exit 77; }
done
[ -f "$SIGNAPK_JAR" ] || { echo "1..0 # SKIP $SIGNAPK_JAR missing (Debian package signapk)"; exit 77; }

setup_token
openssl genrsa -out releasekey.pem 2048 2>/dev/null
openssl req -new -x509 -sha256 -key releasekey.pem -out releasekey.x509.pem -days 3000 \
    -subj "/C=US/O=Android/CN=releasekey" 2>/dev/null
openssl pkcs8 -in releasekey.pem -topk8 -outform DER -out releasekey.pk8 -nocrypt
check "import releasekey" hs -q key import releasekey --pk8 releasekey.pk8 --cert releasekey.x509.pem

mkdir -p ota/META-INF/com/google/android rel
echo 'ui_print("hsmsign");' >ota/META-INF/com/google/android/updater-script
head -c 20000 /dev/urandom >ota/boot.img.bin
(cd ota && zip -q -r ../ota.zip .)

# audit_field EXPR: a field of the last `audit check --json` report.
audit_field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($1)" "$WORK/out"; }

check "sign ota --key releasekey" hs sign ota --key releasekey ota.zip rel/ota-native.zip
check "hsmsign signapk -w" hs signapk -w releasekey.x509.pem releasekey.pk8 ota.zip rel/ota-signapk.zip
cp ota.zip rel/plain.zip
check "audit check: both OTA signatures are ours and logged" hs --json audit check rel
assert "... two whole-file signatures counted as ours, none unlogged ($(audit_field 'r["ours"], r["unlogged"]'))" \
    test "$(audit_field 'r["ours"], len(r["unlogged"])')" = "2 0"

# (Another package: RSA PKCS#1 v1.5 is deterministic and signapk.jar makes
# hsmsign's bytes, so the same package would carry the logged signature.)
echo 'ui_print("made outside");' >ota/META-INF/com/google/android/updater-script
(cd ota && zip -q -r ../ota-other.zip .)
java -jar "$SIGNAPK_JAR" -w releasekey.x509.pem releasekey.pk8 ota-other.zip rel/ota-java.zip
hs --json audit check rel >out 2>err
rc=$?
assert "audit check: the OTA signed by signapk.jar with the same key is reported (exit $rc)" test "$rc" -eq 1
assert "... as ota-wholefile by releasekey, that file only" \
    test "$(audit_field '[(u["artifact"].split("/")[-1], u["scheme"], u["key"]) for u in r["unlogged"]]')" = \
    "[('ota-java.zip', 'ota-wholefile', 'releasekey')]"
hs audit check rel >out 2>err
assert "... and the text report says NOT IN LOG for it" grep -q "NOT IN LOG.*ota-java.zip" out err

# A byte of the signed range changed: the signature no longer verifies,
# so it is nobody's signature (as for APKs), and not reported.
rm rel/ota-java.zip
python3 - rel/ota-native.zip <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[40] ^= 1; open(p, "wb").write(b)
PY
check "audit check: a tampered OTA is not reported as ours" hs --json audit check rel
assert "... one OTA of ours left ($(audit_field 'r["ours"]'))" test "$(audit_field 'r["ours"]')" = 1
finish
