/* Binary AndroidManifest.xml (AXML): hs_axml_min_sdk. */
#include "fuzz_common.h"
#include "apk/axml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int min_sdk = 0;
    hs_error e;
    (void)hs_axml_min_sdk(data, size, "fuzz manifest", &min_sdk, &e);
    return 0;
}
