#include "avb/avb_alg.h"

#include <string.h>

static const hs_avb_alg algs[] = {
    {"NONE", 0, 0, 0, 0, HS_SIG_RSA_PKCS1_SHA256},
    {"SHA256_RSA2048", 1, 32, 256, 8 + 2 * 256, HS_SIG_RSA_PKCS1_SHA256},
    {"SHA256_RSA4096", 2, 32, 512, 8 + 2 * 512, HS_SIG_RSA_PKCS1_SHA256},
    {"SHA256_RSA8192", 3, 32, 1024, 8 + 2 * 1024, HS_SIG_RSA_PKCS1_SHA256},
    {"SHA512_RSA2048", 4, 64, 256, 8 + 2 * 256, HS_SIG_RSA_PKCS1_SHA512},
    {"SHA512_RSA4096", 5, 64, 512, 8 + 2 * 512, HS_SIG_RSA_PKCS1_SHA512},
    {"SHA512_RSA8192", 6, 64, 1024, 8 + 2 * 1024, HS_SIG_RSA_PKCS1_SHA512},
};

const hs_avb_alg *hs_avb_alg_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (strcmp(algs[i].name, name) == 0)
            return &algs[i];
    return NULL;
}

const hs_avb_alg *hs_avb_alg_by_type(uint32_t type)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (algs[i].type == type)
            return &algs[i];
    return NULL;
}

const EVP_MD *hs_avb_alg_md(const hs_avb_alg *alg)
{
    if (alg->hash_len == 0)
        return NULL;
    return hs_sig_alg_md(alg->sig_alg);
}

const EVP_MD *hs_avb_hash_md(const char *name)
{
    if (strcmp(name, "sha1") == 0)
        return EVP_sha1();
    if (strcmp(name, "sha256") == 0)
        return EVP_sha256();
    if (strcmp(name, "sha512") == 0)
        return EVP_sha512();
    return NULL;
}
