#!/bin/sh
# Reference verdicts of apksigner over AOSP apksig's APK corpus, computed
# once (apksigner is a JVM per call, ~1 s each) and committed as
# verdicts.tsv, so that test_apk_corpus.sh only has to run hsmsign.
#
# usage: make_verdicts.sh CORPUS_DIR > verdicts.tsv
# Columns (tab-separated): file, min-sdk ("24", or "manifest": apksigner's
# default, the minSdkVersion of AndroidManifest.xml), verdict ("verified"
# when apksigner exits 0, "rejected" when it reports errors or crashes),
# apksigner's first error line (an ERROR: line, else the exception line).
set -eu
dir=${1:?usage: make_verdicts.sh CORPUS_DIR}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf '# file\tmin-sdk\tverdict\tfirst-error\n'
printf '# apksigner %s (%s)\n' "$(apksigner --version 2>/dev/null || echo '?')" \
    "$(dpkg-query -W -f '${Version}' apksigner 2>/dev/null || echo 'unknown package')"
for f in "$dir"/*.apk; do
    name=$(basename "$f")
    for range in 24 manifest; do
        if [ "$range" = 24 ]; then
            set -- --min-sdk-version 24
        else
            set --
        fi
        if apksigner verify "$@" "$f" >"$out" 2>&1; then
            verdict=verified
        else
            verdict=rejected
        fi
        first=$(grep -m1 -E '^ERROR|Exception' "$out" | tr '\t' ' ' | cut -c1-200 || true)
        printf '%s\t%s\t%s\t%s\n' "$name" "$range" "$verdict" "$first"
    done
done
