#!/bin/bash
# APK Signature Scheme v3.1 signing (issue 12): `sign apk --lineage F
# --old-key OLD --key NEW [--rotation-min-sdk-version N]
# [--rotation-targets-dev-release]` against AOSP apksig 33+ (the udc-release
# sources in ../shared/releasetools/signapk-aosp, compiled here with the
# harness tests/integration/java/ApkV31Ref.java; Debian's apksigner 31
# predates v3.1). Skipped when ../shared or javac is absent.
#  - RSA keys in SoftHSM: byte-identical to apksig's ApkSigner for its
#    default (rotation from 33: a v3.1 block by NEW, v3.0 by OLD up to 32
#    with the rotation-min-SDK attribute), 34 (dev release implied, written
#    as 33), 33 with the dev-release flag, 28 (no v3.1, NEW from 28), an APK
#    whose minSdk is 33 (NEW alone in v3.0), NEW alone, and a batch entry's
#    "rotation_min_sdk";
#  - every output verifies with apksig's ApkVerifier and hsmsign's verify
#    apk for API levels 24+ and 33+ (v3.1 used there);
#  - removing the v3.1 block makes apksig reject the APK for 33+ (the v3.0
#    signer's stripping protection is in place);
#  - with v4, the .idsig equals apksig's (v3.0 signer's signing info plus
#    the v3.1 signer's) and apksig's verifier accepts it;
#  - EC keys (ECDSA is randomised): apksig's and hsmsign's verifiers accept;
#  - what apksig refuses is refused alike: NEW alone when the rotation
#    leaves platforms without a v3 signer, the dev-release flag below 33.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
APKSIG_SRC=${HSMSIGN_APKSIG_SRC:-$HERE/../../../shared/releasetools/signapk-aosp/apksig/src/main/java}
[ -d "$APKSIG_SRC/com/android/apksig" ] ||
    { echo "1..0 # SKIP apksig sources not found at $APKSIG_SRC (../shared beside the repository)"; exit 77; }
command -v javac >/dev/null || { echo "1..0 # SKIP javac not installed (openjdk-17-jdk-headless)"; exit 77; }
command -v aapt >/dev/null || { echo "1..0 # SKIP aapt not installed"; exit 77; }
setup_token

find "$APKSIG_SRC" -name '*.java' >srcs
javac -nowarn -d ref "@srcs" "$HERE/java/ApkV31Ref.java" 2>javac.log ||
    { cat javac.log; echo "Bail out! cannot compile apksig and the harness"; exit 1; }
ref() { java -cp ref ApkV31Ref "$@"; }

for k in old new; do apk_key $k rsa "v31 $k"; done
apk_key ecold ec "v31 ecold"; apk_key ecnew ec "v31 ecnew"
assert "four keys imported" test "$(ls keys/*.key | wc -l)" -eq 4
hs -q key rotate --from old --to new --lineage rsa.lineage >/dev/null 2>&1
hs -q key rotate --from ecold --to ecnew --lineage ec.lineage >/dev/null 2>&1
assert "lineages written" test -s rsa.lineage -a -s ec.lineage

aapt_apk app.apk 21 org.hsmsign.v31 || { echo "Bail out! aapt"; exit 1; }
aapt_apk app33.apk 33 org.hsmsign.v31 || { echo "Bail out! aapt"; exit 1; }

# Both verifiers, for API levels 24+ and 33+; v3.1 must carry 33+ when
# the APK has a v3.1 block.
verified_both() { # apk with-v31(yes|no) [levels, default "24 33"]
    local apk=$1 v31=$2 lvl out
    for lvl in ${3:-24 33}; do
        out=$(ref verify "$apk" $lvl) || { echo "$out"; return 1; }
        if [ "$lvl" = 33 ]; then echo "$out" | grep -qx "v3.1 $([ "$v31" = yes ] && echo true || echo false)" ||
            { echo "apksig, 33+: $out"; return 1; }; fi
        out=$(hs --json verify apk --min-sdk $lvl "$apk") || { echo "$out"; return 1; }
        if [ "$lvl" = 33 ]; then echo "$out" | grep -q "\"v31\": $([ "$v31" = yes ] && echo true || echo false)" ||
            { echo "hsmsign, 33+: $out"; return 1; }; fi
    done
}
has_v31_block() { python3 -c 'import struct,sys; sys.exit(0 if struct.pack("<I",0x1b93ad61) in open(sys.argv[1],"rb").read() else 1)' "$1"; }
no_v31_block() { ! has_v31_block "$1"; }

# --- RSA: byte-identical to apksig 33+ --------------------------------
# case: name input hsmsign-options | java rotation dev v1 v2 v3 old.pk8 old.crt
cases=(
"default|app.apk|--old-key old|default false true true true old.pk8 old.crt"
"rot34|app.apk|--old-key old --rotation-min-sdk-version 34|34 false true true true old.pk8 old.crt"
"rot33dev|app.apk|--old-key old --rotation-min-sdk-version 33 --rotation-targets-dev-release true|33 true true true true old.pk8 old.crt"
"rot28|app.apk|--old-key old --rotation-min-sdk-version 28|28 false true true true old.pk8 old.crt"
"min33|app33.apk|--old-key old|default false false true true old.pk8 old.crt"
"newonly33|app33.apk|--v2-signing false|default false false false true - -"
)
for c in "${cases[@]}"; do
    IFS='|' read -r name in hopts jargs <<<"$c"
    # shellcheck disable=SC2086
    read -r rot dev v1 v2 v3 opk ocrt <<<"$jargs"
    ref sign "$in" "ref-$name.apk" rsa.lineage "$rot" "$dev" "$v1" "$v2" "$v3" "$opk" "$ocrt" \
        new.pk8 new.crt || { fail "$name: apksig refused to sign"; continue; }
    # shellcheck disable=SC2086
    check "$name: sign apk --key new --lineage $hopts" \
        hs sign apk --key new --lineage rsa.lineage $hopts --v1-signing "$v1" --v2-signing "$v2" \
        "$in" "$name.apk"
    check "$name: byte-identical to apksig's ApkSigner" cmp "$name.apk" "ref-$name.apk"
