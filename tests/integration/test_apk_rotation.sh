#!/bin/bash
# Key rotation with HSM keys (issue 12): `key rotate` writes apksig's
# SigningCertificateLineage with each link signed by the older key in the
# HSM, and `sign apk --lineage` signs v3 with it.
#  - the lineage file is byte-identical to `apksigner rotate`'s (RSA
#    PKCS#1 signatures are deterministic), created and extended, with
#    capabilities; apksigner reads our file back;
#  - sign apk --key NEW --old-key OLD --lineage F --rotation-min-sdk-version
#    apksigner31 (apksigner 31 predates v3.1; test_apk_v31.sh covers the
#    default, v3.1, against apksig 33+) equals apksigner sign
#    --ks OLD --next-signer --ks NEW --lineage F byte for byte (v1+v2+v3,
#    and with v4 its .idsig), and --key NEW --lineage F alone equals it for
#    v3 only;
#  - `apksigner verify --print-certs --verbose` accepts every rotated APK
#    with the newest certificate as its signer, and `apksigner lineage --in
#    APK` reads the lineage (oldest first) out of it (RSA and EC);
#  - a forged or reordered link is refused by sign apk and key rotate,
#    with no output; v1/v2 without the oldest signer is refused as
#    apksigner refuses it;
#  - each link's signature is in the audit log (its sig_sha256 is the
#    signature in the file), and the lineage file's output entry too;
#  - a lineage is never written into the key store or audit log.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
edit() { python3 "$HERE/lineage_edit.py" "$@"; }
command -v apksigner >/dev/null || { echo "1..0 # SKIP apksigner not installed"; exit 77; }
setup_token

for k in old new third; do apk_key $k rsa "rotation $k"; done
apk_key ecold ec "rotation ecold"; apk_key ecnew ec "rotation ecnew"
assert "five keys imported" test "$(ls keys/*.key | wc -l)" -eq 5

aapt_apk app.apk 21 org.hsmsign.rotation || { echo "Bail out! aapt"; exit 1; }
# minSdk 28: v3 alone is enough for apksigner verify
aapt_apk app28.apk 28 org.hsmsign.rotation || { echo "Bail out! aapt"; exit 1; }

# --- the lineage file, against apksigner rotate
check "key rotate creates a lineage (old -> new)" hs key rotate --from old --to new --lineage ours.lineage
apksigner rotate --out ref.lineage --old-signer --key old.pk8 --cert old.crt \
    --new-signer --key new.pk8 --cert new.crt
check "the lineage is byte-identical to apksigner rotate's" cmp ours.lineage ref.lineage
cp ours.lineage two.lineage
check "key rotate extends it (new -> third)" hs key rotate --from new --to third --lineage ours.lineage
apksigner rotate --in ref.lineage --out ref3.lineage --old-signer --key new.pk8 --cert new.crt \
    --new-signer --key third.pk8 --cert third.crt
check "the extended lineage is byte-identical to apksigner rotate --in's" cmp ours.lineage ref3.lineage
assert "apksigner reads our lineage: three certificates" \
    test "$(apksigner lineage --in ours.lineage --print-certs | grep -c 'certificate DN')" -eq 3
check "capabilities after --from/--to" hs key rotate --from old --set-rollback true --set-auth false \
    --to new --set-installed-data false --set-permission false --lineage caps.lineage
apksigner rotate --out refcaps.lineage --old-signer --key old.pk8 --cert old.crt --set-rollback true \
    --set-auth false --new-signer --key new.pk8 --cert new.crt --set-installed-data false \
    --set-permission false
check "capability flags as apksigner rotate sets them" cmp caps.lineage refcaps.lineage

# --- refusals of key rotate
cp ours.lineage before.lineage
expect_fail "rotating from a key that is not the newest signer" 2 "not the newest one in the lineage" \
    hs key rotate --from old --to ecnew --lineage ours.lineage
