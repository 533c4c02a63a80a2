/* Creating signing keys: generated inside the HSM, or imported once from
 * an existing AOSP .pk8, then stored only wrapped. The token copy is a
 * session object, destroyed on every path: the HSM keeps nothing but its
 * wrap key whatever the number of keys. */
#ifndef HSMSIGN_KEYSTORE_KEYGEN_H
#define HSMSIGN_KEYSTORE_KEYGEN_H

#include <openssl/x509.h>

#include "keystore/keyfile.h"
#include "signer/signer.h"

typedef struct hs_keygen_params {
    const char *name;
    hs_keyalg alg;
    const char *subject;    /* NULL: "CN=<name>" */
    unsigned validity_days; /* 0: 10000, as AOSP's make_key */
} hs_keygen_params;

hs_result hs_key_generate(hs_signer *s, const hs_keygen_params *params, hs_error *e) HS_MUST_CHECK;

/* Imports a private key (PKCS#8 DER as AOSP's .pk8, or PEM) with its
 * certificate. The caller wipes and frees key_bytes. */
hs_result hs_key_import(hs_signer *s, const char *name, const uint8_t *key_bytes, size_t key_len,
                        const char *key_path, X509 *cert, hs_error *e) HS_MUST_CHECK;

/* The standard AOSP key set for one device. */
typedef struct hs_android_key {
    char name[HS_KEY_NAME_MAX + 1];
    hs_keyalg alg;
    char subject[256];
} hs_android_key;

#define HS_ANDROID_SET_SIZE 9
hs_result hs_android_key_set(const char *device, hs_keyalg app_alg, const char *organization,
                             hs_android_key out[HS_ANDROID_SET_SIZE], hs_error *e) HS_MUST_CHECK;

#endif
