#!/bin/bash
# hsmsign verify apk against apksigner over AOSP apksig's own APK corpus
# (golden and deliberately malformed APKs, ../shared/vectors/apksig).
# apksigner's verdicts for --min-sdk-version 24 and for the manifest's
# minSdk were computed once (tests/vectors/apksig/make_verdicts.sh ->
# verdicts.tsv); this test runs hsmsign on every APK for both ranges and
# requires the same verdict, except for the documented differences in
# known-differences.tsv (each a false reject with its reason; docs/apk.md).
# A false accept (hsmsign verifies what apksigner rejects) always fails.
# A few live apksigner calls check that the stored verdicts are still true.
set -u
TMPDIR_T=$(mktemp -d "${TMPDIR:-/tmp}/apk-corpus.XXXXXX")
trap 'rm -rf "$TMPDIR_T"' EXIT
: "${HSMSIGN:?}" "${HSMSIGN_VECTORS:?}"
corpus=${APKSIG_CORPUS:-}
vectors=$HSMSIGN_VECTORS/apksig
if [ -z "$corpus" ] || [ ! -d "$corpus" ]; then
    echo "SKIP: the apksig corpus is not at '${corpus}' (../shared/vectors/apksig next to the repo)"
    exit 77
fi
fails=0 checked=0
declare -A false_accepts false_rejects known_rejects known_accepts
report() { echo "$*"; }
declare -A expect_diff
while IFS=$'\t' read -r file range verdict _reason; do
    case $file in '#'* | '') continue ;; esac
    expect_diff["$file/$range"]=$verdict
done <"$vectors/known-differences.tsv"

while IFS=$'\t' read -r file range verdict first; do
    case $file in '#'* | '') continue ;; esac
    apk=$corpus/$file
    [ -f "$apk" ] || { report "FAIL - $file: missing from the corpus"; fails=$((fails + 1)); continue; }
    args=()
    [ "$range" = 24 ] && args=(--min-sdk 24)
    if "$HSMSIGN" verify apk "${args[@]}" "$apk" >/dev/null 2>"$TMPDIR_T/err"; then ours=verified; else ours=rejected; fi
    checked=$((checked + 1))
    key="$file/$range"
    if [ "$ours" = "$verdict" ]; then
        if [ -n "${expect_diff[$key]:-}" ]; then
            report "FAIL - $key: listed in known-differences.tsv but now agrees with apksigner ($ours)"
            fails=$((fails + 1))
        fi
        continue
    fi
    if [ "$ours" = verified ] && [ "${expect_diff[$key]:-}" = verified ]; then
        known_accepts[$range]=$((${known_accepts[$range]:-0} + 1))
    elif [ "$ours" = verified ]; then
        false_accepts[$range]=$((${false_accepts[$range]:-0} + 1))
        report "FAIL - $key: FALSE ACCEPT (apksigner: $first)"
        fails=$((fails + 1))
    elif [ "${expect_diff[$key]:-}" = rejected ]; then
        known_rejects[$range]=$((${known_rejects[$range]:-0} + 1))
    else
        false_rejects[$range]=$((${false_rejects[$range]:-0} + 1))
        report "FAIL - $key: false reject: $(head -c 300 "$TMPDIR_T/err")"
        fails=$((fails + 1))
    fi
done <"$vectors/verdicts.tsv"

# Certificates as apksigner --print-certs reports them (digests of the
# stored bytes: the cert-not-der one differs if re-encoded), with the lineage.
certs_are() {
    local file=$1 want=$2 got
    got=$("$HSMSIGN" verify apk --print-certs "$corpus/$file" 2>/dev/null |
        sed -n 's/^  \([A-Za-z]*\) #\([0-9]*\) certificate SHA-256 digest: \(.*\)/\1\2=\3/p' | tr '\n' ' ')
    if [ "$got" = "$want " ]; then report "ok - certificates of $file"; else
        report "FAIL - certificates of $file: got '$got', want '$want'"; fails=$((fails + 1)); fi
}
certs_are v1-only-with-rsa-1024-cert-not-der.apk \
    Signer1=c5d4535a7e1c8111687a8374b2198da6f5ff8d811a7a25aa99ef060669342fa9
certs_are v1-only-two-signers.apk \
    "Signer1=fb5dbd3c669af9fc236c6991e6387b7f11ff0590997f22d0f5c74ff40e04fca8 Signer2=6a8b96e278e58f62cfe3584022cec1d0527fcb85a9e5d2e1694eb0405be5b599"
certs_are v1v2v3-with-rsa-2048-lineage-3-signers.apk \
    "Signer1=bb77a72efc60e66501ab75953af735874f82cfe52a70d035186a01b3482180f3 Lineage1=fb5dbd3c669af9fc236c6991e6387b7f11ff0590997f22d0f5c74ff40e04fca8 Lineage2=681b0e56a796350c08647352a4db800cc44b2adc8f4c72fa350bd05d4d50264d Lineage3=bb77a72efc60e66501ab75953af735874f82cfe52a70d035186a01b3482180f3"

# Freshness: apksigner itself still says what verdicts.tsv says.
if command -v apksigner >/dev/null; then
    for pick in v1-only-with-signed-attrs-missing-content-type.apk golden-aligned-v1v2v3-lineage-out.apk \
        v1-only-with-rsa-pkcs1-sha512-1.2.840.113549.1.1.13-2048.apk; do
        want=$(awk -F'\t' -v f="$pick" '$1 == f && $2 == 24 {print $3}' "$vectors/verdicts.tsv")
        if apksigner verify --min-sdk-version 24 "$corpus/$pick" >/dev/null 2>&1; then live=verified; else live=rejected; fi
        if [ "$live" != "$want" ]; then
            report "FAIL - $pick: apksigner now says $live, verdicts.tsv says $want (re-run make_verdicts.sh)"
            fails=$((fails + 1))
        else
            report "ok - apksigner still says $live for $pick"
        fi
    done
fi
echo "checked $checked verdicts against apksigner"
for range in 24 manifest; do
    echo "min-sdk $range: ${false_accepts[$range]:-0} false accepts, ${false_rejects[$range]:-0} undocumented false rejects," \
        "${known_rejects[$range]:-0} documented false rejects, ${known_accepts[$range]:-0} documented apksigner 31 defects"
done
[ "$fails" -eq 0 ] && [ "$checked" -gt 0 ]
