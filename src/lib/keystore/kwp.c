/* RFC 5649 whatever the token calls it (kwp.h). */
#include "keystore/kwp.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "p11/ckr.h"
#include "util/secmem.h"

/* openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 | openssl pkcs8
 * -topk8 -nocrypt -outform DER: made once for hsmsign and published here;
 * it protects nothing. */
const uint8_t hs_kwp_test_key[] = {
    0x30, 0x82, 0x02, 0x76, 0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a,
    0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00, 0x04, 0x82,
    0x02, 0x60, 0x30, 0x82, 0x02, 0x5c, 0x02, 0x01, 0x00, 0x02, 0x81, 0x81,
    0x00, 0xe8, 0xd1, 0x95, 0xb0, 0x42, 0x07, 0x81, 0x63, 0xe8, 0xcc, 0x26,
    0xeb, 0x52, 0xa7, 0x7d, 0x44, 0x72, 0x46, 0x3b, 0x78, 0x11, 0xad, 0x05,
    0xf4, 0xd8, 0x76, 0x00, 0xfc, 0x47, 0x9b, 0xff, 0xba, 0x67, 0x1a, 0x07,
    0xe9, 0xcb, 0x6f, 0x68, 0xb4, 0x5d, 0x78, 0x59, 0x9e, 0xef, 0x37, 0x64,
    0x5f, 0x7b, 0x85, 0xb4, 0xe9, 0x14, 0x42, 0xa2, 0x80, 0x37, 0xd1, 0xb9,
    0xc7, 0x30, 0x1c, 0x65, 0x64, 0x1d, 0x9a, 0x24, 0x72, 0xe6, 0xa6, 0x33,
    0x58, 0xc0, 0xd6, 0xd4, 0x5a, 0x03, 0xea, 0xef, 0x9f, 0x32, 0xe3, 0x23,
    0x6f, 0xa5, 0x05, 0x3c, 0x9c, 0xa8, 0x29, 0x5f, 0xd3, 0x63, 0x4e, 0x16,
    0xc5, 0x19, 0x10, 0xe1, 0x74, 0x38, 0x8a, 0xc5, 0x03, 0x0f, 0xc7, 0x35,
    0x6e, 0x49, 0xd8, 0x79, 0xe9, 0x00, 0x14, 0xf2, 0x2c, 0xff, 0x6c, 0xe5,
    0x8e, 0x45, 0x07, 0xd2, 0x9a, 0x9d, 0xd0, 0xbd, 0xf3, 0x02, 0x03, 0x01,
    0x00, 0x01, 0x02, 0x81, 0x80, 0x1d, 0xa7, 0xf4, 0xc5, 0x4a, 0xe3, 0xe1,
    0xdb, 0x74, 0x1f, 0xed, 0x25, 0x34, 0x96, 0x19, 0x22, 0xca, 0xdb, 0x9f,
    0x5f, 0xa0, 0x00, 0xc6, 0x2d, 0x76, 0x15, 0x31, 0xf2, 0xf0, 0xbc, 0x32,
    0x4a, 0xf0, 0x2f, 0x24, 0xaa, 0xe7, 0x3a, 0xfd, 0xbf, 0x5b, 0xd8, 0xa4,
    0xb1, 0xd6, 0x0e, 0xdc, 0x3e, 0x3d, 0x61, 0xbe, 0xb5, 0xa1, 0xdb, 0x0b,
    0x10, 0x02, 0x0c, 0x38, 0xf9, 0xe2, 0x6a, 0xfb, 0x8f, 0x12, 0xf1, 0x0c,
    0xd8, 0x96, 0xa1, 0x70, 0x17, 0x14, 0x04, 0x29, 0xf8, 0x2d, 0x44, 0x58,
    0x6c, 0x06, 0x13, 0xa3, 0xd2, 0xf8, 0x47, 0x8b, 0xce, 0xe8, 0xbb, 0x5a,
    0x5a, 0x8c, 0x7c, 0x49, 0x15, 0x65, 0xc4, 0x49, 0x23, 0xa5, 0xb9, 0x13,
    0x37, 0x5c, 0x70, 0x3a, 0x29, 0x74, 0x77, 0xd4, 0x48, 0x7f, 0xce, 0x22,
    0x75, 0x51, 0xbb, 0x13, 0x6c, 0xd5, 0x38, 0x06, 0xb5, 0xfd, 0x6c, 0xb7,
    0xe1, 0x02, 0x41, 0x00, 0xf8, 0xf4, 0xa7, 0xa9, 0x40, 0x22, 0x8d, 0x67,
    0xd7, 0x17, 0xfc, 0x50, 0x52, 0xea, 0x04, 0x19, 0xaa, 0x43, 0x0d, 0x87,
    0x3b, 0x2c, 0xed, 0xe2, 0x53, 0xd9, 0xcf, 0x3c, 0x50, 0xa0, 0xcf, 0x22,
    0x63, 0x13, 0x14, 0x20, 0xd0, 0x00, 0xa5, 0x68, 0xd5, 0xed, 0xa3, 0x46,
    0x43, 0x7a, 0x2c, 0xe3, 0x9f, 0xcb, 0xb7, 0x11, 0x4e, 0x55, 0xc3, 0xd0,
    0x8b, 0x40, 0x05, 0x94, 0x6b, 0xe4, 0x23, 0xfd, 0x02, 0x41, 0x00, 0xef,
    0x68, 0x0a, 0x0b, 0xe7, 0xb5, 0x9c, 0x9a, 0x4f, 0x16, 0xdb, 0x18, 0x11,
    0x08, 0x98, 0x96, 0xe0, 0x18, 0x5c, 0x5c, 0x15, 0x21, 0x2a, 0xd5, 0xaa,
    0xb8, 0x39, 0xaf, 0x84, 0xca, 0x4d, 0x98, 0x32, 0x71, 0xa1, 0x6a, 0x03,
    0x71, 0x31, 0x9e, 0xe5, 0xd6, 0x6c, 0xb1, 0x34, 0x92, 0xc7, 0x2f, 0x33,
    0xad, 0x9f, 0x96, 0x3a, 0x37, 0x7a, 0xcc, 0x4d, 0x90, 0x7b, 0x44, 0xa0,
    0x7b, 0xf4, 0xaf, 0x02, 0x40, 0x46, 0xf6, 0xae, 0x27, 0xff, 0x81, 0x19,
    0xdf, 0xa4, 0x9f, 0x50, 0xab, 0xb0, 0xc6, 0xc5, 0xfe, 0x6e, 0xdb, 0x08,
    0x2b, 0x29, 0x02, 0x08, 0x99, 0x00, 0x1f, 0xd1, 0x03, 0xb7, 0x53, 0xef,
    0x57, 0x34, 0xf8, 0x86, 0x3f, 0x48, 0x2b, 0x36, 0xfb, 0x28, 0x27, 0xc1,
    0xe7, 0xd0, 0x6a, 0x2e, 0x0b, 0x80, 0x4c, 0x38, 0x55, 0xb5, 0x87, 0x9a,
    0xf6, 0x82, 0x0a, 0xf0, 0xcc, 0x3a, 0xe8, 0xe0, 0x1d, 0x02, 0x40, 0x4b,
    0x8e, 0xfe, 0x7c, 0xbb, 0x68, 0xaa, 0x40, 0x59, 0x6d, 0xd1, 0x40, 0x4b,
    0x3f, 0xf7, 0x48, 0xc6, 0xf9, 0x69, 0x4c, 0xf6, 0xae, 0x3d, 0x22, 0xaa,
    0x7a, 0xf2, 0x59, 0xdf, 0x03, 0x2a, 0x72, 0x3a, 0x99, 0x7a, 0x64, 0x47,
    0x29, 0xd6, 0x8b, 0x5b, 0xe6, 0xcc, 0xef, 0x30, 0xb4, 0x92, 0x80, 0xe7,
    0x42, 0x88, 0xf7, 0x94, 0xf0, 0x25, 0xa5, 0x8d, 0x65, 0x68, 0x42, 0x44,
    0x94, 0x5a, 0xa9, 0x02, 0x41, 0x00, 0x8f, 0xc2, 0x36, 0x44, 0xd0, 0x7f,
    0x43, 0x8e, 0xff, 0x30, 0xfb, 0xe3, 0x48, 0x9c, 0x70, 0x86, 0x5b, 0xbb,
    0xea, 0x0d, 0x5d, 0x93, 0xbf, 0x63, 0xe8, 0x25, 0x87, 0xd2, 0xdc, 0x96,
    0xc4, 0x50, 0x83, 0x11, 0xe2, 0xc9, 0xd4, 0x88, 0xcc, 0x26, 0x6f, 0xa7,
    0xd3, 0x41, 0x13, 0x39, 0xfe, 0xac, 0x6c, 0x94, 0x4e, 0xaf, 0xb1, 0x0d,
    0x2b, 0xd4, 0x63, 0x78, 0xc8, 0x8e, 0xf7, 0xc8, 0xd3, 0xd4,
};
const size_t hs_kwp_test_key_len = sizeof hs_kwp_test_key;

