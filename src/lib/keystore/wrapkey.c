#include "keystore/wrapkey.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

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

static hs_result describe(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const char *label,
                          hs_wrapkey *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    out->handle = h;
    snprintf(out->label, sizeof out->label, "%s", label);
    uint8_t *kcv;
    size_t len;
    hs_result r = hs_p11_get_attr(p, s, h, CKA_CHECK_VALUE, &kcv, &len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "wrap key '%s': reading its check value: ", label);
    if (len < HS_KCV_LEN) {
        free(kcv);
        return hs_fail(e, HS_E_P11, "token '%s': wrap key '%s' has a %zu-byte check value",
                       p->label, label, len);
    }
    memcpy(out->kcv, kcv, HS_KCV_LEN);
    free(kcv);
    return hs_p11_get_bool(p, s, h, CKA_TRUSTED, &out->trusted, e);
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

static hs_result create_common(hs_p11 *p, const char *label, const uint8_t *value, hs_wrapkey *out,
                               hs_error *e)
{
    if (label == NULL)
        label = HS_WRAPKEY_DEFAULT_LABEL;
    hs_result r = hs_p11_require_mechanism(p, CKM_AES_KEY_WRAP_PAD, CKF_WRAP | CKF_UNWRAP,
                                           "storing signing keys wrapped", e);
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
    CK_ULONG value_len = 32;
    uint8_t id[] = "hsmsign-wrap";
    CK_ATTRIBUTE t[] = {
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
        /* Last, so it can be left out: CKA_VALUE_LEN when generating,
         * CKA_VALUE when importing. */
        {CKA_VALUE_LEN, &value_len, sizeof value_len},
    };
    CK_ULONG count = sizeof t / sizeof t[0];
    CK_RV rv;
    if (value == NULL) {
        CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
        rv = p->fn->C_GenerateKey(s, &m, t, count, &h);
        if (rv != CKR_OK)
            return hs_p11_fail(p, e, rv, "C_GenerateKey", "generating wrap key '%s'", label);
    } else {
        t[count - 1].type = CKA_VALUE;
        t[count - 1].pValue = (void *)value;
        t[count - 1].ulValueLen = 32;
        rv = p->fn->C_CreateObject(s, t, count, &h);
        if (rv != CKR_OK)
            return hs_p11_fail(p, e, rv, "C_CreateObject", "importing wrap key '%s'", label);
    }
    return describe(p, s, h, label, out, e);
}

hs_result hs_wrapkey_create(hs_p11 *p, const char *label, hs_wrapkey *out, hs_error *e)
{
    return create_common(p, label, NULL, out, e);
}

hs_result hs_wrapkey_import(hs_p11 *p, const char *label, const uint8_t key[32], hs_wrapkey *out,
                            hs_error *e)
{
    uint8_t want[HS_KCV_LEN];
    hs_result r = hs_wrapkey_kcv_of(key, want, e);
    if (r == HS_OK)
        r = create_common(p, label, key, out, e);
    if (r == HS_OK && !hs_ct_equal(want, out->kcv, HS_KCV_LEN))
        r = hs_fail(e, HS_E_VERIFY, "token '%s': imported wrap key has an unexpected check value",
                    p->label);
    return r;
}

hs_result hs_wrapkey_find(hs_p11 *p, const char *label, hs_wrapkey *out, hs_error *e)
{
    if (label == NULL)
        label = HS_WRAPKEY_DEFAULT_LABEL;
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
        return hs_fail(e, HS_E_P11, "token '%s' has %zu wrap keys labelled '%s'; expected one",
                       p->label, n, label);
    return describe(p, s, h, label, out, e);
}
