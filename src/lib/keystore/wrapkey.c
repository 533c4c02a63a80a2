#include "keystore/wrapkey.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "keystore/custody.h"
#include "keystore/kwp.h"
#include "p11/ckr.h"
#include "p11/objects.h"
#include "util/encoding.h"

static const CK_OBJECT_CLASS secret_class = CKO_SECRET_KEY;
static const CK_KEY_TYPE aes_type = CKK_AES;
static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

hs_result hs_wrapkey_kcv_of(const uint8_t key[32], uint8_t kcv[HS_KCV_LEN], hs_error *e)
{
    uint8_t zero[16] = {0}, out[32];
    int len = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    bool ok = c != NULL && EVP_EncryptInit_ex(c, EVP_aes_256_ecb(), NULL, key, NULL) &&
              EVP_CIPHER_CTX_set_padding(c, 0) && EVP_EncryptUpdate(c, out, &len, zero, 16);
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "cannot compute the wrap key's check value");
    memcpy(kcv, out, HS_KCV_LEN);
    return HS_OK;
}

/* The check value, when the token keeps one (NSS's AES keys have none);
 * size: its length from the batched read in hs_wrapkey_describe. */
static hs_result read_kcv(hs_p11 *p, CK_SESSION_HANDLE s, CK_ULONG size, hs_wrapkey *out,
                          hs_error *e)
{
    if (size == 0 || size == CK_UNAVAILABLE_INFORMATION)
        return HS_OK;
    uint8_t *kcv;
    size_t len;
    hs_result r = hs_p11_get_attr_sized(p, s, out->handle, CKA_CHECK_VALUE, size, &kcv, &len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "wrap key '%s': reading its check value: ", out->label);
    if (len < HS_KCV_LEN) {
        free(kcv);
        return hs_fail(e, HS_E_P11, "token '%s': wrap key '%s' has a %zu-byte check value",
                       p->label, out->label, len);
    }
    memcpy(out->kcv, kcv, HS_KCV_LEN);
    free(kcv);
    out->have_kcv = true;
    return HS_OK;
}

hs_result hs_wrapkey_make_canary(hs_p11 *p, const hs_wrapkey *w, uint8_t **out, size_t *out_len,
                                 hs_error *e)
{
    *out = NULL;
    *out_len = 0;
    CK_OBJECT_HANDLE t;
    hs_result r = hs_kwp_test_object(p, w->mech, &t, e);
    if (r != HS_OK)
        return r;
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    CK_MECHANISM m = {w->mech, NULL, 0};
    /* The test key is 634 bytes of PKCS#8; a token's own encoding may be
     * a little longer, and RFC 5649 adds at most 15 bytes. */
    CK_ULONG len = 1024;
    uint8_t *buf = malloc(len);
    CK_RV rv = buf != NULL ? p->fn->C_WrapKey(s, &m, w->handle, t, buf, &len) : CKR_HOST_MEMORY;
    (void)p->fn->C_DestroyObject(s, t);
    if (rv != CKR_OK) {
        free(buf);
        return rv == CKR_HOST_MEMORY ? hs_fail(e, HS_E_NOMEM, "out of memory")
                                     : hs_p11_fail(p, e, rv, "C_WrapKey",
                                                   "wrapping the public test key under wrap key "
                                                   "'%s' (its canary)", w->label);
    }
    *out = buf;
    *out_len = len;
    return HS_OK;
}

hs_result hs_wrapkey_describe(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                              const char *label, CK_MECHANISM_TYPE mech, hs_wrapkey *out,
                              hs_error *e)
{
    memset(out, 0, sizeof *out);
    out->handle = h;
    out->mech = mech;
    snprintf(out->label, sizeof out->label, "%s", label);
    /* CKA_TRUSTED and the check value's size in one call where the token
     * answers a batch (p11/objects.h): every signing command comes here. */
    CK_BBOOL trusted;
    CK_ATTRIBUTE a[2] = {{CKA_TRUSTED, &trusted, sizeof trusted}, {CKA_CHECK_VALUE, NULL, 0}};
    hs_result r = hs_p11_get_attrs(p, s, h, a, 2, "the wrap key's attributes", e);
    if (r != HS_OK)
        return hs_error_prefix(e, "wrap key '%s': ", label);
    out->trusted = a[0].ulValueLen != CK_UNAVAILABLE_INFORMATION && trusted == CK_TRUE;
    return read_kcv(p, s, a[1].ulValueLen, out, e);
}

