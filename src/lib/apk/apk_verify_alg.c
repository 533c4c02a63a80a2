#include "apk/apk_verify_alg.h"

#include <openssl/rsa.h>

#define SDK_N 24
#define SDK_P 28

static const hs_apk_valg algs[] = {
    {0x0101, HS_APK_KEY_RSA, true, false, HS_APK_CONTENT_SHA256, SDK_N},
    {0x0102, HS_APK_KEY_RSA, true, true, HS_APK_CONTENT_SHA512, SDK_N},
    {0x0103, HS_APK_KEY_RSA, false, false, HS_APK_CONTENT_SHA256, SDK_N},
    {0x0104, HS_APK_KEY_RSA, false, true, HS_APK_CONTENT_SHA512, SDK_N},
    {0x0201, HS_APK_KEY_EC, false, false, HS_APK_CONTENT_SHA256, SDK_N},
    {0x0202, HS_APK_KEY_EC, false, true, HS_APK_CONTENT_SHA512, SDK_N},
    {0x0301, HS_APK_KEY_DSA, false, false, HS_APK_CONTENT_SHA256, SDK_N},
    /* deterministic DSA (RFC 6979): verified like any DSA signature */
    {0x0302, HS_APK_KEY_DSA, false, false, HS_APK_CONTENT_SHA256, SDK_N},
    {0x0421, HS_APK_KEY_RSA, false, false, HS_APK_CONTENT_VERITY, SDK_P},
    {0x0423, HS_APK_KEY_EC, false, false, HS_APK_CONTENT_VERITY, SDK_P},
    {0x0425, HS_APK_KEY_DSA, false, false, HS_APK_CONTENT_VERITY, SDK_P},
};

const hs_apk_valg *hs_apk_valg_find(uint32_t id)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (algs[i].id == id)
            return &algs[i];
    return NULL;
}

static bool key_is(const hs_apk_valg *alg, EVP_PKEY *key)
{
    switch (alg->key) {
    case HS_APK_KEY_RSA: return EVP_PKEY_is_a(key, "RSA");
    case HS_APK_KEY_EC: return EVP_PKEY_is_a(key, "EC");
    case HS_APK_KEY_DSA: return EVP_PKEY_is_a(key, "DSA");
    }
    return false;
}

bool hs_apk_valg_verify(const hs_apk_valg *alg, EVP_PKEY *key, const uint8_t *data, size_t len,
                        const uint8_t *sig, size_t sig_len)
{
    if (!key_is(alg, key))
        return false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = alg->sha512 ? EVP_sha512() : EVP_sha256();
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key) == 1;
    if (ok && alg->pss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    ok = ok && EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}
