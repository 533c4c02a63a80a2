/* The yubihsm2 personality's CKM_YUBICO_AES_CCM_WRAP (shim_yubihsm.c):
 * C_WrapKey and C_UnwrapKey with the shim's sealed wrap blob. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim_yubihsm.h"

/* C_WrapKey with no output buffer answers YH_MSG_BUF_SIZE (yubihsm.h). */
#define YH_MSG_BUF_SIZE 3136

/* ---- CKM_YUBICO_AES_CCM_WRAP ------------------------------------------------ */

/* The blob (the shim's own format, not Yubico's):
 *   "YHSHIMW1" | IV (12) | kwp_len (2, BE) | sealed_len (2, BE) | kwp | sealed
 * kwp is SoftHSM's CKM_AES_KEY_WRAP_PAD (RFC 5649) of the key under the
 * wrap key. sealed is SoftHSM's AES-GCM, under the same wrap key, of the
 * object's metadata (below), with everything before it as AAD, so neither
 * the metadata nor the key material can be changed or swapped. Metadata:
 *   type (1) | domains (2) | pages (4) | count (1) | count x [type (4) len (2) value]
 * with CK_ULONG values as 8 bytes big-endian. */
#define BLOB_MAGIC "YHSHIMW1"
#define BLOB_HEAD (8 + 12 + 2 + 2)
#define GCM_TAG 16
#define META_MAX 512

static const CK_ATTRIBUTE_TYPE meta_ulongs[] = {CKA_CLASS, CKA_KEY_TYPE};
static const CK_ATTRIBUTE_TYPE meta_bytes[] = {CKA_ID, CKA_LABEL};
/* The attributes that stand for the object's capabilities. */
static const CK_ATTRIBUTE_TYPE meta_bools[] = {CKA_SIGN, CKA_VERIFY, CKA_DECRYPT, CKA_ENCRYPT,
                                               CKA_WRAP, CKA_UNWRAP, CKA_DERIVE,
                                               CKA_EXTRACTABLE, CKA_SENSITIVE, CKA_PRIVATE};

struct buf {
    CK_BYTE b[META_MAX];
    size_t len;
    bool overflow;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->overflow || n > sizeof b->b - b->len) {
        b->overflow = true;
        return;
    }
    memcpy(b->b + b->len, p, n);
    b->len += n;
}

static void put_be(struct buf *b, unsigned long long v, size_t n)
{
    CK_BYTE tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (CK_BYTE)(v >> (8 * (n - 1 - i)));
    put(b, tmp, n);
}

