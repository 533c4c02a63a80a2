/* Shamir shares, text form: hs_share_parse, then the checksum check that
 * recovery runs on every parsed share. */
#include "fuzz_common.h"
#include "backup/share.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    if (text == NULL)
        return 0;
    hs_share sh;
    hs_error e;
    memset(&sh, 0, sizeof sh);
    if (hs_share_parse(text, size, "fuzz.share", &sh, &e) == HS_OK) {
        (void)hs_share_verify_checksum(&sh, &e);
        hs_share_wipe(&sh);
    }
    free(text);
    return 0;
}
