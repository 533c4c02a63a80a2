#!/bin/bash
# A release through stock, unpatched AOSP releasetools with the keys in the
# HSM (docs/releasetools.md), against the fixture's reference run with file
# keys (../shared/releasetools, README there; skipped when absent):
#   - the fixture's release keys imported into a SoftHSM token, the key
#     directory written by `hsmsign key export-releasetools` (certificates,
#     public keys, placeholder .pk8: no secret);
#   - sign_target_files_apks.py on tf-full (and tf-apex) with -d EXPORTED,
#     AVB vbmeta/boot keys (and the APEX payload key) given as the exported
#     public PEMs and signed through `hsmsign avb signing-helper`;
#   - the signed target-files must equal the reference run's entry by entry,
#     except META/misc_info.txt lines that name the key directory or the
#     helper; `audit verify` holds and `audit check` finds every AVB
#     signature in the log;
#   - ota_from_target_files.py -k EXPORTED/releasekey gets past its
#     "Private key ... doesn't exist" check with the placeholder, and the
#     OTA package equals the reference and is VERIFIED.
# APKs, APEX containers and the OTA package are signed by releasetools'
# --java_path. Until hsmsign-java lands that is java-via-placeholder below,
# which runs the real java signapk with the fixture's real .pk8: switching
# to hsmsign-java is the JAVA_PATH line (and APKS_THROUGH_HSMSIGN).
. "$(dirname "$0")/lib.sh"

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

# A private copy of the fixture: the scripts find everything from their own
# location, and a copy that lost its symbolic links (a checkout without
# symlink support turns each into a small file holding the target path, e.g.
# hostout/framework/signapk.jar) gets them back.
cp -a "$FIXTURE" rt
chmod -R u+w rt
find rt/hostout -type f -size -256c ! -perm -u+x | while read -r f; do
    t=$(head -n 1 "$f")
    if [ "$(wc -l <"$f")" -le 1 ] && [ "${t#/}" != "$t" ] && [ -e "$t" ]; then
        rm "$f" && ln -s "$t" "$f"
    fi
done
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
# and the file keys move aside (the --java_path stand-in below uses them).
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

# --- the signers releasetools runs ------------------------------------------
# avbtool runs ONE program as its --signing_helper.
printf '#!/bin/sh\nexec "%s" avb signing-helper "$@"\n' "$HSMSIGN" >avb-helper
chmod +x avb-helper
# TEMPORARY, until hsmsign-java lands: releasetools' --java_path. It runs
# the real java with the real .pk8 of the reference keys in place of the
# exported placeholder (and refuses any .pk8 that is not one), so APKs,
# the APEX container and the OTA package are signed as in the reference.
cat >java-via-placeholder <<EOF
#!/bin/bash
args=()
for a in "\$@"; do
    case "\$a" in
    *.pk8)
        head -n 1 "\$a" | grep -qx 'HSMSIGN-PLACEHOLDER-PK8 1' || { echo "not a placeholder: \$a" >&2; exit 1; }
        echo "\$a" >>"$WORK/java-calls"
        a="$REAL/\$(basename "\$a")" ;;
    esac
    args+=("\$a")
done
exec java "\${args[@]}"
EOF
chmod +x java-via-placeholder
JAVA_PATH=$WORK/java-via-placeholder   # hsmsign-java: JAVA_PATH=$(dirname "$HSMSIGN")/hsmsign-java
APKS_THROUGH_HSMSIGN=false             # ... and true: then every signature is in the log
HELPER_ARGS="--signing_helper $WORK/avb-helper"

# compare_tf REF.zip OURS.zip NAME: every entry equal except misc_info.txt,
# whose lines may differ only by the --signing_helper they name.
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
}

# --- tf-full: APKs + AVB vbmeta and boot ------------------------------------
n0=$(wc -l <"$HSMSIGN_AUDIT_LOG/entries.jsonl")
check "sign_target_files_apks.py tf-full through hsmsign (AVB helper, exported key dir)" \
    $PY "$RT/sign_target_files_apks.py" -v -p "$HOSTOUT" --java_path "$JAVA_PATH" -d "$E" -o \
    --avb_vbmeta_key "$E/avb.pem" --avb_vbmeta_algorithm SHA256_RSA4096 \
    --avb_vbmeta_extra_args "$HELPER_ARGS" \
    --avb_boot_key "$E/avb_boot.pem" --avb_boot_algorithm SHA256_RSA4096 \
    --avb_boot_extra_args "$HELPER_ARGS" \
    "$REF/tf-full.zip" signed-full.zip
