#include "p11/objects.h"

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

const uint8_t hs_p256_oid_der[10] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

hs_result hs_p11_find(hs_p11 *p, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                      CK_OBJECT_HANDLE *out, size_t max, size_t *count, hs_error *e)
{
    *count = 0;
    CK_RV rv = p->fn->C_FindObjectsInit(s, tmpl, n);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_FindObjectsInit", "searching objects");
    for (;;) {
        CK_OBJECT_HANDLE batch[16];
        CK_ULONG got = 0;
        rv = p->fn->C_FindObjects(s, batch, 16, &got);
        if (rv != CKR_OK || got == 0)
            break;
        for (CK_ULONG i = 0; i < got; i++) {
            if (*count < max)
                out[*count] = batch[i];
            (*count)++;
        }
    }
    /* Always finish the search, even after an error, or the session
     * stays in the find state. */
    CK_RV frv = p->fn->C_FindObjectsFinal(s);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_FindObjects", "searching objects");
    if (frv != CKR_OK)
        return hs_p11_fail(p, e, frv, "C_FindObjectsFinal", "searching objects");
    return HS_OK;
}

hs_result hs_p11_get_attr(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                          CK_ATTRIBUTE_TYPE type, uint8_t **val, size_t *len, hs_error *e)
{
    *val = NULL;
    *len = 0;
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv = p->fn->C_GetAttributeValue(s, o, &a, 1);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetAttributeValue", "reading attribute 0x%lx",
                           (unsigned long)type);
    return hs_p11_get_attr_sized(p, s, o, type, a.ulValueLen, val, len, e);
}

hs_result hs_p11_get_attr_sized(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                CK_ATTRIBUTE_TYPE type, CK_ULONG size, uint8_t **val,
                                size_t *len, hs_error *e)
{
    *val = NULL;
    *len = 0;
    if (size == CK_UNAVAILABLE_INFORMATION)
        return hs_fail(e, HS_E_P11, "token '%s': attribute 0x%lx is unavailable", p->label,
                       (unsigned long)type);
    CK_ATTRIBUTE a = {type, malloc(size + 1), size};
    if (a.pValue == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    CK_RV rv = p->fn->C_GetAttributeValue(s, o, &a, 1);
    if (rv != CKR_OK) {
        free(a.pValue);
        return hs_p11_fail(p, e, rv, "C_GetAttributeValue", "reading attribute 0x%lx",
                           (unsigned long)type);
    }
    *val = a.pValue;
    *len = a.ulValueLen;
    return HS_OK;
}

/* What no token writes, to tell an entry it left alone: a CK_BBOOL is
 * CK_TRUE or CK_FALSE, a length is a size or CK_UNAVAILABLE_INFORMATION. */
#define UNTOUCHED_BOOL ((CK_BBOOL)0xa5)
#define UNTOUCHED_LEN (CK_UNAVAILABLE_INFORMATION - 1)

static void untouch(CK_ATTRIBUTE *a)
{
    if (a->pValue == NULL) {
        a->ulValueLen = UNTOUCHED_LEN;
    } else {
        *(CK_BBOOL *)a->pValue = UNTOUCHED_BOOL;
        a->ulValueLen = sizeof(CK_BBOOL);
    }
}

/* The batch was answered as PKCS#11 v2.40 section 5.7 says: every entry
 * processed, CKR_OK when all are known, CKR_ATTRIBUTE_TYPE_INVALID with
 * each unknown one marked CK_UNAVAILABLE_INFORMATION. */
static bool batch_answered(const CK_ATTRIBUTE *t, CK_ULONG n, CK_RV rv)
{
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID)
        return false;
    bool marked = false;
    for (CK_ULONG i = 0; i < n; i++) {
        if (t[i].ulValueLen == CK_UNAVAILABLE_INFORMATION)
            marked = true;
        else if (t[i].pValue == NULL ? t[i].ulValueLen == UNTOUCHED_LEN
                                     : t[i].ulValueLen != sizeof(CK_BBOOL) ||
                                           *(CK_BBOOL *)t[i].pValue == UNTOUCHED_BOOL)
            return false;
    }
    return marked == (rv == CKR_ATTRIBUTE_TYPE_INVALID);
}

