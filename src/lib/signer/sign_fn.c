#include "signer/sign_fn.h"

#include <openssl/evp.h>

hs_result hs_sign_request_hash(hs_sign_request *req, uint8_t *digest_buf, const uint8_t *tbs,
                               size_t tbs_len, hs_error *e)
{
    const EVP_MD *md = hs_sig_alg_md(req->alg);
    unsigned int n = 0;
    if (md == NULL)
        return hs_fail(e, HS_E_INTERNAL, "unknown signature algorithm %d", (int)req->alg);
    if (!EVP_Digest(tbs, tbs_len, digest_buf, &n, md, NULL) ||
        !EVP_Digest(tbs, tbs_len, req->tbs_sha256, NULL, EVP_sha256(), NULL))
        return hs_fail(e, HS_E_CRYPTO, "hashing %zu bytes failed", tbs_len);
    req->digest = digest_buf;
    req->digest_len = n;
    return HS_OK;
}
