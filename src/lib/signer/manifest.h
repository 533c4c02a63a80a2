/* The batch manifest of `hsmsign sign batch`: which input is signed with
 * which key into which output. Format (docs/batch.md):
 *   [ {"input": "a.apk", "output": "out/a.apk", "key": "platform", "min_sdk": 21}, ... ]
 * with optional "lineage": "platform.lineage", "old_key": "oldplatform" and
 * "rotation_min_sdk": 33
 * or the same list under {"version": 1, "apks": [...]}. Relative paths
 * are relative to the manifest's directory. */
#ifndef HSMSIGN_SIGNER_MANIFEST_H
#define HSMSIGN_SIGNER_MANIFEST_H

#include <stddef.h>

#include "util/result.h"

typedef struct hs_batch_item {
    char *input, *output, *key;
    int min_sdk; /* -1: from the manifest of the APK */
    /* Key rotation (NULL: none): the lineage file (resolved like input)
     * and the older signer that signs v1 and v2 (sign apk --old-key). */
    char *lineage, *old_key;
    /* "rotation_min_sdk" (needs a lineage): an API level, or "apksigner31"
     * for HS_APK_ROTATION_APKSIGNER31 (0), as sign apk's
     * --rotation-min-sdk-version; -1: the run's. */
    int rotation_min_sdk;
} hs_batch_item;

hs_result hs_batch_manifest_load(const char *path, hs_batch_item **items, size_t *n,
                                 hs_error *e) HS_MUST_CHECK;
void hs_batch_items_free(hs_batch_item *items, size_t n);

#endif
