/* The key file: everything hsmsign keeps about one signing key outside
 * the HSM. It holds no secret in plaintext: under the wrapped profile the
 * private key is wrapped under the token's wrap key in RFC 5649 (AES-KWP;
 * the field keeps the name "CKM_AES_KEY_WRAP_PAD", SoftHSM's name for it:
 * keystore/kwp.h); under the resident profile it stays in the token and
 * the file names it by CKA_ID. Format: docs/key-file.md. */
#ifndef HSMSIGN_KEYSTORE_KEYFILE_H
#define HSMSIGN_KEYSTORE_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "keystore/keyalg.h"
#include "p11/profile.h"
#include "util/result.h"

#define HS_KEYFILE_VERSION 1
#define HS_KEYFILE_MAX_SIZE (256 * 1024)
#define HS_KCV_LEN 3
#define HS_KEY_NAME_MAX 128
#define HS_KEY_ID_MAX 64

typedef struct hs_keyfile {
    char name[HS_KEY_NAME_MAX + 1];
    hs_profile profile; /* absent from the file (version 1 before profiles): wrapped */
    bool profile_given; /* the file has a "profile" field (parsing only) */
    hs_keyalg alg;
    char origin[16];   /* "generated" (inside the HSM) or "imported" */
    char created[32];  /* RFC 3339 UTC */
    /* wrapped and yubihsm profiles */
    char wrap_label[64];
    uint8_t wrap_kcv[HS_KCV_LEN];
    bool wrap_kcv_unknown; /* made on a token whose AES keys have no
                              CKA_CHECK_VALUE (NSS): the canary names the key */
    uint8_t *wrap_canary;  /* hs_kwp_test_key wrapped under the wrap key, or NULL */
    size_t wrap_canary_len;
    uint8_t *wrapped;  /* wrapped PKCS#8 private key */
    size_t wrapped_len;
    /* resident profile: the token object's CKA_ID */
    uint8_t key_id[HS_KEY_ID_MAX];
    size_t key_id_len;
    uint8_t *spki;     /* SubjectPublicKeyInfo DER */
    size_t spki_len;
    uint8_t fingerprint[32]; /* SHA-256 of spki */
    X509 *cert;
    EVP_PKEY *pub;     /* parsed from spki */
} hs_keyfile;

/* Parses and checks a key file: version, every field present and no
 * other, checksum, fingerprint, certificate matching the public key.
 * `path` is used in messages only. */
hs_result hs_keyfile_parse(const uint8_t *text, size_t len, const char *path, hs_keyfile *kf,
                           hs_error *e) HS_MUST_CHECK;
hs_result hs_keyfile_load(const char *path, hs_keyfile *kf, hs_error *e) HS_MUST_CHECK;

/* Serializes (with checksum) into a malloc'd NUL-terminated string. */
hs_result hs_keyfile_serialize(const hs_keyfile *kf, char **out, hs_error *e) HS_MUST_CHECK;

/* Fills spki, fingerprint and pub from an EVP_PKEY (takes a reference). */
hs_result hs_keyfile_set_public(hs_keyfile *kf, EVP_PKEY *pub, hs_error *e) HS_MUST_CHECK;

void hs_keyfile_free(hs_keyfile *kf);

/* "sha256:ab12..." style fingerprint text; out holds 65 bytes. */
void hs_keyfile_fingerprint_hex(const hs_keyfile *kf, char out[65]);

/* Key names become file names: letters, digits, '.', '_', '-', not
 * starting with '.', 1..128 bytes. */
hs_result hs_key_name_check(const char *name, hs_error *e) HS_MUST_CHECK;

#endif