check "the refused rotation left the lineage as it was" cmp ours.lineage before.lineage
expect_fail "a lineage inside the key store is refused" 2 "key store" \
    hs key rotate --from old --to new --lineage keys/x.lineage
assert "nothing was written there" test ! -e keys/x.lineage

# --- audit log: each link's signature is on record
for i in 1 2; do
    sig=$(edit sig-sha256 ours.lineage $i)
    assert "link $i's signature is in the audit log (sig_sha256 $sig)" \
        grep -q "\"purpose\":\"apk-lineage\".*\"sig_sha256\":\"$sig\"" audit/entries.jsonl
done
assert "the lineage file's output is recorded" \
    grep -q "\"op\":\"output\",\"output_sha256\":\"$(sha256sum <ours.lineage | cut -d' ' -f1)\",\"purpose\":\"apk-lineage\"" audit/entries.jsonl

# --- signing with the lineage, against apksigner sign --lineage
R31="--rotation-min-sdk-version apksigner31"
S="--v2-signing-enabled true --v3-signing-enabled true --v4-signing-enabled false"
apksigner sign --v1-signing-enabled true $S --lineage ref.lineage --key old.pk8 --cert old.crt \
    --v1-signer-name CERT --next-signer --key new.pk8 --cert new.crt --out ref-oldnew.apk app.apk
check "sign apk --key new --old-key old --lineage" \
    hs sign apk $R31 --key new --old-key old --lineage two.lineage --v1-signing true app.apk oldnew.apk
check "v1+v2 by old, v3 by new with the lineage: byte-identical to apksigner" cmp oldnew.apk ref-oldnew.apk
apksigner sign --v1-signing-enabled false --v2-signing-enabled false --v3-signing-enabled true \
    --v4-signing-enabled false --lineage ref.lineage --key new.pk8 --cert new.crt --out ref-new.apk app28.apk
check "sign apk --key new --lineage (v3 only)" \
    hs sign apk $R31 --key new --lineage two.lineage --v1-signing false --v2-signing false app28.apk new.apk
check "v3 only with the lineage: byte-identical to apksigner" cmp new.apk ref-new.apk
apksigner sign --v1-signing-enabled true --v2-signing-enabled true --v3-signing-enabled true \
    --v4-signing-enabled true --lineage ref.lineage --key old.pk8 --cert old.crt \
    --v1-signer-name CERT --next-signer --key new.pk8 --cert new.crt --out ref-v4.apk app.apk
check "with v4: sign apk --v4-signing true --lineage" hs sign apk $R31 --key new --old-key old \
    --lineage two.lineage --v1-signing true --v4-signing true app.apk v4.apk
check "with v4: the APK equals apksigner's" cmp v4.apk ref-v4.apk
check "with v4: the .idsig (signed by the newest key) equals apksigner's" cmp v4.apk.idsig ref-v4.apk.idsig
check "three signers: --key third --old-key old" \
    hs sign apk $R31 --key third --old-key old --lineage ours.lineage --v1-signing true app.apk three.apk
check "sub-lineage: --key new of a three-signer lineage" \
    hs sign apk $R31 --key new --old-key old --lineage ours.lineage app.apk sub.apk
hs key rotate --from ecold --to ecnew --lineage ec.lineage >/dev/null 2>&1
check "EC: sign apk --key ecnew --old-key ecold --lineage" \
    hs sign apk $R31 --key ecnew --old-key ecold --lineage ec.lineage app.apk ec.apk
