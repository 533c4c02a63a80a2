#include "signer/sigalg.h"

#include <string.h>

static const struct {
    hs_sig_alg alg;
    const char *name;
} names[] = {
    {HS_SIG_RSA_PKCS1_SHA1, "rsa-pkcs1-sha1"},
    {HS_SIG_RSA_PKCS1_SHA256, "rsa-pkcs1-sha256"},
    {HS_SIG_RSA_PKCS1_SHA512, "rsa-pkcs1-sha512"},
    {HS_SIG_RSA_PSS_SHA256, "rsa-pss-sha256"},
    {HS_SIG_RSA_PSS_SHA512, "rsa-pss-sha512"},
    {HS_SIG_ECDSA_SHA256, "ecdsa-p256-sha256"},
    {HS_SIG_ECDSA_SHA512, "ecdsa-sha512"},
};

const char *hs_sig_alg_name(hs_sig_alg alg)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].alg == alg)
            return names[i].name;
    return "unknown";
}

bool hs_sig_alg_parse(const char *name, hs_sig_alg *out)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(names[i].name, name) == 0) {
            *out = names[i].alg;
            return true;
        }
    }
    /* Accept the short spelling too. */
    if (strcmp(name, "ecdsa-sha256") == 0) {
        *out = HS_SIG_ECDSA_SHA256;
        return true;
    }
    return false;
}

const EVP_MD *hs_sig_alg_md(hs_sig_alg alg)
{
    switch (alg) {
    case HS_SIG_RSA_PKCS1_SHA1: return EVP_sha1();
    case HS_SIG_RSA_PKCS1_SHA256:
    case HS_SIG_RSA_PSS_SHA256:
    case HS_SIG_ECDSA_SHA256: return EVP_sha256();
    case HS_SIG_RSA_PKCS1_SHA512:
    case HS_SIG_RSA_PSS_SHA512:
    case HS_SIG_ECDSA_SHA512: return EVP_sha512();
    }
    return NULL;
}

size_t hs_sig_alg_digest_len(hs_sig_alg alg)
{
    const EVP_MD *md = hs_sig_alg_md(alg);
    return md != NULL ? (size_t)EVP_MD_get_size(md) : 0;
}

bool hs_sig_alg_is_rsa(hs_sig_alg alg)
{
    return !hs_sig_alg_is_ecdsa(alg);
}

bool hs_sig_alg_is_pss(hs_sig_alg alg)
{
    return alg == HS_SIG_RSA_PSS_SHA256 || alg == HS_SIG_RSA_PSS_SHA512;
}

bool hs_sig_alg_is_ecdsa(hs_sig_alg alg)
{
    return alg == HS_SIG_ECDSA_SHA256 || alg == HS_SIG_ECDSA_SHA512;
}