static unsigned long long get_be(const CK_BYTE *p, size_t n)
{
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_attr(struct buf *b, CK_ATTRIBUTE_TYPE type, const void *value, size_t len)
{
    put_be(b, type, 4);
    put_be(b, len, 2);
    put(b, value, len);
}

/* Only the attributes SoftHSM has for this class go in (a private key has
 * no CKA_VERIFY, and its unwrap would refuse one). */
static CK_RV build_meta(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const struct obj_info *info,
                        struct buf *m)
{
    memset(m, 0, sizeof *m);
    put_be(m, info->type, 1);
    put_be(m, 0xffff, 2); /* domains: all of the authentication key's (see README) */
    put_be(m, info->pages, 4);
    put_be(m, 0, 1); /* attribute count, set below */
    unsigned count = 0;
    CK_ULONG values[] = {info->cls, info->kt};
    for (size_t i = 0; i < sizeof meta_ulongs / sizeof meta_ulongs[0]; i++, count++) {
        put_be(m, meta_ulongs[i], 4);
        put_be(m, 8, 2);
        put_be(m, values[i], 8);
    }
    for (size_t i = 0; i < sizeof meta_bytes / sizeof meta_bytes[0]; i++, count++) {
        CK_BYTE value[256];
        CK_ULONG len = sizeof value;
        if (yh_get_one(s, key, meta_bytes[i], value, &len) != CKR_OK)
            len = 0;
        put_attr(m, meta_bytes[i], value, len);
    }
    for (size_t i = 0; i < sizeof meta_bools / sizeof meta_bools[0]; i++) {
        CK_BBOOL v = CK_FALSE;
        CK_ULONG len = sizeof v;
        if (yh_get_one(s, key, meta_bools[i], &v, &len) != CKR_OK || len != 1)
            continue;
        put_attr(m, meta_bools[i], &v, 1);
        count++;
    }
    m->b[7] = (CK_BYTE)count;
    return m->overflow ? CKR_DEVICE_ERROR : CKR_OK;
}

/* The restored object: the template SoftHSM's unwrap gets, built only
 * from the sealed metadata. */
struct restored {
    enum yh_type type;
    unsigned long pages;
    CK_ATTRIBUTE a[MAX_TEMPLATE];
    CK_ULONG n;
    CK_ULONG ulongs[2];
    CK_BYTE bools[16];
    CK_BBOOL yes;
    const void *id;
    CK_ULONG id_len;
};

static CK_RV parse_meta(const CK_BYTE *p, size_t len, struct restored *r)
{
    memset(r, 0, sizeof *r);
    r->yes = CK_TRUE;
    if (len < 8)
        return CKR_WRAPPED_KEY_INVALID;
    r->type = (enum yh_type)p[0];
    r->pages = (unsigned long)get_be(p + 3, 4);
    size_t count = p[7], off = 8, n_ulongs = 0, n_bools = 0;
    for (size_t i = 0; i < count; i++) {
        if (len - off < 6 || r->n >= MAX_TEMPLATE - 2)
            return CKR_WRAPPED_KEY_INVALID;
        CK_ATTRIBUTE_TYPE type = (CK_ATTRIBUTE_TYPE)get_be(p + off, 4);
        size_t vlen = (size_t)get_be(p + off + 4, 2);
        off += 6;
        if (len - off < vlen)
            return CKR_WRAPPED_KEY_INVALID;
        const CK_BYTE *value = p + off;
        off += vlen;
        if (type == CKA_CLASS || type == CKA_KEY_TYPE) {
            if (vlen != 8 || n_ulongs == 2)
                return CKR_WRAPPED_KEY_INVALID;
            r->ulongs[n_ulongs] = (CK_ULONG)get_be(value, 8);
            r->a[r->n++] = (CK_ATTRIBUTE){type, &r->ulongs[n_ulongs++], sizeof(CK_ULONG)};
        } else if (vlen == 1 && type != CKA_ID && type != CKA_LABEL) {
            if (n_bools == sizeof r->bools)
                return CKR_WRAPPED_KEY_INVALID;
            r->bools[n_bools] = value[0];
            r->a[r->n++] = (CK_ATTRIBUTE){type, &r->bools[n_bools++], 1};
        } else if (vlen > 0) {
            r->a[r->n++] = (CK_ATTRIBUTE){type, (void *)value, vlen};
            if (type == CKA_ID) {
                r->id = value;
                r->id_len = vlen;
            }
        }
    }
    if (n_ulongs != 2 || off != len)
        return CKR_WRAPPED_KEY_INVALID;
    r->a[r->n++] = (CK_ATTRIBUTE){CKA_TOKEN, &r->yes, sizeof r->yes};
    return CKR_OK;
}

static CK_RV gcm(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, bool seal, CK_BYTE *iv,
                 const CK_BYTE *aad, CK_ULONG aad_len, const CK_BYTE *in, CK_ULONG in_len,
                 CK_BYTE *out, CK_ULONG *out_len)
{
    CK_GCM_PARAMS params = {.pIv = iv, .ulIvLen = 12, .ulIvBits = 96,
                            .pAAD = (CK_BYTE *)aad, .ulAADLen = aad_len,
                            .ulTagBits = GCM_TAG * 8};
    CK_MECHANISM m = {CKM_AES_GCM, &params, sizeof params};
    CK_RV rv = seal ? R()->C_EncryptInit(s, &m, key) : R()->C_DecryptInit(s, &m, key);
    if (rv != CKR_OK)
        return rv;
    return seal ? R()->C_Encrypt(s, (CK_BYTE *)in, in_len, out, out_len)
                : R()->C_Decrypt(s, (CK_BYTE *)in, in_len, out, out_len);
}

static CK_RV check_mechanism(CK_MECHANISM_PTR mech)
{
    if (mech == NULL)
        return CKR_ARGUMENTS_BAD;
    if (mech->mechanism != CKM_YUBICO_AES_CCM_WRAP)
        return CKR_MECHANISM_INVALID;
    /* CKM_YUBICO_AES_CCM_WRAP_PARAMS is one CK_ULONG (format), optional. */
    if (mech->pParameter != NULL && mech->ulParameterLen != sizeof(CK_ULONG))
        return CKR_MECHANISM_PARAM_INVALID;
    return CKR_OK;
}

/* The key operations need their own session: the application's may hold
 * an operation, and the GCM seal must not disturb it. */
static CK_RV wrap_blob(CK_SESSION_HANDLE own, CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key,
                       const struct obj_info *info, CK_BYTE **blob, CK_ULONG *blob_len)
{
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CK_ULONG kwp_len = 0;
    struct buf meta;
    CK_RV rv = R()->C_WrapKey(own, &kwp, wrapping_key, key, NULL, &kwp_len);
    if (rv == CKR_OK)
        rv = build_meta(own, key, info, &meta);
    if (rv != CKR_OK)
        return rv;
    CK_ULONG total = BLOB_HEAD + kwp_len + meta.len + GCM_TAG;
    if (kwp_len > 0xffff || meta.len + GCM_TAG > 0xffff)
        return CKR_DEVICE_ERROR;
    CK_BYTE *b = malloc(total);
    if (b == NULL)
        return CKR_HOST_MEMORY;
    memcpy(b, BLOB_MAGIC, 8);
    rv = R()->C_GenerateRandom(own, b + 8, 12);
    b[20] = (CK_BYTE)(kwp_len >> 8);
    b[21] = (CK_BYTE)kwp_len;
    b[22] = (CK_BYTE)((meta.len + GCM_TAG) >> 8);
    b[23] = (CK_BYTE)(meta.len + GCM_TAG);
    CK_ULONG got = kwp_len;
    if (rv == CKR_OK)
        rv = R()->C_WrapKey(own, &kwp, wrapping_key, key, b + BLOB_HEAD, &got);
    CK_ULONG sealed_len = meta.len + GCM_TAG;
    if (rv == CKR_OK && got != kwp_len)
        rv = CKR_DEVICE_ERROR;
    if (rv == CKR_OK)
        rv = gcm(own, wrapping_key, true, b + 8, b, BLOB_HEAD + kwp_len, meta.b, meta.len,
                 b + BLOB_HEAD + kwp_len, &sealed_len);
    if (rv == CKR_OK && sealed_len != meta.len + GCM_TAG)
        rv = CKR_DEVICE_ERROR;
    if (rv != CKR_OK) {
        explicit_bzero(b, total);
        free(b);
        return rv;
    }
    *blob = b;
    *blob_len = total;
    return CKR_OK;
}

/* yubihsm_pkcs11.c C_WrapKey: the wrapping key needs export-wrapped
 * (CKA_WRAP), the key exportable-under-wrap (CKA_EXTRACTABLE); with no
 * output buffer the answer is YH_MSG_BUF_SIZE. */
CK_RV shim_yh_wrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE wrapping_key,
                       CK_OBJECT_HANDLE key, CK_BYTE_PTR wrapped, CK_ULONG_PTR wrapped_len)
{
    if (mech == NULL || wrapped_len == NULL)
        return CKR_ARGUMENTS_BAD;
    struct obj_info info, wk;
    CK_RV rv = yh_describe(s, key, &info);
    if (rv != CKR_OK)
        return CKR_KEY_HANDLE_INVALID;
    if (wrapped == NULL) {
        *wrapped_len = YH_MSG_BUF_SIZE;
        return CKR_OK;
    }
    rv = check_mechanism(mech);
    if (rv != CKR_OK)
        return rv;
    if (yh_describe(s, wrapping_key, &wk) != CKR_OK)
        return CKR_WRAPPING_KEY_HANDLE_INVALID;
    if (!wk.wrap_key || !yh_get_bool(s, wrapping_key, CKA_WRAP))
        return CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
    if (!yh_get_bool(s, key, CKA_EXTRACTABLE))
        return CKR_KEY_UNEXTRACTABLE;
    if (info.type != YH_ASYMMETRIC && info.type != YH_SYMMETRIC && info.type != YH_HMAC &&
        info.type != YH_WRAP)
        return CKR_KEY_NOT_WRAPPABLE; /* opaque objects: not emulated */

    CK_SESSION_HANDLE own;
    bool logged_in;
    rv = yh_own_session(s, &own, &logged_in);
    if (rv != CKR_OK)
        return rv;
    CK_BYTE *blob = NULL;
    CK_ULONG blob_len = 0;
    rv = logged_in ? wrap_blob(own, wrapping_key, key, &info, &blob, &blob_len)
                   : CKR_USER_NOT_LOGGED_IN;
    R()->C_CloseSession(own);
    if (rv != CKR_OK)
        return rv;
    if (*wrapped_len < blob_len) {
        rv = CKR_BUFFER_TOO_SMALL;
    } else {
        memcpy(wrapped, blob, blob_len);
    }
    *wrapped_len = blob_len;
    explicit_bzero(blob, blob_len);
    free(blob);
    return rv;
}

