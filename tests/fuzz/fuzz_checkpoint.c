/* Audit log checkpoints (C2SP tlog-checkpoint note text):
 * hs_checkpoint_parse. */
#include "fuzz_common.h"
#include "audit/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    if (text == NULL)
        return 0;
    hs_checkpoint c;
    hs_error e;
    (void)hs_checkpoint_parse(text, size, &c, &e);
    free(text);
    return 0;
}
