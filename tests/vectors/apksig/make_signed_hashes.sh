#!/bin/bash
# Precomputes apksigner's outputs for the corpus signing test
# (tests/integration/test_apk_corpus_sign.sh): every APK of AOSP apksig's
# corpus (../shared/vectors/apksig, see its README for provenance) signed
# by `apksigner sign` with the corpus's own rsa-2048 test key, v1+v2+v3,
# v1 name CERT. Prints "<sha256>  <name>" for each output, "refused  <name>"
# where apksigner refuses the input. Running apksigner 275 times takes
# minutes; the test compares against this file and runs apksigner live
# only on a few inputs.
#   usage: make_signed_hashes.sh CORPUS_DIR > signed_hashes.txt
set -euo pipefail
C=${1:?usage: make_signed_hashes.sh CORPUS_DIR}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "# apksigner $(apksigner --version 2>/dev/null) ($(dpkg-query -W -f='${Version}' apksigner 2>/dev/null || echo unknown)) sign"
echo "#   --key rsa-2048.pk8 --cert rsa-2048.x509.pem --v1-signing-enabled true"
echo "#   --v2-signing-enabled true --v3-signing-enabled true --v4-signing-enabled false"
echo "#   --v1-signer-name CERT; made by tests/vectors/apksig/make_signed_hashes.sh"
echo "# corpus: AOSP tools/apksig test resources (yaap/tools_apksig bb12ed7f), see ../shared/vectors/apksig/README.md"
for f in "$C"/*.apk; do
  n=$(basename "$f")
  if apksigner sign --key "$C/rsa-2048.pk8" --cert "$C/rsa-2048.x509.pem" \
      --v1-signing-enabled true --v2-signing-enabled true --v3-signing-enabled true \
      --v4-signing-enabled false --v1-signer-name CERT --out "$T/out.apk" "$f" >/dev/null 2>&1; then
    echo "$(sha256sum < "$T/out.apk" | cut -d' ' -f1)  $n"
  else
    echo "refused  $n"
  fi
  rm -f "$T/out.apk"
done
