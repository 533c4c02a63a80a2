/* age identity files (age-keygen output): hs_age_parse_identity_file. */
#include "fuzz_common.h"
#include "backup/age.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char **ids = NULL;
    size_t n = 0;
    hs_error e;
    if (hs_age_parse_identity_file(data, size, &ids, &n, &e) == HS_OK)
        hs_age_identities_free(ids, n);
    return 0;
}
