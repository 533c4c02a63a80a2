#include "avb/avb_pubkey.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "avb/avb_bytes.h"
#include "util/file.h"

#define AVB_PUBKEY_MAX_FILE (8 + 2 * 1024)

static bool is_supported_bits(uint32_t bits)
{
    return bits == 1024 || bits == 2048 || bits == 4096 || bits == 8192;
}

/* avbtool rounds the modulus bit length up to a power of two. */
static uint32_t round_pow2(uint32_t v)
{
    uint32_t p = 1;
    while (p < v && p != 0)
        p <<= 1;
    return p;
}

/* -n^-1 mod 2^32 for odd n, by Newton iteration on the low word (each
 * step doubles the number of correct bits: 5 steps cover 32). */
static uint32_t n0inv_of(uint32_t n0)
{
    uint32_t inv = n0;
    for (int i = 0; i < 5; i++)
        inv *= 2u - n0 * inv;
    return (uint32_t)0 - inv;
}

/* Writes the blob for modulus n into out (8 + 2*bits/8 bytes). */
static hs_result encode_modulus(const BIGNUM *n, uint32_t bits, uint8_t *out, hs_error *e)
{
    size_t nbytes = bits / 8;
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *rr = BN_new();
    /* R = 2^bitlen(n); avbtool stores R^2 mod n for Montgomery arithmetic. */
    bool ok = ctx != NULL && rr != NULL && BN_set_bit(rr, 2 * BN_num_bits(n)) &&
              BN_mod(rr, rr, n, ctx) && BN_bn2binpad(n, out + 8, (int)nbytes) >= 0 &&
              BN_bn2binpad(rr, out + 8 + nbytes, (int)nbytes) >= 0;
    BN_free(rr);
    BN_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "computing the AVB public key R^2 mod n failed");
    hs_avb_put_be32(out, bits);
    hs_avb_put_be32(out + 4, n0inv_of(hs_avb_get_be32(out + 8 + nbytes - 4)));
    return HS_OK;
}

hs_result hs_avb_pubkey_encode(EVP_PKEY *key, uint8_t **blob, size_t *blob_len, hs_error *e)
{
    BIGNUM *n = NULL, *ex = NULL;
    *blob = NULL;
    *blob_len = 0;
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
        return hs_fail(e, HS_E_USAGE, "AVB keys must be RSA keys");
    if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) ||
        !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &ex)) {
        BN_free(n);
        BN_free(ex);
        return hs_fail(e, HS_E_CRYPTO, "cannot read the RSA modulus and exponent");
    }
    hs_result r;
    uint32_t bits = round_pow2((uint32_t)BN_num_bits(n));
    if (!BN_is_word(ex, 65537)) {
        r = hs_fail(e, HS_E_USAGE, "AVB requires RSA public exponent 65537");
        goto out;
    }
    if (!is_supported_bits(bits) || !BN_is_odd(n)) {
        r = hs_fail(e, HS_E_USAGE, "RSA key of %d bits cannot be an AVB key (1024..8192 bits)",
                    BN_num_bits(n));
        goto out;
    }
    size_t len = 8 + 2 * (size_t)(bits / 8);
    uint8_t *buf = malloc(len);
    if (buf == NULL) {
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
        goto out;
    }
    r = encode_modulus(n, bits, buf, e);
    if (r != HS_OK) {
        free(buf);
        goto out;
    }
    *blob = buf;
    *blob_len = len;
out:
    BN_free(n);
    BN_free(ex);
    return r;
}

static hs_result rsa_public_from_bn(const BIGNUM *n, EVP_PKEY **key, hs_error *e)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *ex = BN_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    *key = NULL;
    bool ok = bld != NULL && ex != NULL && BN_set_word(ex, 65537) &&
              OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
              OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, ex) &&
              (params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
              (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) != NULL &&
              EVP_PKEY_fromdata_init(ctx) > 0 &&
              EVP_PKEY_fromdata(ctx, key, EVP_PKEY_PUBLIC_KEY, params) > 0;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(ex);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "cannot build an RSA public key from the AVB key");
    return HS_OK;
}

hs_result hs_avb_pubkey_decode(const uint8_t *blob, size_t blob_len, const char *what,
                               EVP_PKEY **key, uint32_t *num_bits, hs_error *e)
{
    *key = NULL;
    if (blob_len < 8)
        return hs_fail(e, HS_E_FORMAT, "%s: not an AVB public key (%zu bytes, too short)", what,
                       blob_len);
    uint32_t bits = hs_avb_get_be32(blob);
    if (!is_supported_bits(bits))
        return hs_fail(e, HS_E_FORMAT,
                       "%s: not an AVB public key (key_num_bits %u is not 1024..8192)", what, bits);
    size_t nbytes = bits / 8;
    if (blob_len != 8 + 2 * nbytes)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: not an AVB public key (%zu bytes, %u-bit keys take %zu)", what,
                       blob_len, bits, 8 + 2 * nbytes);
    BIGNUM *n = BN_bin2bn(blob + 8, (int)nbytes, NULL);
    if (n == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_result r;
    uint8_t *expect = malloc(blob_len);
    if (expect == NULL) {
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
        goto out;
    }
    if (!BN_is_odd(n) || round_pow2((uint32_t)BN_num_bits(n)) != bits) {
        r = hs_fail(e, HS_E_FORMAT, "%s: not an AVB public key (modulus does not fit %u bits)",
                    what, bits);
        goto out;
    }
    r = encode_modulus(n, bits, expect, e);
    if (r != HS_OK)
        goto out;
    if (memcmp(expect, blob, blob_len) != 0) {
        r = hs_fail(e, HS_E_FORMAT,
                    "%s: not an AVB public key (n0inv or R^2 mod n do not match the modulus)",
                    what);
        goto out;
    }
    r = rsa_public_from_bn(n, key, e);
    if (r == HS_OK && num_bits != NULL)
        *num_bits = bits;
out:
    free(expect);
    BN_free(n);
    return r;
}

hs_result hs_avb_pubkey_write(EVP_PKEY *key, const char *path, hs_error *e)
{
    uint8_t *blob;
    size_t len;
    hs_result r = hs_avb_pubkey_encode(key, &blob, &len, e);
    if (r != HS_OK)
        return r;
    r = hs_write_file_atomic(path, blob, len, 0644, false, e);
    free(blob);
    return r;
}

hs_result hs_avb_pubkey_read(const char *path, uint8_t **blob, size_t *blob_len, hs_error *e)
{
    hs_result r = hs_read_file(path, AVB_PUBKEY_MAX_FILE, blob, blob_len, e);
    if (r == HS_E_FORMAT)
        return hs_fail(e, HS_E_FORMAT, "%s: not an AVB public key (file too large)", path);
    if (r != HS_OK)
        return r;
    EVP_PKEY *key = NULL;
    r = hs_avb_pubkey_decode(*blob, *blob_len, path, &key, NULL, e);
    EVP_PKEY_free(key);
    if (r != HS_OK) {
        free(*blob);
        *blob = NULL;
        *blob_len = 0;
    }
    return r;
}
