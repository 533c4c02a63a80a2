#include "apk/apk_signing_block.h"

#include <string.h>

#include <openssl/core_names.h>

#include "zip/zip.h"

#define SDK_N 24u

static const struct {
    uint32_t id;
    hs_sig_alg alg;
    int sha512;
} known_algorithms[] = {
    {0x0101, HS_SIG_RSA_PSS_SHA256, 0},   {0x0102, HS_SIG_RSA_PSS_SHA512, 1},
    {0x0103, HS_SIG_RSA_PKCS1_SHA256, 0}, {0x0104, HS_SIG_RSA_PKCS1_SHA512, 1},
    {0x0201, HS_SIG_ECDSA_SHA256, 0},     {0x0202, HS_SIG_ECDSA_SHA512, 1},
};

bool hs_apk_algorithm_by_id(uint32_t id, hs_apk_sig_algorithm *out)
{
    for (size_t i = 0; i < sizeof known_algorithms / sizeof known_algorithms[0]; i++) {
        if (known_algorithms[i].id != id)
            continue;
        out->id = id;
        out->alg = known_algorithms[i].alg;
        out->content_md = known_algorithms[i].sha512 ? EVP_sha512() : EVP_sha256();
        /* Every v2 algorithm (other than verity and DSA) dates from Android 7.0. */
        out->min_sdk = SDK_N;
        return true;
    }
    return false;
}

hs_result hs_apk_choose_algorithm(EVP_PKEY *pub, const char *what, hs_apk_sig_algorithm *out,
                                  hs_error *e)
{
    int bits = EVP_PKEY_get_bits(pub);
    uint32_t id;
    if (EVP_PKEY_is_a(pub, "RSA"))
        id = bits <= 3072 ? 0x0103 : 0x0104;
    else if (EVP_PKEY_is_a(pub, "EC"))
        id = bits <= 256 ? 0x0201 : 0x0202;
    else
        return hs_fail(e, HS_E_USAGE, "%s: APK signing supports RSA and EC keys, not %s", what,
                       EVP_PKEY_get0_type_name(pub));
    if (!hs_apk_algorithm_by_id(id, out))
        return hs_fail(e, HS_E_INTERNAL, "APK algorithm 0x%04x missing from the table", id);
    return HS_OK;
}

/* lp( lp( u32 alg_id, lp(bytes) ) ): the one-element lists of digests and
 * of signatures look the same. */
static void put_alg_list(hs_apk_buf *b, uint32_t alg_id, const uint8_t *bytes, size_t len)
{
    size_t list = hs_apk_buf_lp_begin(b);
    size_t item = hs_apk_buf_lp_begin(b);
    hs_apk_buf_u32(b, alg_id);
    hs_apk_buf_lp(b, bytes, len);
    hs_apk_buf_lp_end(b, item);
    hs_apk_buf_lp_end(b, list);
}

hs_result hs_apk_build_signed_data(hs_apk_scheme scheme, const hs_apk_signer_input *in,
                                   hs_apk_buf *out, hs_error *e)
{
    put_alg_list(out, in->algorithm->id, in->content_digest, in->content_digest_len);
    size_t certs = hs_apk_buf_lp_begin(out);
    hs_apk_buf_lp(out, in->cert_der, in->cert_der_len);
    hs_apk_buf_lp_end(out, certs);
    if (scheme == HS_APK_SCHEME_V3) {
        hs_apk_buf_u32(out, in->min_sdk);
        hs_apk_buf_u32(out, in->max_sdk);
    }
    size_t attrs = hs_apk_buf_lp_begin(out);
    if (scheme == HS_APK_SCHEME_V2 && in->v3_also) {
        size_t attr = hs_apk_buf_lp_begin(out);
        hs_apk_buf_u32(out, HS_APK_ATTR_STRIPPING_PROTECTION);
        hs_apk_buf_u32(out, HS_APK_SCHEME_V3);
        hs_apk_buf_lp_end(out, attr);
    }
    if (scheme == HS_APK_SCHEME_V3 && in->lineage != NULL) {
        size_t attr = hs_apk_buf_lp_begin(out);
        hs_apk_buf_u32(out, HS_APK_ATTR_PROOF_OF_ROTATION);
        hs_apk_buf_append(out, in->lineage, in->lineage_len);
        hs_apk_buf_lp_end(out, attr);
    }
    /* apksig's order: proof of rotation, dev release, rotation min SDK. */
    if (scheme == HS_APK_SCHEME_V3 && in->dev_release_attr) {
        hs_apk_buf_u32(out, 4);
        hs_apk_buf_u32(out, HS_APK_ATTR_ROTATION_DEV_RELEASE);
    }
    if (scheme == HS_APK_SCHEME_V3 && in->rotation_min_sdk_attr != 0) {
        hs_apk_buf_u32(out, 8);
        hs_apk_buf_u32(out, HS_APK_ATTR_ROTATION_MIN_SDK);
        hs_apk_buf_u32(out, in->rotation_min_sdk_attr);
    }
    hs_apk_buf_lp_end(out, attrs);
    /* apksig ends v2 signed data with one more, empty, element. */
    if (scheme == HS_APK_SCHEME_V2)
        hs_apk_buf_u32(out, 0);
    return hs_apk_buf_check(out, "APK signed data", e);
}

