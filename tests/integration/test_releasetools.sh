#!/bin/bash
# A whole release through stock, unpatched AOSP releasetools with the keys
# in the HSM (docs/releasetools.md), against the fixture's reference run
# with file keys (../shared/releasetools, README there; skipped when absent):
#   - the fixture's release keys imported into a SoftHSM token, the key
#     directory written by `hsmsign key export-releasetools` (certificates,
#     public keys, placeholder .pk8: no secret);
#   - one `hsmsign agent` behind the counting shim (tests/p11shim) serves
#     the whole release; releasetools and its signers run with no PIN and
#     no PKCS#11 module, so every signature is the agent's;
#   - sign_target_files_apks.py on tf-small, tf-full (AVB vbmeta and boot
#     through `hsmsign avb signing-helper`) and tf-apex (APEX container
#     through hsmsign-java, payload through the helper), `--java_path
#     hsmsign-java`: each signed target-files equals the reference run's
#     entry by entry (contents and zip metadata), except META/misc_info.txt
#     lines that name the helper; every APK non-empty, apksigner verify
#     accepts each;
#   - ota_from_target_files.py -k EXPORTED/releasekey, --java_path
#     hsmsign-java: the OTA package is byte-identical to the reference and
#     check_ota_package_signature.py says VERIFIED;
#   - the shim counts ONE login for the whole release and one C_UnwrapKey
#     per distinct key used; audit verify holds; audit check over the whole
#     unzipped release (APKs, AVB images, the OTA zip) finds every
#     signature in the log, and reports an APK re-signed outside hsmsign
#     with the same key.
. "$(dirname "$0")/lib.sh"
: "${P11SHIM:?P11SHIM must name the shim module}"
HSMSIGN_JAVA=${HSMSIGN_JAVA:-$(dirname "$HSMSIGN_BINARY")/hsmsign-java}

FIXTURE=${RELEASETOOLS_FIXTURE:-}
if [ -z "$FIXTURE" ] || [ ! -f "$FIXTURE/scripts/env.sh" ]; then
    echo "1..0 # SKIP AOSP releasetools fixture not found (RELEASETOOLS_FIXTURE=${FIXTURE:-unset};" \
        "expected ../shared/releasetools next to the repository)"
    exit 77
fi
for tool in java openssl zip unzip apksigner; do
    if ! command -v "$tool" >/dev/null; then
        echo "1..0 # SKIP $tool missing: run scripts/install-deps (it installs the fixture's" \
            "packages too)"
        exit 77
    fi
done

# A private copy of the fixture (symlinks restored: scripts/releasetools-fixture).
"$(dirname "$0")/../../scripts/releasetools-fixture" copy "$FIXTURE" rt || {
    echo "Bail out! cannot copy the fixture"; exit 1; }
. rt/scripts/env.sh

setup_token
REF=$WORK/ref R=$WORK/ref/releasekeys REAL=$WORK/realkeys

# --- the reference run: the fixture's keys, target-files, file-key signing --
if bash rt/scripts/reference-sign.sh "$REF" >ref.out 2>&1; then
    pass "reference run with file keys (fixture's reference-sign.sh)"
else
    fail "reference run with file keys"; sed 's/^/    /' ref.out
    finish; exit
fi

# --- the release keys into the HSM, and the exported key directory --------
# releasetools writes the key directory's path into what it signs (the
# entry names of otacerts.zip, hence system.img and vbmeta.img, and
# misc_info.txt), so the exported directory takes the reference keys' path
# and the file keys move aside (kept for the re-signing outside hsmsign).
mv "$R" "$REAL"
E=$R
KEYS="releasekey testkey platform shared media networkstack sdk_sandbox bluetooth nfc apexcontainer"
for k in $KEYS; do
    check "import $k" hs -q key import "$k" --pk8 "$REAL/$k.pk8" --cert "$REAL/$k.x509.pem"
done
for k in avb apex avb_boot; do # AVB/APEX payload keys are PEM only: a .pk8 and a certificate
    openssl pkcs8 -topk8 -nocrypt -outform DER -in "$REAL/$k.pem" -out "$k.pk8"
    openssl req -x509 -new -key "$REAL/$k.pem" -subj "/CN=$k" -days 30 -out "$k.x509.pem" 2>/dev/null
    check "import $k (RSA-4096)" hs -q key import "$k" --pk8 "$k.pk8" --cert "$k.x509.pem"
