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
fails=0 checked=0 false_accepts=0 false_rejects=0 known=0
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
    if [ "$ours" = verified ]; then
        false_accepts=$((false_accepts + 1))
        report "FAIL - $key: FALSE ACCEPT (apksigner: $first)"
        fails=$((fails + 1))
    elif [ "${expect_diff[$key]:-}" = rejected ]; then
        known=$((known + 1))
        false_rejects=$((false_rejects + 1))
    else
        false_rejects=$((false_rejects + 1))
        report "FAIL - $key: false reject: $(head -c 300 "$TMPDIR_T/err")"
        fails=$((fails + 1))
    fi
done <"$vectors/verdicts.tsv"

# Freshness: apksigner itself still says what verdicts.tsv says.
if command -v apksigner >/dev/null; then
    for pick in v1-only-with-signed-attrs-wrong-content-type.apk golden-aligned-v1v2v3-lineage-out.apk \
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
echo "checked $checked verdicts: $false_accepts false accepts, $false_rejects false rejects ($known documented)"
[ "$fails" -eq 0 ] && [ "$checked" -gt 0 ]