n1=$(wc -l <"$HSMSIGN_AUDIT_LOG/entries.jsonl")
assert "the AVB signatures went through hsmsign (audit entries $n0 -> $n1)" \
    test "$(grep -c '"purpose":"avb-signing-helper"' "$HSMSIGN_AUDIT_LOG/entries.jsonl")" -ge 2
assert "APKs were signed through --java_path with placeholder .pk8 files" \
    test "$(grep -c "^$E/.*\.pk8$" java-calls 2>/dev/null || echo 0)" -ge 1
compare_tf "$REF/signed-full.zip" signed-full.zip full
assert "every APK in the signed target-files is non-empty" \
    test -z "$(unzip -Z1 signed-full.zip | grep '\.apk$' | while read -r a; do
        [ "$(unzip -p signed-full.zip "$a" | wc -c)" -gt 0 ] || echo "$a"; done)"

mkdir -p full && (cd full && unzip -q ../signed-full.zip)
check "audit verify" hs audit verify
check "audit check: every AVB signature of IMAGES/ is in the log" hs --json audit check full/IMAGES
audit_field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($1)" "$WORK/out"; }
assert "audit check found vbmeta.img and boot.img signed by our keys" \
    test "$(audit_field 'r["ours"]')" -ge 2
hs --json audit check full >"$WORK/out" 2>"$WORK/err"
rc=$?
if $APKS_THROUGH_HSMSIGN; then
    assert "audit check: every signature of the release is in the log" test "$rc" -eq 0
else
    # Until hsmsign-java: java signapk signed the APKs with the real keys,
    # outside the log, and audit check must say so, APK signatures only.
    schemes=$(audit_field 'sorted(set(u["scheme"] for u in r["unlogged"]))')
    assert "audit check reports the APKs java signed outside hsmsign, and only those ($rc $schemes)" \
        test "$rc" -eq 1 -a -n "$schemes" -a "${schemes/avb/}" = "$schemes"
fi

# --- OTA: -k EXPORTED/releasekey (the placeholder .pk8) ---------------------
check "ota_from_target_files.py -k EXPORTED/releasekey gets past the .pk8 check" \
    $PY "$RT/ota_from_target_files.py" -v -p "$HOSTOUT" --java_path "$JAVA_PATH" \
    -k "$E/releasekey" signed-full.zip ota-full.zip
assert "OTA package byte-identical to the reference" cmp -s "$REF/ota-full.zip" ota-full.zip
check "check_ota_package_signature.py with the exported certificate" \
    $PY "$RT/check_ota_package_signature.py" "$E/releasekey.x509.pem" ota-full.zip
assert "check_ota_package_signature.py says VERIFIED" grep -q VERIFIED "$WORK/out"
# TODO(issue 13, OTA whole-file): once hsmsign signapk -w signs it, `audit
# check` reads the OTA's whole-file signature; assert it is logged then.

# --- tf-apex: APEX payload key through the helper ---------------------------
check "sign_target_files_apks.py tf-apex through hsmsign (APEX payload via the helper)" \
    $PY "$RT/sign_target_files_apks.py" -v -p "$HOSTOUT" --signapk_path "$SIGNAPK_AOSP" \
    --java_path "$JAVA_PATH" -d "$E" -o \
    -e com.android.synth.apex="$E/apexcontainer" \
    --extra_apex_payload_key com.android.synth.apex="$E/apex.pem" \
    --avb_apex_extra_args "$HELPER_ARGS" \
    "$REF/tf-apex.zip" signed-apex.zip
compare_tf "$REF/signed-apex.zip" signed-apex.zip apex
assert "the APEX payload signature is in the audit log" \
    test "$(grep -c '"purpose":"avb-signing-helper"' "$HSMSIGN_AUDIT_LOG/entries.jsonl")" -ge 3
check "audit verify after the whole run" hs audit verify
finish