hs_result hs_p11_get_attrs(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE *t,
                           CK_ULONG n, const char *what, hs_error *e)
{
    for (CK_ULONG i = 0; i < n; i++)
        untouch(&t[i]);
    if (n > 1 && batch_answered(t, n, p->fn->C_GetAttributeValue(s, o, t, n)))
        return HS_OK;
    /* One call per attribute, as before the batch: a token that answers
     * a batch any other way (an error for the whole call, entries left
     * alone, unknown ones not marked) is still read right. */
    for (CK_ULONG i = 0; i < n; i++) {
        untouch(&t[i]);
        if (t[i].pValue != NULL)
            *(CK_BBOOL *)t[i].pValue = CK_FALSE;
        CK_RV rv = p->fn->C_GetAttributeValue(s, o, &t[i], 1);
        if (rv == CKR_ATTRIBUTE_TYPE_INVALID)
            t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
        else if (rv != CKR_OK)
            return hs_p11_fail(p, e, rv, "C_GetAttributeValue", "reading %s (attribute 0x%lx)",
                               what, (unsigned long)t[i].type);
    }
    return HS_OK;
}

hs_result hs_p11_get_bool(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                          CK_ATTRIBUTE_TYPE type, bool *value, hs_error *e)
{
    CK_BBOOL b = CK_FALSE;
    CK_ATTRIBUTE a = {type, &b, sizeof b};
    CK_RV rv = p->fn->C_GetAttributeValue(s, o, &a, 1);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID) {
        *value = false;
        return HS_OK;
    }
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetAttributeValue", "reading attribute 0x%lx",
                           (unsigned long)type);
    *value = b == CK_TRUE;
    return HS_OK;
}

void hs_p11_free_attr_array(CK_ATTRIBUTE *arr, CK_ULONG n)
{
    if (arr == NULL)
        return;
    for (CK_ULONG i = 0; i < n; i++)
        free(arr[i].pValue);
    free(arr);
}

/* Three calls, as PKCS#11 2.40 section 4.1 describes for arrays of
 * attributes: the array's size, then each entry's type and size, then the
 * values. */
hs_result hs_p11_get_attr_array(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                CK_ATTRIBUTE_TYPE type, CK_ATTRIBUTE **arr, CK_ULONG *n,
                                hs_error *e)
{
    *arr = NULL;
    *n = 0;
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv = p->fn->C_GetAttributeValue(s, o, &a, 1);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID)
        return HS_OK;
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetAttributeValue", "reading attribute 0x%lx",
                           (unsigned long)type);
    return hs_p11_get_attr_array_sized(p, s, o, type, a.ulValueLen, arr, n, e);
}

hs_result hs_p11_get_attr_array_sized(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                      CK_ATTRIBUTE_TYPE type, CK_ULONG size, CK_ATTRIBUTE **arr,
                                      CK_ULONG *n, hs_error *e)
{
    *arr = NULL;
    *n = 0;
    if (size == 0)
        return HS_OK;
    if (size == CK_UNAVAILABLE_INFORMATION || size % sizeof(CK_ATTRIBUTE) != 0)
        return hs_fail(e, HS_E_P11, "token '%s': attribute 0x%lx is not an array of attributes",
                       p->label, (unsigned long)type);
    CK_ULONG count = size / sizeof(CK_ATTRIBUTE);
    CK_ATTRIBUTE *list = calloc(count, sizeof *list);
    if (list == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    CK_ATTRIBUTE a = {type, list, size};
    CK_RV rv = p->fn->C_GetAttributeValue(s, o, &a, 1);
    for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++) {
        if (list[i].ulValueLen == CK_UNAVAILABLE_INFORMATION || list[i].ulValueLen > 65536) {
            rv = CKR_GENERAL_ERROR;
            break;
        }
        list[i].pValue = malloc(list[i].ulValueLen + 1);
        if (list[i].pValue == NULL) {
            hs_p11_free_attr_array(list, count);
            return hs_fail(e, HS_E_NOMEM, "out of memory");
        }
    }
    if (rv == CKR_OK)
        rv = p->fn->C_GetAttributeValue(s, o, &a, 1);
    if (rv != CKR_OK) {
        hs_p11_free_attr_array(list, count);
        return hs_p11_fail(p, e, rv, "C_GetAttributeValue", "reading the entries of attribute 0x%lx",
                           (unsigned long)type);
    }
    *arr = list;
    *n = count;
    return HS_OK;
}

