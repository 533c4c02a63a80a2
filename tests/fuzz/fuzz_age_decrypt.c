/* age files (binary and armored): header, stanzas, MAC, payload stream.
 * The identity is the one of the C2SP CCTV vectors that seed the corpus,
 * so well-formed inputs get past the header into the payload. No
 * passphrase: scrypt stanzas are parsed but never run (they cost seconds). */
#include "fuzz_common.h"
#include "backup/age.h"
#include "util/secmem.h"

static const char *const identities[] = {
    "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    hs_error e;
    if (hs_age_decrypt(identities, 1, NULL, data, size, &plain, &plain_len, &e) == HS_OK)
        hs_secure_free(plain, plain_len);
    return 0;
}