/* Opens the blob: the metadata must authenticate under the unwrapping
 * key. Any failure is CKR_WRAPPED_KEY_INVALID (the device's own answer to
 * a blob that fails its CCM check is not documented). */
static CK_RV open_blob(CK_SESSION_HANDLE own, CK_OBJECT_HANDLE key, const CK_BYTE *blob,
                       CK_ULONG len, CK_BYTE *meta, CK_ULONG *meta_len, const CK_BYTE **kwp,
                       CK_ULONG *kwp_len)
{
    if (len < BLOB_HEAD || memcmp(blob, BLOB_MAGIC, 8) != 0)
        return CKR_WRAPPED_KEY_INVALID;
    *kwp_len = (CK_ULONG)get_be(blob + 20, 2);
    CK_ULONG sealed_len = (CK_ULONG)get_be(blob + 22, 2);
    if (len != BLOB_HEAD + *kwp_len + sealed_len || sealed_len <= GCM_TAG ||
        sealed_len - GCM_TAG > *meta_len)
        return CKR_WRAPPED_KEY_INVALID;
    CK_BYTE iv[12];
    memcpy(iv, blob + 8, sizeof iv);
    *kwp = blob + BLOB_HEAD;
    CK_RV rv = gcm(own, key, false, iv, blob, BLOB_HEAD + *kwp_len, blob + BLOB_HEAD + *kwp_len,
                   sealed_len, meta, meta_len);
    return rv == CKR_OK ? CKR_OK : CKR_WRAPPED_KEY_INVALID;
}