# apksigner 31's verify --print-certs --verbose names the v3 signer but
# not its lineage (newer apksigners print it); `apksigner lineage --in APK`
# reads the lineage out of the APK's v3 block.
lineage_shown() { # apk CN-of-each-signer-oldest-first...
    local apk=$1 out want="" i=0
    shift
    out=$(apksigner verify --print-certs --verbose "$apk") || return 1
    echo "$out" | grep -q '^Verifies$' || return 1
    echo "$out" | grep -qx "Signer #1 certificate DN: CN=rotation ${!#}" || return 1
    for cn in "$@"; do i=$((i + 1)); want+="Signer #$i in lineage certificate DN: CN=rotation $cn"$'\n'; done
    [ "$(apksigner lineage --in "$apk" --print-certs | grep 'certificate DN')"$'\n' = "$want" ]
}
for a in "oldnew old new" "new old new" "three old new third" "sub old new" "ec ecold ecnew"; do
    set -- $a
    apk=$1; shift
    assert "apksigner verifies $apk.apk, signer and lineage: $*" lineage_shown "$apk.apk" "$@"
    # hsmsign's own verifier (sign batch --verify, audit check) agrees, and
    # shows the same lineage.
    check "hsmsign verify apk accepts $apk.apk" hs verify apk --print-certs "$apk.apk"
done

# --- forged and reordered links
signatures() { grep -c '"op":"sign","purpose":"apk-' audit/entries.jsonl; }
n_sig=$(signatures)
edit forge two.lineage forged.lineage
edit reorder ours.lineage reordered.lineage
expect_fail "a forged link is refused by sign apk" 1 "certificate #2 is not signed by certificate #1" \
    hs sign apk --key new --old-key old --lineage forged.lineage app.apk forged.apk
assert "no output for the forged lineage" test ! -e forged.apk
expect_fail "a reordered lineage is refused by sign apk" 1 "certificate #2 is not signed by certificate #1" \
    hs sign apk --key third --old-key old --lineage reordered.lineage app.apk reordered.apk
assert "no output for the reordered lineage" test ! -e reordered.apk
expect_fail "key rotate refuses to extend a forged lineage" 1 "forged or reordered" \
    hs key rotate --from new --to third --lineage forged.lineage
assert "apksigner agrees: it rejects the forged lineage" \
    bash -c "! apksigner lineage --in forged.lineage --print-certs >/dev/null 2>&1"

# --- what apksigner refuses, refused alike
expect_fail "v1/v2 without the lineage's oldest signer" 2 "need the lineage's first" \
    hs sign apk --key new --lineage two.lineage app.apk nov1.apk
expect_fail "--old-key not older in the lineage" 2 "is not older than" \
    hs sign apk --key old --old-key new --lineage two.lineage app.apk swapped.apk
expect_fail "a lineage without v3" 2 "lineage needs v3 signing" \
    hs sign apk --key new --old-key old --lineage two.lineage --v3-signing false app.apk nov3.apk
expect_fail "a key outside the lineage" 2 "is not in this lineage" \
    hs sign apk --key ecnew --lineage two.lineage --v1-signing false --v2-signing false app.apk outside.apk
assert "the refused signings and rotations made no signature" test "$(signatures)" -eq "$n_sig"

# --- batch manifest fields
cat >batch.json <<'JSON'
[{"input": "app.apk", "output": "batch-oldnew.apk", "key": "new", "old_key": "old", "lineage": "two.lineage"}]
JSON
check "sign batch with lineage and old_key" hs sign batch batch.json --v1-signing true $R31
check "batch output equals apksigner's" cmp batch-oldnew.apk ref-oldnew.apk
mkdir sub && cp two.lineage sub/ && cp app.apk sub/
cat >sub/batch.json <<'JSON'
[{"input": "app.apk", "output": "rel.apk", "key": "new", "old_key": "old", "lineage": "two.lineage",
  "rotation_min_sdk": "apksigner31"}]
JSON
check "batch: the lineage path is relative to the manifest" hs sign batch sub/batch.json --v1-signing true
check "... and signs alike" cmp sub/rel.apk ref-oldnew.apk
cat >bad.json <<'JSON'
[{"input": "app.apk", "output": "bad.apk", "key": "new", "old_key": "old"}]
JSON
expect_fail "batch: old_key without a lineage is refused" 5 "old_key needs a lineage" \
    hs sign batch bad.json
finish
