#include "avb/avb_helper.h"

#include <string.h>

/* DER DigestInfo headers (RFC 8017 section 9.2, note 1). */
static const uint8_t sha256_prefix[HS_AVB_DIGEST_INFO_PREFIX_LEN] = {
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t sha512_prefix[HS_AVB_DIGEST_INFO_PREFIX_LEN] = {
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
    0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

/* Names the hash a DigestInfo at p claims, for a precise error message. */
static const char *digest_info_hash(const uint8_t *p, size_t avail)
{
    if (avail >= sizeof sha256_prefix && memcmp(p, sha256_prefix, sizeof sha256_prefix) == 0)
        return "SHA-256";
    if (avail >= sizeof sha512_prefix && memcmp(p, sha512_prefix, sizeof sha512_prefix) == 0)
        return "SHA-512";
    return NULL;
}

hs_result hs_avb_helper_parse_block(const char *algorithm, const uint8_t *block, size_t len,
                                    hs_avb_helper_block *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    const hs_avb_alg *alg = hs_avb_alg_by_name(algorithm);
    if (alg == NULL || alg->hash_len == 0)
        return hs_fail(e, HS_E_USAGE, "signing helper: unknown or unsigned algorithm \"%s\"",
                       algorithm);
    if (len != alg->sig_len)
        return hs_fail(e, HS_E_FORMAT, "signing helper: %s needs a %zu-byte block, got %zu",
                       alg->name, alg->sig_len, len);
    const uint8_t *prefix = alg->hash_len == 32 ? sha256_prefix : sha512_prefix;
    const char *want = alg->hash_len == 32 ? "SHA-256" : "SHA-512";
    size_t di_len = HS_AVB_DIGEST_INFO_PREFIX_LEN + alg->hash_len;
    if (block[0] != 0x00 || block[1] != 0x01)
        return hs_fail(e, HS_E_FORMAT,
                       "signing helper: block does not start with 00 01 (not PKCS#1 v1.5 type 1)");
    size_t sep = 2;
    while (sep < len && block[sep] == 0xff)
        sep++;
    if (sep == len || block[sep] != 0x00)
        return hs_fail(e, HS_E_FORMAT,
                       "signing helper: padding byte %zu is %02x, not ff or the 00 separator", sep,
                       sep < len ? block[sep] : 0);
    if (sep - 2 < 8)
        return hs_fail(e, HS_E_FORMAT, "signing helper: only %zu padding bytes (PKCS#1 needs 8)",
                       sep - 2);
    const uint8_t *di = block + sep + 1;
    size_t di_avail = len - sep - 1;
    const char *claimed = digest_info_hash(di, di_avail);
    if (claimed == NULL)
        return hs_fail(e, HS_E_FORMAT,
                       "signing helper: no SHA-256 or SHA-512 DigestInfo after the padding");
    if (strcmp(claimed, want) != 0)
        return hs_fail(e, HS_E_FORMAT, "signing helper: block carries a %s digest, %s needs %s",
                       claimed, alg->name, want);
    if (memcmp(di, prefix, HS_AVB_DIGEST_INFO_PREFIX_LEN) != 0 || di_avail != di_len)
        return hs_fail(e, HS_E_FORMAT, "signing helper: DigestInfo is %zu bytes, %s needs %zu",
                       di_avail, alg->name, di_len);
    out->alg = alg;
    out->sig_alg = alg->sig_alg;
    out->digest_len = alg->hash_len;
    memcpy(out->digest, di + HS_AVB_DIGEST_INFO_PREFIX_LEN, alg->hash_len);
    out->digest_info_len = di_len;
    memcpy(out->digest_info, di, di_len);
    return HS_OK;
}