static hs_result count_existing(hs_p11 *p, CK_SESSION_HANDLE s, const char *label, size_t *n,
                                CK_OBJECT_HANDLE *h, hs_error *e)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&secret_class, sizeof secret_class},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    return hs_p11_find(p, s, t, 2, h, 1, n, e);
}

/* Generates (value NULL) or imports the wrap key with its custody
 * attributes (custody.h). */
static hs_result make_key(hs_p11 *p, CK_SESSION_HANDLE s, const char *label, const uint8_t *value,
                          CK_MECHANISM_TYPE mech, hs_wrapkey *out, hs_error *e)
{
    CK_ULONG value_len = 32;
    uint8_t id[] = "hsmsign-wrap";
    CK_ATTRIBUTE t[17 + HS_CUSTODY_WRAPKEY_ATTRS] = {
        {CKA_CLASS, (void *)&secret_class, sizeof secret_class},
        {CKA_KEY_TYPE, (void *)&aes_type, sizeof aes_type},
        {CKA_TOKEN, (void *)&yes, sizeof yes},
        {CKA_PRIVATE, (void *)&yes, sizeof yes},
        {CKA_SENSITIVE, (void *)&yes, sizeof yes},
        {CKA_EXTRACTABLE, (void *)&no, sizeof no},
        {CKA_MODIFIABLE, (void *)&no, sizeof no},
        {CKA_WRAP, (void *)&yes, sizeof yes},
        {CKA_UNWRAP, (void *)&yes, sizeof yes},
        {CKA_ENCRYPT, (void *)&no, sizeof no},
        {CKA_DECRYPT, (void *)&no, sizeof no},
        {CKA_SIGN, (void *)&no, sizeof no},
        {CKA_VERIFY, (void *)&no, sizeof no},
        {CKA_DERIVE, (void *)&no, sizeof no},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, id, sizeof id - 1},
        /* CKA_VALUE_LEN when generating, CKA_VALUE when importing. */
        {CKA_VALUE_LEN, &value_len, sizeof value_len},
    };
    if (value != NULL) {
        t[16].type = CKA_VALUE;
        t[16].pValue = (void *)value;
        t[16].ulValueLen = 32;
    }
    hs_custody_wrapkey_attrs(&t[17], &mech);
    CK_ULONG count = sizeof t / sizeof t[0];
    const char *fn = value == NULL ? "C_GenerateKey" : "C_CreateObject";
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv;
    /* CKA_DESTROYABLE (last) is PKCS#11 2.40: a token that does not know
     * it is asked once more without it. Nothing else is ever left out. */
    for (int attempt = 0; attempt < 2; attempt++) {
        rv = value == NULL ? p->fn->C_GenerateKey(s, &m, t, count, &h)
                           : p->fn->C_CreateObject(s, t, count, &h);
        if (rv == CKR_OK || attempt > 0 || !hs_custody_attr_unknown(rv))
            break;
        count--;
    }
    /* NSS softokn refuses CKA_ALLOWED_MECHANISMS, CKA_COPYABLE and
     * CKA_DESTROYABLE (CKR_GENERAL_ERROR) and stores CKA_UNWRAP_TEMPLATE
     * without enforcing it: the key is made without custody attributes
     * only when the caller accepted that gap. */
    bool gap = false;
    if (rv != CKR_OK && hs_p11_is_nss(p) && p->accept_custody_gap) {
        rv = value == NULL ? p->fn->C_GenerateKey(s, &m, t, 17, &h)
                           : p->fn->C_CreateObject(s, t, 17, &h);
        gap = true;
    }
    if (rv != CKR_OK && hs_p11_is_nss(p))
        return hs_p11_fail(p, e, rv, fn, "%s wrap key '%s' with its custody attributes: NSS "
                           "softokn does not keep CKA_ALLOWED_MECHANISMS, CKA_COPYABLE or "
                           "CKA_DESTROYABLE and does not enforce CKA_UNWRAP_TEMPLATE; to use it "
                           "anyway, accepting that a PIN holder can read signing keys, give "
                           "--accept-custody-gap (docs/tokens.md)",
                           value == NULL ? "generating" : "importing", label);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, fn, "%s wrap key '%s' with its unwrap template (a token "
                           "that cannot hold CKA_UNWRAP_TEMPLATE cannot keep keys safe)",
                           value == NULL ? "generating" : "importing", label);
    hs_result r = hs_wrapkey_describe(p, s, h, label, mech, out, e);
    out->custody_gap = gap;
    if (r == HS_OK && !gap)
        r = hs_custody_check_wrapkey(p, s, h, label, e);
    if (r != HS_OK) /* a token that took the template but did not keep it */
        (void)p->fn->C_DestroyObject(s, h);
    return r;
}

