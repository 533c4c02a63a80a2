/* Android binary XML (AXML), as aapt writes AndroidManifest.xml: a strict,
 * bounds-checked reader for what signing needs, the minimum SDK. */
#ifndef HSMSIGN_ANDROID_AXML_H
#define HSMSIGN_ANDROID_AXML_H

#include <stddef.h>
#include <stdint.h>

#include "zip/zip.h"
#include "util/result.h"

/* minSdkVersion of <uses-sdk> in a binary manifest: the integer, or for a
 * codename (a preview SDK, e.g. "Tiramisu") the SDK the codename will
 * become, as apksigner does; 1 when <uses-sdk> or the attribute is absent
 * (Android's default). what names the file in errors. */
hs_result hs_axml_min_sdk(const uint8_t *xml, size_t len, const char *what, int *min_sdk,
                          hs_error *e) HS_MUST_CHECK;

/* What APK verification reads from the manifest, as apksig does: minSdk
 * (as above), targetSdkVersion (default: minSdk) and the <manifest>
 * element's targetSandboxVersion (default 1). */
typedef struct hs_axml_sdk {
    int min_sdk, target_sdk, target_sandbox;
} hs_axml_sdk;
hs_result hs_axml_sdk_info(const uint8_t *xml, size_t len, const char *what, hs_axml_sdk *out,
                           hs_error *e) HS_MUST_CHECK;

/* The same for the AndroidManifest.xml entry of an APK (stored or deflated). */
hs_result hs_axml_apk_min_sdk(const hs_zip *z, int *min_sdk, hs_error *e) HS_MUST_CHECK;

#endif
