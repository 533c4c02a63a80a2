/* Signing certificate lineage (v3 key rotation): hs_apk_lineage_parse in
 * both formats (the first byte picks: a lineage file with its magic, or
 * the v3 proof-of-rotation attribute value), then find and merge with
 * itself, as the verifier and key rotation use them. */
#include "fuzz_common.h"
#include "apk/apk_lineage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    hs_apk_lineage_format fmt = data[0] & 1 ? HS_APK_LINEAGE_FILE : HS_APK_LINEAGE_V3_ATTR;
    hs_apk_lineage l, merged;
    hs_error e;
    if (hs_apk_lineage_parse(data + 1, size - 1, fmt, "fuzz lineage", &l, &e) != HS_OK)
        return 0;
    (void)hs_apk_lineage_find(&l, l.nodes[l.count - 1].cert, l.nodes[l.count - 1].cert_len);
    if (hs_apk_lineage_merge(&l, &l, &merged, &e) == HS_OK)
        hs_apk_lineage_free(&merged);
    hs_apk_lineage_free(&l);
    return 0;
}