static hs_result create_common(hs_p11 *p, const char *label, const uint8_t *value, hs_wrapkey *out,
                               hs_error *e)
{
    if (label == NULL)
        label = HS_WRAPKEY_DEFAULT_LABEL;
    CK_MECHANISM_TYPE mech = 0;
    hs_result r = hs_kwp_detect(p, &mech, e);
    if (r == HS_OK && value == NULL)
        r = hs_p11_require_mechanism(p, CKM_AES_KEY_GEN, CKF_GENERATE, "creating the wrap key", e);
    if (r != HS_OK)
        return r;
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    size_t n;
    CK_OBJECT_HANDLE h;
    r = count_existing(p, s, label, &n, &h, e);
    if (r != HS_OK)
        return r;
    if (n > 0)
        return hs_fail(e, HS_E_EXISTS,
                       "token '%s' already has a wrap key labelled '%s'; refusing to create "
                       "another (key files made under the existing one would become unusable)",
                       p->label, label);
    return make_key(p, s, label, value, mech, out, e);
}

hs_result hs_wrapkey_create(hs_p11 *p, const char *label, hs_wrapkey *out, hs_error *e)
{
    return create_common(p, label, NULL, out, e);
}

hs_result hs_wrapkey_canary_of(const uint8_t key[32], uint8_t **out, size_t *out_len, hs_error *e)
{
    return hs_kwp_host_wrap(key, hs_kwp_test_key, hs_kwp_test_key_len, out, out_len, e);
}

/* Unwraps a canary under w: HS_OK when w is the key it was made under,
 * HS_E_VERIFY when the token says the blob does not open. */
static hs_result check_canary(hs_p11 *p, const hs_wrapkey *w, const uint8_t *canary, size_t len,
                              hs_error *e)
{
    static const CK_KEY_TYPE kt = CKK_RSA;
    static const char label[] = "hsmsign-canary";
    CK_ATTRIBUTE t[2 + HS_CUSTODY_UNWRAP_ATTRS] = {
        {CKA_KEY_TYPE, (void *)&kt, sizeof kt},
        {CKA_LABEL, (void *)label, sizeof label - 1},
    };
    CK_ULONG n = hs_custody_unwrap_attrs(w->custody_gap, &t[2]);
    CK_MECHANISM m = {w->mech, NULL, 0};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    CK_RV rv = p->fn->C_UnwrapKey(s, &m, w->handle, (CK_BYTE_PTR)canary, len, t, 2 + n, &h);
    if (rv == CKR_OK) {
        (void)p->fn->C_DestroyObject(s, h);
        return HS_OK;
    }
    if (rv == CKR_WRAPPED_KEY_INVALID || rv == CKR_ENCRYPTED_DATA_INVALID ||
        rv == CKR_WRAPPED_KEY_LEN_RANGE || rv == CKR_DATA_INVALID)
        return hs_fail(e, HS_E_VERIFY, "token '%s': wrap key '%s' does not open the canary (%s)",
                       p->label, w->label, hs_ckr_name(rv));
    return hs_p11_fail(p, e, rv, "C_UnwrapKey", "unwrapping the canary of wrap key '%s'",
                       w->label);
}

/* The token holds the key the shares made: by check value, or where the
 * token keeps none, by unwrapping the canary made on the host. */
static hs_result check_imported(hs_p11 *p, const uint8_t key[32], const uint8_t want[HS_KCV_LEN],
                                hs_wrapkey *out, hs_error *e)
{
    if (out->have_kcv)
        return hs_ct_equal(want, out->kcv, HS_KCV_LEN)
                   ? HS_OK
                   : hs_fail(e, HS_E_VERIFY, "token '%s': imported wrap key has an unexpected "
                                             "check value", p->label);
    uint8_t *canary;
    size_t len;
    hs_result r = hs_wrapkey_canary_of(key, &canary, &len, e);
    if (r == HS_OK)
        r = check_canary(p, out, canary, len, e);
    free(canary);
    return r;
}

