/* age files (binary and armored): header, stanzas, MAC, payload stream.
 * The identity is the one of the C2SP CCTV vectors that seed the corpus
 * (read from tests/vectors/age/x25519 at start-up, not copied here), so
 * well-formed inputs get past the header into the payload. No passphrase:
 * scrypt stanzas are parsed but never run (they cost seconds). */
#include "fuzz_common.h"
#include "backup/age.h"
#include "util/secmem.h"

#ifndef FUZZ_VECTORS_DIR
#define FUZZ_VECTORS_DIR "tests/vectors"
#endif

static char identity[128];
static const char *identities[] = {identity};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FILE *f = fopen(FUZZ_VECTORS_DIR "/age/x25519", "r");
    char line[256];
    while (f != NULL && fgets(line, sizeof line, f) != NULL && line[0] != '\n') {
        if (strncmp(line, "identity: ", 10) == 0) {
            line[strcspn(line, "\r\n")] = '\0';
            snprintf(identity, sizeof identity, "%s", line + 10);
        }
    }
    if (f != NULL)
        fclose(f);
    if (identity[0] == '\0') {
        fprintf(stderr, "fuzz_age_decrypt: cannot read the identity of %s/age/x25519\n",
                FUZZ_VECTORS_DIR);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    hs_error e;
    if (hs_age_decrypt(identities, 1, NULL, data, size, &plain, &plain_len, &e) == HS_OK)
        hs_secure_free(plain, plain_len);
    return 0;
}