done
rm -f ./*.pk8
check "key export-releasetools" hs key export-releasetools "$E"
assert "exported: no private key in the key directory" \
    test -z "$(grep -l 'PRIVATE KEY' "$E"/* 2>/dev/null; for f in "$E"/*.pk8; do
        openssl pkcs8 -inform DER -nocrypt -in "$f" >/dev/null 2>&1 && echo "$f"; done)"
for k in $KEYS; do
    cmp -s "$E/$k.x509.pem" "$REAL/$k.x509.pem" || echo "$k" >>cert-differs
done
assert "exported: every NAME.x509.pem is the fixture's certificate, byte for byte" test ! -e cert-differs
assert "exported: avb.pem is avb's public key" \
    test "$(openssl rsa -pubin -in "$E/avb.pem" -outform DER 2>/dev/null | sha256sum)" = \
    "$(openssl rsa -in "$REAL/avb.pem" -pubout -outform DER 2>/dev/null | sha256sum)"
avbtool extract_public_key --key "$REAL/avb.pem" --output avb.avbpubkey
assert "exported: avb.avbpubkey is what avbtool extracts from the private key" \
    cmp -s "$E/avb.avbpubkey" avb.avbpubkey

# --- the agent: one login for the whole release ------------------------------
# Behind the counting shim; the counts file is written when the agent
# finalizes the module (agent stop returns after that).
mkdir -m 700 run
n0=$(wc -l <"$HSMSIGN_AUDIT_LOG/entries.jsonl")
eval "$(HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE \
    HSMSIGN_SHIM_COUNTS=$WORK/counts.json "$HSMSIGN" agent start --socket "$WORK/run/agent.sock")"
if [ "${HSMSIGN_AGENT:-}" != "$WORK/run/agent.sock" ]; then
    fail "agent start"; finish; exit
fi
pass "agent start (eval): HSMSIGN_AGENT=$HSMSIGN_AGENT"
# A failing run must not leave the agent behind.
trap '"$HSMSIGN" agent stop --socket "$WORK/run/agent.sock" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
# rt_run DESCRIPTION COMMAND...: releasetools with no PIN and no usable
# PKCS#11 module, so a signer that opened the token itself would fail.
rt_run() {
    local what=$1; shift
    check "$what" env -u HSMSIGN_PIN HSMSIGN_MODULE=/nonexistent/pkcs11.so "$@"
}

# --- the signers releasetools runs ------------------------------------------
# avbtool runs ONE program as its --signing_helper.
printf '#!/bin/sh\nexec "%s" avb signing-helper "$@"\n' "$HSMSIGN" >avb-helper
chmod +x avb-helper
JAVA_PATH=$HSMSIGN_JAVA
HELPER_ARGS="--signing_helper $WORK/avb-helper"

# compare_tf REF.zip OURS.zip NAME: every entry equal except misc_info.txt,
# whose lines may differ only by the --signing_helper they name; then the
# zip metadata of every entry (time, method, attributes, extra fields).
compare_tf() {
    $PY rt/scripts/compare_tf.py "$1" "$2" >"cmp-$3.txt"
    local diffs
    diffs=$(grep -E '^(DIFFER|ONLY-IN)' "cmp-$3.txt" | grep -v '^DIFFER: META/misc_info.txt$')
    if [ -z "$diffs" ]; then pass "$3: every entry identical to the reference (but misc_info.txt)"
    else fail "$3: entries differ from the reference"; sed 's/^/    /' "cmp-$3.txt" | head -20; fi
    unzip -p "$1" META/misc_info.txt >"misc-ref-$3.txt"
    unzip -p "$2" META/misc_info.txt >"misc-ours-$3.txt"
    diffs=$(diff "misc-ref-$3.txt" <(sed 's| --signing_helper [^ ]*||' "misc-ours-$3.txt"))
    if [ -z "$diffs" ]; then pass "$3: misc_info.txt differs only by the --signing_helper lines"
    else fail "$3: misc_info.txt differs elsewhere"; echo "$diffs" | sed 's/^/    /'; fi
    # releasetools itself stamps four entries with the time of the run
    # (it zips files it has just written, with their mtime, e.g.
    # add_img_to_target_files.py for apex_info.pb and vbmeta_digest.txt:
    # two file-key runs differ there too): for those, every
    # field but the time must match, and times that differ must both be
    # the run's own (not the fixed 2009-01-01), which shows where they
    # come from.
    python3 - "$1" "$2" >"meta-$3.txt" <<'PY'
import sys, zipfile
a, b = (zipfile.ZipFile(p) for p in sys.argv[1:3])
RUN_TIME = {"META/apexkeys.txt", "META/otakeys.txt", "META/apex_info.pb",
            "META/vbmeta_digest.txt"}
meta = lambda i: (i.date_time, i.compress_type, i.external_attr, i.create_system, i.extra)
mb = {i.filename: i for i in b.infolist()}
print([i.filename for i in a.infolist()] == [i.filename for i in b.infolist()] or "ORDER differs")
for i in a.infolist():
    j = mb.get(i.filename)
    if j is None:
        continue
    if i.filename in RUN_TIME:
        if meta(i)[1:] != meta(j)[1:] or (i.date_time != j.date_time and
                                          min(i.date_time[0], j.date_time[0]) < 2020):
            print(f"META-DIFFER: {i.filename} {meta(i)} {meta(j)}")
    elif meta(i) != meta(j):
        print(f"META-DIFFER: {i.filename} {meta(i)} {meta(j)}")
PY
    diffs=$(grep -v '^True$' "meta-$3.txt")
    if [ -z "$diffs" ]; then
        pass "$3: same entry order and zip metadata (times, methods, attributes; the run's time on META/apexkeys.txt, otakeys.txt, apex_info.pb, vbmeta_digest.txt)"
    else fail "$3: zip metadata differs"; echo "$diffs" | head -20 | sed 's/^/    /'; fi
}
# apks_ok ZIP NAME: every APK (and APEX container) in ZIP non-empty and
# accepted by apksigner verify.
apks_ok() {
    rm -rf "x-$2" && mkdir "x-$2" && (cd "x-$2" && unzip -q "../$1")
    local a n=0 bad=
    while read -r a; do
        n=$((n + 1))
        if [ ! -s "$a" ]; then bad="$bad empty:$a"
        elif ! apksigner verify "$a" >/dev/null 2>>"apksigner-$2.err"; then bad="$bad rejected:$a"; fi
    done < <(find "x-$2" -type f \( -name '*.apk' -o -name '*.apex' \))
    assert "$2: all $n APKs/APEXes non-empty and accepted by apksigner verify${bad:+ ($bad)}" \
        test -z "$bad" -a "$n" -gt 0
}

# --- tf-small: APKs only (Debian signapk.jar's grammar) -----------------------
rt_run "sign_target_files_apks.py tf-small through the agent (--java_path hsmsign-java)" \
    $PY "$RT/sign_target_files_apks.py" -v -p "$HOSTOUT" --java_path "$JAVA_PATH" -d "$E" -o \
    "$REF/tf-small.zip" signed-small.zip
compare_tf "$REF/signed-small.zip" signed-small.zip small
apks_ok signed-small.zip small

# --- tf-full: APKs + AVB vbmeta and boot ------------------------------------
rt_run "sign_target_files_apks.py tf-full through the agent (hsmsign-java, AVB helper)" \
    $PY "$RT/sign_target_files_apks.py" -v -p "$HOSTOUT" --java_path "$JAVA_PATH" -d "$E" -o \
    --avb_vbmeta_key "$E/avb.pem" --avb_vbmeta_algorithm SHA256_RSA4096 \
    --avb_vbmeta_extra_args "$HELPER_ARGS" \
    --avb_boot_key "$E/avb_boot.pem" --avb_boot_algorithm SHA256_RSA4096 \
    --avb_boot_extra_args "$HELPER_ARGS" \
    "$REF/tf-full.zip" signed-full.zip
assert "the AVB signatures went through hsmsign" \
    test "$(grep -c '"purpose":"avb-signing-helper"' "$HSMSIGN_AUDIT_LOG/entries.jsonl")" -ge 2
assert "the APKs went through hsmsign-java (signapk audit entries)" \
    test "$(tail -n +$((n0 + 1)) "$HSMSIGN_AUDIT_LOG/entries.jsonl" | grep -c '"purpose":"apk-v2"')" -ge 7
compare_tf "$REF/signed-full.zip" signed-full.zip full
apks_ok signed-full.zip full

# --- OTA: -k EXPORTED/releasekey (the placeholder .pk8) ---------------------
rt_run "ota_from_target_files.py through the agent (-k EXPORTED/releasekey, hsmsign-java -w)" \
    $PY "$RT/ota_from_target_files.py" -v -p "$HOSTOUT" --java_path "$JAVA_PATH" \
    -k "$E/releasekey" signed-full.zip ota-full.zip
assert "OTA package byte-identical to the reference" cmp -s "$REF/ota-full.zip" ota-full.zip
check "check_ota_package_signature.py with the exported certificate" \
    $PY "$RT/check_ota_package_signature.py" "$E/releasekey.x509.pem" ota-full.zip
assert "check_ota_package_signature.py says VERIFIED" grep -q VERIFIED "$WORK/out"

# --- tf-apex: APEX container through hsmsign-java, payload through the helper
rt_run "sign_target_files_apks.py tf-apex through the agent (container -a 4096 --align-file-size)" \
    $PY "$RT/sign_target_files_apks.py" -v -p "$HOSTOUT" --signapk_path "$SIGNAPK_AOSP" \
    --java_path "$JAVA_PATH" -d "$E" -o \
    -e com.android.synth.apex="$E/apexcontainer" \
    --extra_apex_payload_key com.android.synth.apex="$E/apex.pem" \
    --avb_apex_extra_args "$HELPER_ARGS" \
    "$REF/tf-apex.zip" signed-apex.zip
compare_tf "$REF/signed-apex.zip" signed-apex.zip apex
apks_ok signed-apex.zip apex
assert "the APEX payload signature is in the audit log" \
    test "$(grep -c '"purpose":"avb-signing-helper"' "$HSMSIGN_AUDIT_LOG/entries.jsonl")" -ge 3

# --- one login, one unwrap per key ------------------------------------------
check "agent stop" hs agent stop
unset HSMSIGN_AGENT HSMSIGN_AGENT_PID
counts() { python3 -c "import json,sys; c = json.load(open(sys.argv[1])); print($1)" "$WORK/counts.json"; }
used=$(tail -n +$((n0 + 1)) "$HSMSIGN_AUDIT_LOG/entries.jsonl" | python3 -c '
import json, sys
print(" ".join(sorted({e["key"] for e in map(json.loads, sys.stdin)
                       if e.get("op") == "sign" and e.get("key")})))')
nused=$(echo "$used" | wc -w)
assert "the counts file is written (agent finalized)" test -s counts.json
assert "ONE login for the whole release: 3 target-files + OTA ($(counts "c['logins']"))" \
    test "$(counts "c['logins']")" -eq 1
assert "one C_UnwrapKey per distinct key used: $nused keys ($used), $(counts "c['calls']['C_UnwrapKey']") unwraps" \
    test "$(counts "c['calls']['C_UnwrapKey']")" -eq "$nused" -a "$nused" -ge 8
assert "every session closed at stop" test "$(counts "c['finalized'], c['sessions_open']")" = "True 0"

# --- the audit log and audit check over the whole release -------------------
check "audit verify" hs audit verify
mkdir -p release/full release/apex release/small
(cd release/full && unzip -q ../../signed-full.zip)
(cd release/apex && unzip -q ../../signed-apex.zip)
(cd release/small && unzip -q ../../signed-small.zip)
cp ota-full.zip release/
audit_field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($1)" "$WORK/out"; }
check "audit check over the whole release (APKs, AVB images, OTA): every signature logged" \
    hs --json audit check release
assert "... it read the APKs, vbmeta.img, boot.img and the OTA ($(audit_field 'r["ours"]') of ours)" \
    test "$(audit_field 'r["ours"]')" -ge 25
mkdir ota-only && cp ota-full.zip ota-only/
check "audit check: the OTA package alone" hs --json audit check ota-only
assert "... its whole-file signature is ours and logged" test "$(audit_field 'r["ours"], len(r["unlogged"])')" = "1 0"

# The reverse: one APK re-signed outside hsmsign (apksigner, the same
# platform key as a file) is reported.
apk=$(find release/full -name '*.apk' | head -n 1)
cert=$(apksigner verify --print-certs "$apk" | sed -n 's/.*certificate SHA-256 digest: //p' | head -n 1)
for k in $KEYS; do
    [ "$(openssl x509 -in "$REAL/$k.x509.pem" -outform DER | sha256sum | cut -c1-64)" = "$cert" ] && key=$k && break
done
check "re-sign $(basename "$apk") outside hsmsign with apksigner and $key.pk8" \
    apksigner sign --key "$REAL/$key.pk8" --cert "$REAL/$key.x509.pem" --out release/resigned.apk "$apk"
hs --json audit check release >out 2>err
rc=$?
assert "audit check reports the APK signed outside hsmsign, and only it (exit $rc)" \
    test "$rc" -eq 1 -a "$(audit_field 'sorted({(u["artifact"].split("/")[-1], u["key"]) for u in r["unlogged"]})')" = \
    "[('resigned.apk', '$key')]"
finish
