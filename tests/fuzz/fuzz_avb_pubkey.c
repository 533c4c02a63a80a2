/* AVB public key blobs (.avbpubkey, avb_pkmd.bin): hs_avb_pubkey_decode. */
#include "fuzz_common.h"
#include <openssl/evp.h>
#include "avb/avb_pubkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    EVP_PKEY *key = NULL;
    uint32_t bits = 0;
    hs_error e;
    if (hs_avb_pubkey_decode(data, size, "fuzz pubkey", &key, &bits, &e) == HS_OK)
        EVP_PKEY_free(key);
    return 0;
}