/* The known-answer AES key: public, like the test key. */
static const uint8_t kat_key[32] = "hsmsign RFC 5649 known answer K";

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

bool hs_kwp_candidate(CK_MECHANISM_TYPE m)
{
    return m == CKM_AES_KEY_WRAP_KWP || m == CKM_AES_KEY_WRAP_PAD;
}

bool hs_p11_is_nss(const hs_p11 *p)
{
    return strcmp(p->manufacturer, "Mozilla Foundation") == 0 &&
           strncmp(p->model, "NSS", 3) == 0;
}

static hs_result host_cipher(bool enc, const uint8_t key[32], const uint8_t *in, size_t in_len,
                             uint8_t **out, size_t *out_len, hs_error *e)
{
    *out = NULL;
    *out_len = 0;
    if (in_len > 65536)
        return hs_fail(e, HS_E_FORMAT, "RFC 5649 input of %zu bytes is too long", in_len);
    uint8_t *buf = malloc(in_len + 16);
    if (buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    int n = 0, fin = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    bool ok = c != NULL;
    if (ok)
        EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    ok = ok && EVP_CipherInit_ex(c, EVP_aes_256_wrap_pad(), NULL, key, NULL, enc ? 1 : 0) &&
         EVP_CipherUpdate(c, buf, &n, in, (int)in_len) && EVP_CipherFinal_ex(c, buf + n, &fin);
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        free(buf);
        return hs_fail(e, HS_E_CRYPTO, "RFC 5649 %s failed on the host",
                       enc ? "wrapping" : "unwrapping (integrity check)");
    }
    *out = buf;
    *out_len = (size_t)n + (size_t)fin;
    return HS_OK;
}