hs_result hs_rsa_public_from_parts(const uint8_t *n, size_t nlen, const uint8_t *ex, size_t elen,
                                   const char *what, EVP_PKEY **out, hs_error *e)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(ex, (int)elen, NULL);
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    hs_result r = HS_E_CRYPTO;
    if (nlen <= INT32_MAX && elen <= INT32_MAX && bld != NULL && bn != NULL && be != NULL &&
        ctx != NULL && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL && EVP_PKEY_fromdata_init(ctx) > 0 &&
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) > 0)
        r = HS_OK;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    EVP_PKEY_CTX_free(ctx);
    return r == HS_OK ? HS_OK : hs_fail(e, r, "cannot build an RSA public key from %s", what);
}

hs_result hs_p256_public_from_point(const uint8_t *pt, size_t len, const char *what,
                                    EVP_PKEY **out, hs_error *e)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt, len),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    bool ok = ctx != NULL && EVP_PKEY_fromdata_init(ctx) > 0 &&
              EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) > 0;
    EVP_PKEY_CTX_free(ctx);
    return ok ? HS_OK : hs_fail(e, HS_E_CRYPTO, "cannot build a P-256 public key from %s", what);
}

static hs_result ec_from_point(const uint8_t *ec_point, size_t len, EVP_PKEY **out, hs_error *e)
{
    /* CKA_EC_POINT is a DER OCTET STRING around the uncompressed point;
     * some tokens return the bare point. Accept both. */
    const uint8_t *pt = ec_point;
    size_t pt_len = len;
    if (len == 67 && ec_point[0] == 0x04 && ec_point[1] == 65) {
        pt = ec_point + 2;
        pt_len = 65;
    }
    if (pt_len != 65 || pt[0] != 0x04)
        return hs_fail(e, HS_E_P11, "token returned an EC point that is not an uncompressed P-256 point");
    return hs_p256_public_from_point(pt, pt_len, "the token's point", out, e);
}

hs_result hs_p11_public_key(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, EVP_PKEY **out,
                            hs_error *e)
{
    *out = NULL;
    CK_KEY_TYPE kt = 0;
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &kt, sizeof kt};
    CK_RV rv = p->fn->C_GetAttributeValue(s, pub, &a, 1);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetAttributeValue", "reading the public key type");
    uint8_t *x = NULL, *y = NULL;
    size_t xl = 0, yl = 0;
    hs_result r;
    if (kt == CKK_RSA) {
        r = hs_p11_get_attr(p, s, pub, CKA_MODULUS, &x, &xl, e);
        if (r == HS_OK)
            r = hs_p11_get_attr(p, s, pub, CKA_PUBLIC_EXPONENT, &y, &yl, e);
        if (r == HS_OK)
            r = hs_rsa_public_from_parts(x, xl, y, yl, "the token's attributes", out, e);
    } else if (kt == CKK_EC) {
        r = hs_p11_get_attr(p, s, pub, CKA_EC_POINT, &x, &xl, e);
        if (r == HS_OK)
            r = ec_from_point(x, xl, out, e);
    } else {
        r = hs_fail(e, HS_E_P11, "token '%s': public key type 0x%lx is neither RSA nor EC", p->label,
                    (unsigned long)kt);
    }
    free(x);
    free(y);
    return r;
}
