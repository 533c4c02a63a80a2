#include "soft_signer.h"

#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>

hs_result soft_signer_load(soft_signer *s, const char *path, hs_error *e)
{
    s->key = NULL;
    s->calls = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return hs_fail(e, HS_E_NOTFOUND, "%s: cannot open", path);
    s->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    if (s->key == NULL) {
        rewind(f);
        s->key = d2i_PrivateKey_fp(f, NULL);
    }
    fclose(f);
    if (s->key == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: not a PEM or PKCS#8 DER private key", path);
    return HS_OK;
}

void soft_signer_adopt(soft_signer *s, EVP_PKEY *key)
{
    EVP_PKEY_up_ref(key);
    s->key = key;
    s->calls = 0;
}

void soft_signer_free(soft_signer *s)
{
    EVP_PKEY_free(s->key);
    s->key = NULL;
}

EVP_PKEY *soft_signer_public(soft_signer *s)
{
    return s->key;
}

static hs_result soft_sign(void *ctx, const hs_sign_request *req, uint8_t **sig, size_t *sig_len,
                           hs_error *e)
{
    soft_signer *s = ctx;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(s->key, NULL);
    size_t len = 0;
    hs_result r = HS_E_CRYPTO;
    *sig = NULL;
    if (pctx == NULL || EVP_PKEY_sign_init(pctx) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(pctx, hs_sig_alg_md(req->alg)) <= 0)
        goto out;
    if (hs_sig_alg_is_rsa(req->alg)) {
        int pad = hs_sig_alg_is_pss(req->alg) ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING;
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, pad) <= 0)
            goto out;
        if (pad == RSA_PKCS1_PSS_PADDING &&
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0)
            goto out;
    }
    if (EVP_PKEY_sign(pctx, NULL, &len, req->digest, req->digest_len) <= 0)
        goto out;
    *sig = malloc(len);
    if (*sig == NULL || EVP_PKEY_sign(pctx, *sig, &len, req->digest, req->digest_len) <= 0)
        goto out;
    *sig_len = len;
    s->calls++;
    r = HS_OK;
out:
    EVP_PKEY_CTX_free(pctx);
    if (r != HS_OK) {
        free(*sig);
        *sig = NULL;
        return hs_fail(e, r, "soft signer: signing failed for %s", hs_sig_alg_name(req->alg));
    }
    return HS_OK;
}

hs_sign_fn soft_signer_fn(soft_signer *s)
{
    hs_sign_fn fn = {soft_sign, s};
    return fn;
}
