/* The avbtool --signing_helper block on stdin: hs_avb_helper_parse_block.
 * The first byte picks the ALGORITHM argument, the rest is the block. */
#include "fuzz_common.h"
#include "avb/avb_helper.h"

static const char *const algorithms[] = {
    "SHA256_RSA2048", "SHA256_RSA4096", "SHA256_RSA8192",
    "SHA512_RSA2048", "SHA512_RSA4096", "SHA512_RSA8192", "NONE", "SHA1_RSA2048",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *alg = algorithms[data[0] % (sizeof algorithms / sizeof algorithms[0])];
    hs_avb_helper_block blk;
    hs_error e;
    (void)hs_avb_helper_parse_block(alg, data + 1, size - 1, &blk, &e);
    return 0;
}