hs_result hs_wrapkey_matches(hs_p11 *p, const hs_wrapkey *w, const hs_keyfile *kf,
                             const char *what, hs_error *e)
{
    char want[7] = "", have[7] = "";
    hs_result r = HS_OK;
    if (!kf->wrap_kcv_unknown && w->have_kcv) {
        if (hs_ct_equal(kf->wrap_kcv, w->kcv, HS_KCV_LEN))
            return HS_OK;
        r = HS_E_VERIFY;
    } else if (kf->wrap_canary != NULL) {
        r = check_canary(p, w, kf->wrap_canary, kf->wrap_canary_len, e);
    }
    if (r != HS_E_VERIFY)
        return r;
    if (!kf->wrap_kcv_unknown)
        hs_hex_encode(kf->wrap_kcv, HS_KCV_LEN, want);
    if (w->have_kcv)
        hs_hex_encode(w->kcv, HS_KCV_LEN, have);
    if (!kf->wrap_kcv_unknown && w->have_kcv)
        return hs_fail(e, HS_E_VERIFY,
                       "%s was made under another wrap key (check value %s); token '%s' has "
                       "wrap key '%s' with check value %s",
                       what, want, p->label, w->label, have);
    return hs_fail(e, HS_E_VERIFY,
                   "%s was made under another wrap key (check value %s); token '%s' has wrap "
                   "key '%s' (check value %s), which does not unwrap the key file's canary",
                   what, want[0] ? want : "unknown", p->label, w->label,
                   have[0] ? have : "unknown");
}

hs_result hs_wrapkey_import(hs_p11 *p, const char *label, const uint8_t key[32], hs_wrapkey *out,
                            hs_error *e)
{
    uint8_t want[HS_KCV_LEN];
    hs_result r = hs_wrapkey_kcv_of(key, want, e);
    if (r == HS_OK)
        r = create_common(p, label, key, out, e);
    if (r == HS_OK)
        r = check_imported(p, key, want, out, e);
    return r;
}

/* The mechanism the wrap key is restricted to (CKA_ALLOWED_MECHANISMS of
 * exactly one RFC 5649 candidate), which the known-answer test chose when
 * the key was made: then no test is needed in every signing process (it
 * costs a session key, an unwrap and a wrap). False when the token keeps
 * no such restriction (NSS): the caller runs the test. */
static bool restricted_mechanism(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                 CK_MECHANISM_TYPE *mech)
{
    uint8_t *v = NULL;
    size_t len = 0;
    hs_error ignored;
    if (hs_p11_get_attr(p, s, h, CKA_ALLOWED_MECHANISMS, &v, &len, &ignored) != HS_OK)
        return false;
    bool one = len == sizeof *mech;
    if (one)
        memcpy(mech, v, sizeof *mech);
    free(v);
    return one && hs_kwp_candidate(*mech);
}

static hs_result find_one(hs_p11 *p, const char *label, hs_wrapkey *out, hs_error *e)
{
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    size_t n;
    CK_OBJECT_HANDLE h;
    hs_result r = count_existing(p, s, label, &n, &h, e);
    if (r != HS_OK)
        return r;
    if (n == 0)
        return hs_fail(e, HS_E_NOTFOUND,
                       "token '%s' has no wrap key labelled '%s' (create one with `hsmsign "
                       "wrapkey create`, or restore it with `hsmsign ceremony restore`)",
                       p->label, label);
    if (n > 1)
        return hs_fail(e, HS_E_P11,
                       "token '%s' has %zu wrap keys labelled '%s'; expected one (an "
                       "interrupted `ceremony restore --replace-wrap-key` is finished by running "
                       "it again)",
                       p->label, n, label);
    CK_MECHANISM_TYPE mech;
    if (!restricted_mechanism(p, s, h, &mech)) {
        r = hs_kwp_detect(p, &mech, e);
        if (r != HS_OK)
            return r;
    }
    return hs_wrapkey_describe(p, s, h, label, mech, out, e);
}

hs_result hs_wrapkey_find(hs_p11 *p, const char *label, hs_wrapkey *out, hs_error *e)
{
    if (label == NULL)
        label = HS_WRAPKEY_DEFAULT_LABEL;
    hs_result r = find_one(p, label, out, e);
    if (r == HS_OK)
        r = hs_custody_check_wrapkey(p, hs_p11_key_session(p), out->handle, label, e);
    /* Only where the token is known not to enforce custody (NSS), and only
     * when asked: never a way around an old, weak key on a token that
     * could protect it. */
    if (r == HS_E_VERIFY && p->accept_custody_gap && hs_p11_is_nss(p)) {
        hs_error_clear(e);
        out->custody_gap = true;
        r = HS_OK;
    }
    return r;
}

