/* The resident profile's keys (HS_KEYS_RESIDENT): token objects for good,
 * found by the CKA_ID their key file names. */
#include "p11/objects.h"
#include "signer/signer_internal.h"
#include "util/encoding.h"

/* The key object of class cls (private or public) a resident key file
 * names by CKA_ID: exactly one. */
static hs_result find_by_id(hs_signer *s, const loaded_key *k, CK_OBJECT_CLASS cls,
                            CK_OBJECT_HANDLE *h, hs_error *e)
{
    hs_p11 *p = s->p11;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_ID, (void *)k->kf.key_id, k->kf.key_id_len},
    };
    size_t n = 0;
    hs_result r = hs_p11_find(p, hs_p11_key_session(p), t, 2, h, 1, &n, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "finding key '%s': ", k->name);
    char id[2 * HS_KEY_ID_MAX + 1];
    hs_hex_encode(k->kf.key_id, k->kf.key_id_len, id);
    const char *what = cls == CKO_PRIVATE_KEY ? "private" : "public";
    if (n == 0)
        return hs_fail(e, HS_E_NOTFOUND,
                       "key '%s' (%s/%s.key) names the %s key object with CKA_ID %s, which token "
                       "'%s' does not hold (deleted, or the key belongs to another token)",
                       k->name, s->keystore, k->name, what, id, p->label);
    if (n > 1)
        return hs_fail(e, HS_E_P11, "token '%s' holds %zu %s key objects with CKA_ID %s (key '%s'); "
                                    "expected one", p->label, n, what, id, k->name);
    return HS_OK;
}

/* Makes a resident key usable: finds its objects by CKA_ID, checks the
 * token's public key is the key file's and that the private key cannot
 * leave. (Every signature is verified with the key file's public key as
 * well, which ties the private object to the file.) */
hs_result hs_resident_find(hs_signer *s, loaded_key *k, hs_error *e)
{
    hs_p11 *p = s->p11;
    CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
    EVP_PKEY *token_pub = NULL;
    hs_result r = find_by_id(s, k, CKO_PRIVATE_KEY, &priv, e);
    if (r == HS_OK)
        r = hs_p11_check_key_kept(p, hs_p11_key_session(p), priv, k->name, e);
    if (r == HS_OK)
        r = find_by_id(s, k, CKO_PUBLIC_KEY, &pub, e);
    if (r == HS_OK)
        r = hs_p11_public_key(p, hs_p11_key_session(p), pub, &token_pub, e);
    if (r == HS_OK && EVP_PKEY_eq(token_pub, k->pub) != 1)
        r = hs_fail(e, HS_E_VERIFY,
                    "key '%s': the public key on token '%s' is not the one in %s/%s.key; the key "
                    "file and the token object do not belong together",
                    k->name, p->label, s->keystore, k->name);
    EVP_PKEY_free(token_pub);
    if (r != HS_OK)
        return r;
    k->handle = priv;
    k->unwrapped = true;
    k->generation = p->generation;
    return HS_OK;
}