hs_result hs_kwp_host_wrap(const uint8_t key[32], const uint8_t *in, size_t in_len,
                           uint8_t **out, size_t *out_len, hs_error *e)
{
    return host_cipher(true, key, in, in_len, out, out_len, e);
}

/* Our own session AES key with a known value: it wraps and unwraps the
 * test key only, and is destroyed after the test. */
static CK_RV make_kat_key(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *h)
{
    static const CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    static const CK_KEY_TYPE kt = CKK_AES;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls},     {CKA_KEY_TYPE, (void *)&kt, sizeof kt},
        {CKA_TOKEN, (void *)&no, sizeof no},       {CKA_PRIVATE, (void *)&yes, sizeof yes},
        {CKA_WRAP, (void *)&yes, sizeof yes},      {CKA_UNWRAP, (void *)&yes, sizeof yes},
        {CKA_VALUE, (void *)kat_key, sizeof kat_key},
    };
    return p->fn->C_CreateObject(s, t, sizeof t / sizeof t[0], h);
}

static const CK_OBJECT_CLASS private_class = CKO_PRIVATE_KEY;
static const CK_KEY_TYPE rsa_type = CKK_RSA;

/* The test key, sign-only but extractable, in our session. */
static CK_RV unwrap_test_key(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE kat,
                             CK_MECHANISM_TYPE m, const uint8_t *blob, size_t blob_len,
                             CK_OBJECT_HANDLE *h)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&private_class, sizeof private_class},
        {CKA_KEY_TYPE, (void *)&rsa_type, sizeof rsa_type},
        {CKA_TOKEN, (void *)&no, sizeof no},        {CKA_PRIVATE, (void *)&yes, sizeof yes},
        {CKA_SENSITIVE, (void *)&yes, sizeof yes},  {CKA_EXTRACTABLE, (void *)&yes, sizeof yes},
        {CKA_SIGN, (void *)&yes, sizeof yes},
    };
    CK_MECHANISM mech = {m, NULL, 0};
    *h = CK_INVALID_HANDLE;
    return p->fn->C_UnwrapKey(s, &mech, kat, (CK_BYTE_PTR)blob, blob_len, t,
                              sizeof t / sizeof t[0], h);
}

/* Whether mechanism m reads the host's RFC 5649 blob (unwrap) and writes
 * a blob the host opens as RFC 5649 (wrap of what it unwrapped). The
 * token may encode the PKCS#8 differently, so the host checks the
 * integrity of what comes back, not its bytes. On false, *why and *fn say
 * what the token answered. */
static bool kat_one(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE kat, CK_MECHANISM_TYPE m,
                    const uint8_t *blob, size_t blob_len, CK_RV *why, const char **fn)
{
    CK_OBJECT_HANDLE h;
    *fn = "C_UnwrapKey";
    *why = unwrap_test_key(p, s, kat, m, blob, blob_len, &h);
    if (*why != CKR_OK)
        return false;
    CK_MECHANISM mech = {m, NULL, 0};
    uint8_t out[1024];
    CK_ULONG out_len = sizeof out;
    *fn = "C_WrapKey";
    *why = p->fn->C_WrapKey(s, &mech, kat, h, out, &out_len);
    (void)p->fn->C_DestroyObject(s, h);
    if (*why != CKR_OK)
        return false;
    uint8_t *plain;
    size_t plain_len;
    hs_error ignored;
    if (host_cipher(false, kat_key, out, out_len, &plain, &plain_len, &ignored) != HS_OK) {
        *why = CKR_WRAPPED_KEY_INVALID;
        return false;
    }
    free(plain);
    return true;
}