hs_result hs_wrapkey_inspect(hs_p11 *p, const char *label, hs_wrapkey *out,
                             hs_custody_report *rep, hs_error *e)
{
    if (label == NULL)
        label = HS_WRAPKEY_DEFAULT_LABEL;
    hs_result r = find_one(p, label, out, e);
    if (r == HS_OK)
        r = hs_custody_inspect_wrapkey(p, hs_p11_key_session(p), out->handle, rep, e);
    if (r == HS_OK)
        out->custody_gap = !rep->ok && p->accept_custody_gap && hs_p11_is_nss(p);
    return r;
}

#define MAX_SAME_LABEL 8

/* The keys labelled `label` with their check values and custody: every
 * one must hold the same key as `want` (replacing a different key would
 * orphan the key files made under it). */
static hs_result list_same_key(hs_p11 *p, CK_SESSION_HANDLE s, const char *label,
                               CK_MECHANISM_TYPE mech, const uint8_t key[32],
                               const uint8_t want[HS_KCV_LEN],
                               CK_OBJECT_HANDLE *h, bool *strong, size_t *n, hs_error *e)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&secret_class, sizeof secret_class},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    hs_result r = hs_p11_find(p, s, t, 2, h, MAX_SAME_LABEL, n, e);
    if (r == HS_OK && *n > MAX_SAME_LABEL)
        r = hs_fail(e, HS_E_P11, "token '%s' has %zu keys labelled '%s'", p->label, *n, label);
    for (size_t i = 0; r == HS_OK && i < *n; i++) {
        hs_wrapkey k;
        hs_custody_report rep;
        r = hs_wrapkey_describe(p, s, h[i], label, mech, &k, e);
        if (r == HS_OK && !k.have_kcv)
            r = check_imported(p, key, want, &k, e);
        else if (r == HS_OK && !hs_ct_equal(k.kcv, want, HS_KCV_LEN)) {
            char have_hex[7], want_hex[7];
            hs_hex_encode(k.kcv, HS_KCV_LEN, have_hex);
            hs_hex_encode(want, HS_KCV_LEN, want_hex);
            r = hs_fail(e, HS_E_VERIFY,
                        "token '%s': wrap key '%s' has check value %s, the shares make %s; "
                        "refusing to replace a different key",
                        p->label, label, have_hex, want_hex);
        }
        if (r == HS_OK)
            r = hs_custody_inspect_wrapkey(p, s, h[i], &rep, e);
        if (r == HS_OK)
            strong[i] = rep.ok;
    }
    return r;
}

hs_result hs_wrapkey_replace(hs_p11 *p, const char *label, const uint8_t key[32],
                             hs_wrapkey *out, size_t *replaced, hs_error *e)
{
    if (label == NULL)
        label = HS_WRAPKEY_DEFAULT_LABEL;
    *replaced = 0;
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    uint8_t want[HS_KCV_LEN];
    CK_OBJECT_HANDLE h[MAX_SAME_LABEL];
    bool strong[MAX_SAME_LABEL] = {false};
    size_t n = 0;
    CK_MECHANISM_TYPE mech = 0;
    hs_result r = hs_wrapkey_kcv_of(key, want, e);
    if (r == HS_OK)
        r = hs_kwp_detect(p, &mech, e);
    if (r == HS_OK)
        r = list_same_key(p, s, label, mech, key, want, h, strong, &n, e);
    if (r != HS_OK)
        return r;
    if (n == 0)
        return hs_fail(e, HS_E_NOTFOUND,
                       "token '%s' has no wrap key labelled '%s' to replace (restore into it "
                       "without --replace-wrap-key)",
                       p->label, label);
    /* The protected copy first, under the same label: if the process
     * dies before the old one is gone, the token holds two copies of one
     * key, commands refuse to pick one, and running this again finishes. */
    bool have_strong = false;
    for (size_t i = 0; i < n; i++)
        have_strong = have_strong || strong[i];
    if (!have_strong) {
        r = make_key(p, s, label, key, mech, out, e);
        if (r == HS_OK)
            r = check_imported(p, key, want, out, e);
        if (r != HS_OK)
            return r;
    }
    for (size_t i = 0; i < n; i++) {
        if (strong[i])
            continue;
        CK_RV rv = p->fn->C_DestroyObject(s, h[i]);
        if (rv != CKR_OK)
            return hs_p11_fail(p, e, rv, "C_DestroyObject",
                               "removing the unprotected copy of wrap key '%s' (the protected "
                               "copy is in place; remove the old one as security officer)",
                               label);
        (*replaced)++;
    }
    return hs_wrapkey_find(p, label, out, e);
}
