/* Private key files for import (.pk8 DER, PEM): hs_pk8_parse, and the
 * public half of what it accepts. */
#include "fuzz_common.h"
#include "keystore/pk8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hs_pk8_key k;
    hs_error e;
    if (hs_pk8_parse(data, size, "fuzz.pk8", &k, &e) == HS_OK) {
        EVP_PKEY *pub = NULL;
        if (hs_pk8_public(&k, "fuzz.pk8", &pub, &e) == HS_OK)
            EVP_PKEY_free(pub);
    }
    hs_pk8_free(&k);
    return 0;
}