hs_result hs_apk_build_scheme_value(hs_apk_scheme scheme, const hs_apk_signer_input *in,
                                    const hs_apk_buf *signed_data, const uint8_t *sig,
                                    size_t sig_len, hs_apk_buf *out, hs_error *e)
{
    size_t signers = hs_apk_buf_lp_begin(out);
    size_t signer = hs_apk_buf_lp_begin(out);
    hs_apk_buf_lp(out, signed_data->data, signed_data->len);
    if (scheme == HS_APK_SCHEME_V3) {
        hs_apk_buf_u32(out, in->min_sdk);
        hs_apk_buf_u32(out, in->max_sdk);
    }
    put_alg_list(out, in->algorithm->id, sig, sig_len);
    hs_apk_buf_lp(out, in->spki_der, in->spki_der_len);
    hs_apk_buf_lp_end(out, signer);
    hs_apk_buf_lp_end(out, signers);
    return hs_apk_buf_check(out, "APK signature scheme block", e);
}

hs_result hs_apk_build_signing_block(const hs_apk_block_pair *pairs, size_t count,
                                     hs_apk_buf *out, hs_error *e)
{
    /* leading size + trailing size + magic, then 12 bytes of header per pair */
    uint64_t total = 8 + 8 + 16;
    for (size_t i = 0; i < count; i++)
        total += 12 + (uint64_t)pairs[i].len;
    uint64_t padding = 0;
    if (total % HS_APK_BLOCK_ALIGNMENT != 0) {
        padding = HS_APK_BLOCK_ALIGNMENT - total % HS_APK_BLOCK_ALIGNMENT;
        if (padding < 12) /* the padding pair needs room for its own header */
            padding += HS_APK_BLOCK_ALIGNMENT;
        total += padding;
    }
    if (total > INT32_MAX)
        return hs_fail(e, HS_E_FORMAT, "APK Signing Block would be %ju bytes, too large",
                       (uintmax_t)total);
    hs_apk_buf_u64(out, total - 8);
    for (size_t i = 0; i < count; i++) {
        hs_apk_buf_u64(out, 4 + (uint64_t)pairs[i].len);
        hs_apk_buf_u32(out, pairs[i].id);
        hs_apk_buf_append(out, pairs[i].value, pairs[i].len);
    }
    if (padding > 0) {
        hs_apk_buf_u64(out, padding - 8);
        hs_apk_buf_u32(out, HS_APK_BLOCK_ID_PADDING);
        hs_apk_buf_zeros(out, (size_t)padding - 12);
    }
    hs_apk_buf_u64(out, total - 8);
    hs_apk_buf_append(out, HS_APK_BLOCK_MAGIC, 16);
    return hs_apk_buf_check(out, "APK Signing Block", e);
}

hs_result hs_apk_block_find(const uint8_t *block, size_t block_len, uint32_t id,
                            const uint8_t **value, size_t *value_len, bool *found, hs_error *e)
{
    *found = false;
    if (block_len < 32)
        return hs_fail(e, HS_E_FORMAT, "APK Signing Block is too short");
    size_t pos = 8, end = block_len - 24;
    while (pos < end) {
        if (end - pos < 12)
            return hs_fail(e, HS_E_FORMAT, "APK Signing Block: truncated ID-value pair");
        uint64_t pair_len = hs_le64(block + pos);
        if (pair_len < 4 || pair_len > end - pos - 8)
            return hs_fail(e, HS_E_FORMAT,
                           "APK Signing Block: ID-value pair at %zu has invalid length %ju", pos,
                           (uintmax_t)pair_len);
        if (hs_le32(block + pos + 8) == id && !*found) {
            *value = block + pos + 12;
            *value_len = (size_t)pair_len - 4;
            *found = true;
        }
        pos += 8 + (size_t)pair_len;
    }
    return HS_OK;
}