done
for c in default rot34 rot33dev; do
    assert "$c: has a v3.1 block" has_v31_block $c.apk
    assert "$c: both verifiers accept it for 24+ and 33+ (v3.1 on 33+)" verified_both $c.apk yes
done
assert "rot28: no v3.1 block" no_v31_block rot28.apk
assert "rot28: both verifiers accept it for 24+ and 33+" verified_both rot28.apk no
# minSdk 33: NEW alone covers the APK's platforms, in v3.0.
for c in min33 newonly33; do
    assert "$c: no v3.1 block" no_v31_block $c.apk
    assert "$c: both verifiers accept it for 33+" verified_both $c.apk no 33
done

# --- v4: the v3.0 signer's signing info, then the v3.1 signer's as a block
ref sign app.apk ref-v4.apk rsa.lineage default false true true true old.pk8 old.crt new.pk8 new.crt v4
check "v4: sign apk --v4-signing true beside v3.1" hs sign apk --key new --old-key old \
    --lineage rsa.lineage --v1-signing true --v4-signing true app.apk v4.apk
check "v4: the APK equals apksig's" cmp v4.apk ref-v4.apk
check "v4: the .idsig (OLD's signing info, NEW's for v3.1) equals apksig's" cmp v4.apk.idsig ref-v4.apk.idsig
assert "v4: apksig's ApkVerifier accepts APK and .idsig for 33+" \
    bash -c "java -cp ref ApkV31Ref verify v4.apk 33 | grep -qx 'v4 true'"

# --- stripping protection: without its v3.1 block the APK is refused on 33+
python3 - default.apk stripped.apk <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
tag = struct.pack("<I", 0x1b93ad61)
assert data.count(tag) == 1
open(sys.argv[2], "wb").write(data.replace(tag, struct.pack("<I", 0x42424242)))
PY
assert "the v3.1 block renamed away (stripped.apk made)" test -s stripped.apk
assert "the v3.1 block renamed away: apksig rejects it for 33+" bash -c "! java -cp ref ApkV31Ref verify stripped.apk 33 >strip.out"
assert "... naming the missing v3.1 block" grep -q "V31_BLOCK_MISSING\|v3.1" strip.out
expect_fail "... and so does hsmsign verify apk" 1 "" hs verify apk --min-sdk 33 stripped.apk

# --- batch: per-entry rotation_min_sdk ---------------------------------
cat >batch.json <<'JSON'
[{"input": "app.apk", "output": "batch34.apk", "key": "new", "old_key": "old",
  "lineage": "rsa.lineage", "rotation_min_sdk": 34},
 {"input": "app.apk", "output": "batchdef.apk", "key": "new", "old_key": "old",
  "lineage": "rsa.lineage"}]
JSON
check "sign batch with rotation_min_sdk" hs sign batch batch.json --v1-signing true
check "batch entry with rotation_min_sdk 34 equals apksig's" cmp batch34.apk ref-rot34.apk
check "batch entry without it gets apksig's default" cmp batchdef.apk ref-default.apk
cat >badbatch.json <<'JSON'
[{"input": "app.apk", "output": "bad.apk", "key": "new", "rotation_min_sdk": 33}]
JSON
expect_fail "batch: rotation_min_sdk without a lineage" 5 "rotation_min_sdk needs a lineage" \
    hs sign batch badbatch.json

# --- EC: randomised signatures, so verified rather than compared ----------
check "EC: sign apk --key ecnew --old-key ecold --lineage (v3.1)" \
    hs sign apk --key ecnew --old-key ecold --lineage ec.lineage app.apk ec.apk
assert "EC: has a v3.1 block" has_v31_block ec.apk
assert "EC: both verifiers accept it for 24+ and 33+ (v3.1 on 33+)" verified_both ec.apk yes
assert "EC: apksig names the new key the signer on 33+" \
    bash -c "java -cp ref ApkV31Ref verify ec.apk 33 | grep -q 'signer CN=v31 ecnew'"
assert "EC: ... and the old key below 33" \
    bash -c "java -cp ref ApkV31Ref verify ec.apk 24 32 | grep -q 'signer CN=v31 ecold'"

# --- refused as apksig refuses --------------------------------------------
assert "apksig refuses NEW alone rotating from 33 on a minSdk 21 APK" \
    bash -c "! java -cp ref ApkV31Ref sign app.apk x.apk rsa.lineage default false false false true - - new.pk8 new.crt 2>/dev/null"
expect_fail "so does sign apk" 2 "without a v3 signer" \
    hs sign apk --key new --lineage rsa.lineage --v1-signing false --v2-signing false app.apk \
    newonly.apk
assert "no output for it" test ! -e newonly.apk
assert "apksig refuses the dev-release flag below 33" \
    bash -c "! java -cp ref ApkV31Ref sign app.apk x.apk rsa.lineage 28 true true true true old.pk8 old.crt new.pk8 new.crt 2>/dev/null"
expect_fail "so does sign apk" 2 "development release only from" \
    hs sign apk --key new --old-key old --lineage rsa.lineage --rotation-min-sdk-version 28 \
    --rotation-targets-dev-release true app.apk dev28.apk
expect_fail "--rotation-min-sdk-version without --lineage" 2 "need --lineage" \
    hs sign apk --key new --rotation-min-sdk-version 33 app.apk nolineage.apk
finish
