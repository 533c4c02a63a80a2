#!/bin/bash
# Signing byte-identity over AOSP apksig's corpus (issue 12): every APK in
# ../shared/vectors/apksig (beside the repository; provenance in its
# README) is signed by hsmsign with the corpus's rsa-2048 test key imported
# into the token, v1+v2+v3, and each output's SHA-256 must equal that of
# `apksigner sign --v1-signer-name CERT` with the same key and schemes,
# precomputed once in tests/vectors/apksig/signed_hashes.txt (made by
# make_signed_hashes.sh; apksigner takes minutes over the corpus). Where
# apksigner refuses an input, hsmsign must refuse it too. A few inputs are
# also signed by apksigner live, to show the stored hashes are apksigner's.
# Skipped when the corpus is absent.
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=${HSMSIGN_APKSIG_CORPUS:-$HERE/../../../shared/vectors/apksig}
HASHES=${HSMSIGN_VECTORS:-$HERE/../vectors}/apksig/signed_hashes.txt
if [ ! -f "$CORPUS/rsa-2048.pk8" ]; then
    echo "1..0 # SKIP apksig corpus not found at $CORPUS (see tests/vectors/apksig/make_signed_hashes.sh)"
    exit 77
fi
. "$HERE/lib.sh"
setup_token
openssl x509 -in "$CORPUS/rsa-2048.x509.pem" -out rsa-2048.crt
check "import the corpus's rsa-2048 test key" hs key import corpus --pk8 "$CORPUS/rsa-2048.pk8" --cert rsa-2048.crt
assert "the hash file names its provenance" grep -q '^# corpus: AOSP tools/apksig' "$HASHES"

# One process signs the whole corpus (one login, one unwrap); refused
# inputs are reported and do not stop the others.
mkdir signed
hs -q sign apk --key corpus --out-dir signed --v1-signing true --v2-signing true --v3-signing true \
    "$CORPUS"/*.apk >/dev/null 2>sign.err

signed=0 identical=0 refused=0 bad=0
while read -r want name; do
    case "$want" in \#*|"") continue ;; esac
    if [ "$want" = refused ]; then
        refused=$((refused + 1))
        [ -e "signed/$name" ] && { fail "$name: apksigner refuses it, hsmsign signed it"; bad=$((bad + 1)); }
        continue
    fi
    signed=$((signed + 1))
    if [ ! -e "signed/$name" ]; then
        fail "$name: apksigner signs it, hsmsign refused: $(grep -F "$name" sign.err | head -1)"
        bad=$((bad + 1))
    elif [ "$(sha256sum <"signed/$name" | cut -d' ' -f1)" != "$want" ]; then
        fail "$name: output differs from apksigner's"
        bad=$((bad + 1))
    else
        identical=$((identical + 1))
    fi
done <"$HASHES"
echo "# corpus: $identical of $signed signed inputs byte-identical to apksigner; $refused refused by both"
assert "every input apksigner signs is signed byte-identically ($identical/$signed)" test "$bad" -eq 0
assert "the hash file covers the corpus ($((signed + refused)) APKs)" \
    test "$((signed + refused))" -eq "$(ls "$CORPUS"/*.apk | wc -l)"

# Live apksigner on a few inputs (pin hints, a source stamp, bytes between
# CD and EOCD, a block whose sizes disagree): the stored hashes are its.
if command -v apksigner >/dev/null; then
    for n in pinsapp-unsigned valid-stamp v2-only-garbage-between-cd-and-eocd \
             v2-only-apk-sig-block-size-mismatch; do
        apksigner sign --key "$CORPUS/rsa-2048.pk8" --cert "$CORPUS/rsa-2048.x509.pem" \
            --v1-signing-enabled true --v2-signing-enabled true --v3-signing-enabled true \
            --v4-signing-enabled false --v1-signer-name CERT --out "live-$n.apk" "$CORPUS/$n.apk"
        check "$n: live apksigner output equals hsmsign's" cmp "live-$n.apk" "signed/$n.apk"
    done
else
    echo "# apksigner not installed: live comparison skipped"
fi
finish