/* yubihsm_pkcs11.c C_UnwrapKey with CKM_YUBICO_AES_CCM_WRAP calls
 * yh_util_import_wrapped with the blob alone: pTemplate is never read. The
 * object comes back with the ID, label, capabilities and domains sealed in
 * the blob, and an object of that type and ID on the device is an error. */
CK_RV shim_yh_unwrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,
                         CK_OBJECT_HANDLE unwrapping_key, CK_BYTE_PTR wrapped,
                         CK_ULONG wrapped_len, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                         CK_OBJECT_HANDLE_PTR key)
{
    (void)tmpl; /* ignored, as by the real module */
    (void)n;
    if (wrapped == NULL || key == NULL)
        return CKR_ARGUMENTS_BAD;
    CK_RV rv = check_mechanism(mech);
    if (rv != CKR_OK)
        return rv;
    struct obj_info wk;
    if (yh_describe(s, unwrapping_key, &wk) != CKR_OK)
        return CKR_UNWRAPPING_KEY_HANDLE_INVALID;
    if (!wk.wrap_key || !yh_get_bool(s, unwrapping_key, CKA_UNWRAP))
        return CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;

    CK_SESSION_HANDLE own;
    bool logged_in;
    rv = yh_own_session(s, &own, &logged_in);
    if (rv != CKR_OK)
        return rv;
    CK_BYTE meta[META_MAX];
    CK_ULONG meta_len = sizeof meta;
    const CK_BYTE *kwp = NULL;
    CK_ULONG kwp_len = 0;
    struct restored r;
    if (!logged_in)
        rv = CKR_USER_NOT_LOGGED_IN;
    if (rv == CKR_OK)
        rv = open_blob(own, unwrapping_key, wrapped, wrapped_len, meta, &meta_len, &kwp, &kwp_len);
    if (rv == CKR_OK)
        rv = parse_meta(meta, meta_len, &r);
    R()->C_CloseSession(own);
    if (rv == CKR_OK)
        rv = yh_admit(s, r.type, r.id, r.id_len, r.pages);
    if (rv != CKR_OK)
        return rv;
    CK_MECHANISM m = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    rv = R()->C_UnwrapKey(s, &m, unwrapping_key, (CK_BYTE *)kwp, kwp_len, r.a, r.n, key);
    if (rv == CKR_OK)
        yh_note_created(r.pages, true, *key);
    return rv;
}
