/* TEST FIXTURE ONLY — never linked into hsmsign.
 *
 * An hs_sign_fn backed by an OpenSSL private key loaded from a file, so
 * format encoders can be compared byte for byte with AOSP tools that take
 * a key file (apksigner --key, avbtool --key). The product signs only
 * through the signer chokepoint and the HSM; integration tests check the
 * same outputs through that path. */
#ifndef HSMSIGN_TEST_SOFT_SIGNER_H
#define HSMSIGN_TEST_SOFT_SIGNER_H

#include <openssl/evp.h>

#include "signer/sign_fn.h"

typedef struct soft_signer {
    EVP_PKEY *key;
    unsigned calls; /* how many signatures were asked for */
} soft_signer;

/* Loads a PEM (any private key type) or DER PKCS#8 (.pk8) file. */
hs_result soft_signer_load(soft_signer *s, const char *path, hs_error *e);
/* Uses a key already in memory (takes a reference). */
void soft_signer_adopt(soft_signer *s, EVP_PKEY *key);
void soft_signer_free(soft_signer *s);
/* The public half, owned by s. */
EVP_PKEY *soft_signer_public(soft_signer *s);
hs_sign_fn soft_signer_fn(soft_signer *s);

#endif
