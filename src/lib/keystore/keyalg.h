/* Key algorithms a signing key can have. */
#ifndef HSMSIGN_KEYSTORE_KEYALG_H
#define HSMSIGN_KEYSTORE_KEYALG_H

#include <stdbool.h>

#include <openssl/evp.h>

#include "signer/sigalg.h"

typedef enum hs_keyalg {
    HS_KEY_RSA2048,
    HS_KEY_RSA3072,
    HS_KEY_RSA4096,
    HS_KEY_RSA8192, /* AVB's SHA*_RSA8192; slow to generate, mostly imported */
    HS_KEY_EC_P256,
} hs_keyalg;

const char *hs_keyalg_name(hs_keyalg a);           /* "rsa2048", "ec-p256" */
bool hs_keyalg_parse(const char *name, hs_keyalg *out);
bool hs_keyalg_is_rsa(hs_keyalg a);
unsigned hs_keyalg_bits(hs_keyalg a);
/* The algorithm of an existing public key, if hsmsign supports it. */
bool hs_keyalg_of_pkey(EVP_PKEY *pk, hs_keyalg *out);
/* Whether a signature algorithm can be made with a key of this kind. */
bool hs_keyalg_can_sign(hs_keyalg a, hs_sig_alg s);
/* The signature algorithm used for X.509 self-signatures with this key. */
hs_sig_alg hs_keyalg_default_sigalg(hs_keyalg a);

#endif
