/* Key files (keys/NAME.key, JSON): hs_keyfile_parse. */
#include "fuzz_common.h"
#include "keystore/keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hs_keyfile kf;
    hs_error e;
    memset(&kf, 0, sizeof kf);
    if (hs_keyfile_parse(data, size, "fuzz.key", &kf, &e) == HS_OK)
        hs_keyfile_free(&kf);
    return 0;
}
