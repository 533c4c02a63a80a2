#include "keystore/keyalg.h"

#include <string.h>

static const struct {
    hs_keyalg alg;
    const char *name;
    unsigned bits;
} algs[] = {
    {HS_KEY_RSA2048, "rsa2048", 2048}, {HS_KEY_RSA3072, "rsa3072", 3072},
    {HS_KEY_RSA4096, "rsa4096", 4096}, {HS_KEY_RSA8192, "rsa8192", 8192},
    {HS_KEY_EC_P256, "ec-p256", 256},
};

const char *hs_keyalg_name(hs_keyalg a)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (algs[i].alg == a)
            return algs[i].name;
    return "unknown";
}

bool hs_keyalg_parse(const char *name, hs_keyalg *out)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        if (strcmp(algs[i].name, name) == 0) {
            *out = algs[i].alg;
            return true;
        }
    }
    return false;
}

bool hs_keyalg_is_rsa(hs_keyalg a)
{
    return a != HS_KEY_EC_P256;
}

unsigned hs_keyalg_bits(hs_keyalg a)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (algs[i].alg == a)
            return algs[i].bits;
    return 0;
}

bool hs_keyalg_of_pkey(EVP_PKEY *pk, hs_keyalg *out)
{
    if (EVP_PKEY_is_a(pk, "RSA")) {
        int bits = EVP_PKEY_get_bits(pk);
        for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
            if (hs_keyalg_is_rsa(algs[i].alg) && (int)algs[i].bits == bits) {
                *out = algs[i].alg;
                return true;
            }
        }
        return false;
    }
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64];
        size_t len = 0;
        if (EVP_PKEY_get_group_name(pk, group, sizeof group, &len) &&
            (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
            *out = HS_KEY_EC_P256;
            return true;
        }
    }
    return false;
}

bool hs_keyalg_can_sign(hs_keyalg a, hs_sig_alg s)
{
    return hs_keyalg_is_rsa(a) ? hs_sig_alg_is_rsa(s) : hs_sig_alg_is_ecdsa(s);
}

hs_sig_alg hs_keyalg_default_sigalg(hs_keyalg a)
{
    return hs_keyalg_is_rsa(a) ? HS_SIG_RSA_PKCS1_SHA256 : HS_SIG_ECDSA_SHA256;
}