/* The answers with which a token says that a mechanism is not, or does
 * not do, RFC 5649 (NSS's 0x210A: CKR_WRAPPED_KEY_INVALID). Anything
 * else (a dropped session, a removed device) is a failure to ask. */
static bool not_rfc5649(CK_RV rv)
{
    switch (rv) {
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_WRAPPED_KEY_INVALID:
    case CKR_WRAPPED_KEY_LEN_RANGE:
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_WRAPPING_KEY_TYPE_INCONSISTENT:
    case CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_FUNCTION_NOT_SUPPORTED:
        return true;
    default:
        return false;
    }
}

/* The known-answer key in the token and the test key's blob under it. */
static hs_result kat_start(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *kat, uint8_t **blob,
                           size_t *blob_len, hs_error *e)
{
    *kat = CK_INVALID_HANDLE;
    hs_result r = hs_kwp_host_wrap(kat_key, hs_kwp_test_key, hs_kwp_test_key_len, blob,
                                   blob_len, e);
    if (r != HS_OK)
        return r;
    CK_RV rv = make_kat_key(p, s, kat);
    if (rv == CKR_OK)
        return HS_OK;
    free(*blob);
    *blob = NULL;
    return hs_p11_fail(p, e, rv, "C_CreateObject",
                       "making the AES key of the RFC 5649 known-answer test");
}

hs_result hs_kwp_test_object(hs_p11 *p, CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE *h, hs_error *e)
{
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    CK_OBJECT_HANDLE kat;
    uint8_t *blob;
    size_t blob_len;
    hs_result r = kat_start(p, s, &kat, &blob, &blob_len, e);
    if (r != HS_OK)
        return r;
    CK_RV rv = unwrap_test_key(p, s, kat, mech, blob, blob_len, h);
    (void)p->fn->C_DestroyObject(s, kat);
    free(blob);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_UnwrapKey", "making the public test key");
    return HS_OK;
}

hs_result hs_kwp_detect(hs_p11 *p, CK_MECHANISM_TYPE *mech, hs_error *e)
{
    /* 0x210A first: RFC 5649 on SoftHSM, the common case, in one try. No
     * C_GetMechanismInfo: an unknown mechanism answers C_UnwrapKey with
     * CKR_MECHANISM_INVALID, and every call here runs in every process. */
    static const CK_MECHANISM_TYPE candidates[] = {CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP_KWP};
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    uint8_t *blob;
    size_t blob_len;
    CK_OBJECT_HANDLE kat;
    hs_result r = kat_start(p, s, &kat, &blob, &blob_len, e);
    if (r != HS_OK)
        return r;
    char tried[256] = "";
    size_t used = 0;
    bool found = false;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && !found && r == HS_OK; i++) {
        const char *fn;
        CK_RV why;
        if (kat_one(p, s, kat, candidates[i], blob, blob_len, &why, &fn)) {
            *mech = candidates[i];
            found = true;
        } else if (!not_rfc5649(why)) {
            r = hs_p11_fail(p, e, why, fn, "the RFC 5649 known-answer test with %s",
                            hs_ckm_name(candidates[i]));
        } else if (used < sizeof tried) {
            int w = snprintf(tried + used, sizeof tried - used, "%s%s: %s", used ? "; " : "",
                             hs_ckm_name(candidates[i]),
                             why == CKR_WRAPPED_KEY_INVALID ? "not RFC 5649" : hs_ckr_name(why));
            used += w > 0 ? (size_t)w : 0;
        }
    }
    (void)p->fn->C_DestroyObject(s, kat);
    free(blob);
    if (r != HS_OK)
        return r;
    if (!found)
        return hs_fail(e, HS_E_P11,
                       "token '%s' has no mechanism that reads and writes RFC 5649 (AES key "
                       "wrap with padding), the format of hsmsign's wrapped keys (%s)",
                       p->label, tried);
    return HS_OK;
}

hs_result hs_kwp_token_can_hold(const hs_p11 *p, hs_keyalg alg, const char *name, hs_error *e)
{
    if (!hs_p11_is_nss(p) || hs_keyalg_is_rsa(alg))
        return HS_OK;
    return hs_fail(e, HS_E_P11,
                   "key '%s': token '%s' is NSS softokn, which cannot unwrap the EC keys it "
                   "wraps, so an %s key could not be used after it is stored; use an RSA key "
                   "on NSS, or another token for EC keys",
                   name, p->label, hs_keyalg_name(alg));
}
