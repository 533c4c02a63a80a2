/* The yubihsm2 personality's object store (shim_yubihsm.c): what each
 * SoftHSM object is on the device, the device's storage limits (objects
 * and pages) and the object calls, persistent objects only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim_yubihsm.h"

/* Documented limits: "any YubiHSM 2 device can store up to 256 Objects.
 * Their combined size can not exceed 126 KB" (Concepts/Object.html); the
 * storage is 1024 pages of 126 bytes (yubihsm-shell get storage). */
#define YH_MAX_OBJECTS 256
#define YH_MAX_PAGES 1024
#define YH_PAGE_SIZE 126

#define MAX_UNWRAPPED 1024

pthread_mutex_t yh_lock = PTHREAD_MUTEX_INITIALIZER;
struct shim_yh_counts yh_counts = {.objects_left = -1, .pages_used = -1};
/* Handles of objects this process unwrapped and has not deleted. */
static CK_OBJECT_HANDLE unwrapped[MAX_UNWRAPPED];
static size_t n_unwrapped;

/* ---- small helpers ------------------------------------------------------ */

static const CK_ATTRIBUTE *find_attr(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
    for (CK_ULONG i = 0; t != NULL && i < n; i++)
        if (t[i].type == type)
            return &t[i];
    return NULL;
}

static bool attr_ulong(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, CK_ULONG *out)
{
    const CK_ATTRIBUTE *a = find_attr(t, n, type);
    if (a == NULL || a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
        return false;
    memcpy(out, a->pValue, sizeof *out);
    return true;
}

static bool attr_true(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
    const CK_ATTRIBUTE *a = find_attr(t, n, type);
    return a != NULL && a->pValue != NULL && a->ulValueLen == 1 &&
           *(const CK_BBOOL *)a->pValue == CK_TRUE;
}

/* A copy of the application's template that the personality may change;
 * the values it sets live in the struct itself. */
struct tmpl {
    CK_ATTRIBUTE a[MAX_TEMPLATE];
    CK_ULONG n;
    CK_BBOOL yes;
    CK_KEY_TYPE aes;
    CK_ULONG value_len;
};

static CK_RV tmpl_copy(struct tmpl *t, const CK_ATTRIBUTE *src, CK_ULONG n)
{
    memset(t, 0, sizeof *t);
    t->yes = CK_TRUE;
    t->aes = CKK_AES;
    if (n > MAX_TEMPLATE - 4)
        return CKR_TEMPLATE_INCONSISTENT;
    if (n > 0)
        memcpy(t->a, src, n * sizeof *src);
    t->n = n;
    return CKR_OK;
}

static void tmpl_set(struct tmpl *t, CK_ATTRIBUTE_TYPE type, void *value, CK_ULONG len)
{
    for (CK_ULONG i = 0; i < t->n; i++) {
        if (t->a[i].type == type) {
            t->a[i].pValue = value;
            t->a[i].ulValueLen = len;
            return;
        }
    }
    t->a[t->n++] = (CK_ATTRIBUTE){type, value, len};
}

/* The AES key length of a Yubico CCM wrap key type, 0 for any other type. */
static CK_ULONG yubico_wrap_len(CK_KEY_TYPE kt)
{
    switch (kt) {
    case CKK_YUBICO_AES128_CCM_WRAP: return 16;
    case CKK_YUBICO_AES192_CCM_WRAP: return 24;
    case CKK_YUBICO_AES256_CCM_WRAP: return 32;
    default: return 0;
    }
}

static CK_KEY_TYPE yubico_wrap_type(CK_ULONG len)
{
    return len == 16 ? CKK_YUBICO_AES128_CCM_WRAP
         : len == 24 ? CKK_YUBICO_AES192_CCM_WRAP
                     : CKK_YUBICO_AES256_CCM_WRAP;
}

/* A YubiHSM wrap key lives in SoftHSM as an AES key with CKA_WRAP or
 * CKA_UNWRAP; the personality presents it with the Yubico key type. It
 * also gets CKA_ENCRYPT/CKA_DECRYPT, which the personality uses to seal a
 * wrap blob's metadata with AES-GCM (the device's wrap-data/unwrap-data). */
static void make_wrap_key_template(struct tmpl *t, CK_ULONG len)
{
    t->value_len = len;
    tmpl_set(t, CKA_KEY_TYPE, &t->aes, sizeof t->aes);
    tmpl_set(t, CKA_ENCRYPT, &t->yes, sizeof t->yes);
    tmpl_set(t, CKA_DECRYPT, &t->yes, sizeof t->yes);
}

static unsigned long pages_for(unsigned long bytes)
{
    unsigned long pages = (bytes + YH_PAGE_SIZE - 1) / YH_PAGE_SIZE;
    return pages == 0 ? 1 : pages;
}

/* Pages of an RSA key with a modulus of mod_bytes: 3.5 modulus lengths
 * (the private CRT parts plus the modulus), the one rule that gives the
 * documented capacity with one authentication key present: 127 RSA-2048
 * (8 pages), 93 RSA-3072 (11), 68 RSA-4096 (15 of 1024 pages). */
static unsigned long rsa_pages(unsigned long mod_bytes)
{
    return pages_for(mod_bytes * 7 / 2);
}

/* EC: scalar plus public point, 3 field lengths: 1 page for P-256, 2 for
 * P-384 and P-521; 255 EC keys fit, as documented. */
static unsigned long ec_pages(const CK_BYTE *params, CK_ULONG len)
{
    static const CK_BYTE p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
    static const CK_BYTE p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
    unsigned long field = 32;
    if (params != NULL && len == sizeof p384 && memcmp(params, p384, len) == 0)
        field = 48;
    if (params != NULL && len == sizeof p521 && memcmp(params, p521, len) == 0)
        field = 66;
    return pages_for(field * 3);
}

/* ---- what a SoftHSM object is on the device ------------------------------ */

CK_RV yh_get_one(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, void *value,
                 CK_ULONG *len)
{
    CK_ATTRIBUTE a = {type, value, *len};
    CK_RV rv = R()->C_GetAttributeValue(s, o, &a, 1);
    *len = a.ulValueLen;
    return rv;
}

static CK_ULONG attr_len(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
    CK_ULONG len = 0;
    if (yh_get_one(s, o, type, NULL, &len) != CKR_OK || len == CK_UNAVAILABLE_INFORMATION)
        return 0;
    return len;
}

bool yh_get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = CK_FALSE;
    CK_ULONG len = sizeof v;
    return yh_get_one(s, o, type, &v, &len) == CKR_OK && v == CK_TRUE;
}

CK_RV yh_describe(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, struct obj_info *out)
{
    memset(out, 0, sizeof *out);
    CK_ULONG len = sizeof out->cls;
    CK_RV rv = yh_get_one(s, o, CKA_CLASS, &out->cls, &len);
    if (rv != CKR_OK)
        return rv;
    if (out->cls == CKO_PRIVATE_KEY || out->cls == CKO_PUBLIC_KEY ||
        out->cls == CKO_SECRET_KEY) {
        len = sizeof out->kt;
        rv = yh_get_one(s, o, CKA_KEY_TYPE, &out->kt, &len);
        if (rv != CKR_OK)
            return rv;
    }
    switch (out->cls) {
    case CKO_PUBLIC_KEY: /* half of an asymmetric object */
        out->type = YH_NONE;
        break;
    case CKO_PRIVATE_KEY:
        out->type = YH_ASYMMETRIC;
        if (out->kt == CKK_RSA) {
            out->pages = rsa_pages(attr_len(s, o, CKA_MODULUS));
        } else {
            CK_BYTE params[64];
            CK_ULONG plen = sizeof params;
            bool ok = yh_get_one(s, o, CKA_EC_PARAMS, params, &plen) == CKR_OK;
            out->pages = ec_pages(ok ? params : NULL, ok ? plen : 0);
        }
        break;
    case CKO_SECRET_KEY: {
        CK_ULONG vlen = 0;
        len = sizeof vlen;
        if (yh_get_one(s, o, CKA_VALUE_LEN, &vlen, &len) != CKR_OK)
            vlen = 32;
        out->pages = pages_for(vlen);
        out->aes_len = vlen;
        out->wrap_key = out->kt == CKK_AES &&
                        (yh_get_bool(s, o, CKA_WRAP) || yh_get_bool(s, o, CKA_UNWRAP));
        out->type = out->wrap_key ? YH_WRAP : out->kt == CKK_AES ? YH_SYMMETRIC : YH_HMAC;
        break;
    }
    default: /* data objects, certificates: opaque objects */
        out->type = YH_OPAQUE;
        out->pages = pages_for(attr_len(s, o, CKA_VALUE));
        break;
    }
    return CKR_OK;
}

/* ---- the device's storage ------------------------------------------------ */

/* A session of the personality's own, on the slot of the application's
 * session. PKCS#11 logins are per token and application, so it sees what
 * the application's login shows. */
CK_RV yh_own_session(CK_SESSION_HANDLE app, CK_SESSION_HANDLE *own, bool *logged_in)
{
    CK_SESSION_INFO si;
    CK_RV rv = R()->C_GetSessionInfo(app, &si);
    if (rv != CKR_OK)
        return rv;
    *logged_in = si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS;
    return R()->C_OpenSession(si.slotID, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, own);
}

/* Every object matching t (all of them for n == 0), up to max. */
static CK_RV find_all(CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *found,
                      CK_ULONG max, CK_ULONG *count)
{
    CK_RV rv = R()->C_FindObjectsInit(s, t, n);
    if (rv != CKR_OK)
        return rv;
    *count = 0;
    while (*count < max) {
        CK_ULONG got = 0;
        rv = R()->C_FindObjects(s, found + *count, max - *count, &got);
        if (rv != CKR_OK || got == 0)
            break;
        *count += got;
    }
    CK_RV final_rv = R()->C_FindObjectsFinal(s);
    return rv != CKR_OK ? rv : final_rv;
}

/* What each object seen so far is on the device, by handle: measuring the
 * storage before every new object would otherwise read every object's
 * attributes each time (SoftHSM's file store makes that slow). SoftHSM
 * keeps a handle for one object while the module stays initialized; the
 * cache is dropped at C_Initialize and C_Finalize, and on each delete. */
struct cached {
    CK_OBJECT_HANDLE handle;
    enum yh_type type;
    unsigned long pages;
};
static struct cached *cache;
static size_t n_cache, cap_cache;

static bool cache_get(CK_OBJECT_HANDLE h, struct cached *out)
{
    bool hit = false;
    pthread_mutex_lock(&yh_lock);
    for (size_t i = 0; i < n_cache && !hit; i++) {
        if (cache[i].handle == h) {
            *out = cache[i];
            hit = true;
        }
    }
    pthread_mutex_unlock(&yh_lock);
    return hit;
}

static void cache_put(CK_OBJECT_HANDLE h, enum yh_type type, unsigned long pages)
{
    pthread_mutex_lock(&yh_lock);
    if (n_cache == cap_cache) {
        size_t cap = cap_cache == 0 ? 64 : cap_cache * 2;
        struct cached *bigger = realloc(cache, cap * sizeof *cache);
        if (bigger == NULL) { /* a test module: see grow() in shim_state.c */
            fputs("hsmsign-p11shim: out of memory\n", stderr);
            abort();
        }
        cache = bigger;
        cap_cache = cap;
    }
    cache[n_cache++] = (struct cached){h, type, pages};
    pthread_mutex_unlock(&yh_lock);
}

static void cache_drop(CK_OBJECT_HANDLE h)
{
    pthread_mutex_lock(&yh_lock);
    for (size_t i = 0; i < n_cache; i++) {
        if (cache[i].handle == h) {
            cache[i] = cache[--n_cache];
            break;
        }
    }
    pthread_mutex_unlock(&yh_lock);
}

void yh_cache_clear(void)
{
    pthread_mutex_lock(&yh_lock);
    n_cache = 0;
    pthread_mutex_unlock(&yh_lock);
}

/* What the device holds: every object it would store, plus one page and
 * one object per authentication key. */
CK_RV yh_measure(CK_SESSION_HANDLE own, struct storage *st)
{
    enum { MAX_SCAN = 4096 };
    CK_OBJECT_HANDLE *all = calloc(MAX_SCAN, sizeof *all);
    if (all == NULL)
        return CKR_HOST_MEMORY;
    CK_ULONG n = 0;
    CK_RV rv = find_all(own, NULL, 0, all, MAX_SCAN, &n);
    st->objects = shim_cfg()->n_yh_auth_keys;
    st->pages = shim_cfg()->n_yh_auth_keys;
    for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++) {
        struct cached c;
        if (!cache_get(all[i], &c)) {
            struct obj_info info;
            if (yh_describe(own, all[i], &info) != CKR_OK)
                continue;
            c = (struct cached){all[i], info.type, info.pages};
            cache_put(all[i], info.type, info.pages);
        }
        if (c.type == YH_NONE)
            continue;
        st->objects++;
        st->pages += c.pages;
    }
    free(all);
    return rv;
}

void yh_note_storage(const struct storage *st)
{
    pthread_mutex_lock(&yh_lock);
    yh_counts.objects_left = (long)st->objects;
    yh_counts.pages_used = (long)st->pages;
    pthread_mutex_unlock(&yh_lock);
}

/* An object of this type and ID already on the device (the pair (type,
 * ID) is unique: Concepts/Object_ID.html). */
static CK_RV id_taken(CK_SESSION_HANDLE own, enum yh_type type, const void *id, CK_ULONG id_len,
                      bool *taken)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_SECRET_KEY, CKO_DATA,
                                              CKO_CERTIFICATE};
    *taken = false;
    for (size_t c = 0; c < sizeof classes / sizeof classes[0] && !*taken; c++) {
        CK_OBJECT_CLASS cls = classes[c];
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, (void *)id, id_len}};
        CK_OBJECT_HANDLE found[16];
        CK_ULONG n = 0;
        CK_RV rv = find_all(own, t, 2, found, 16, &n);
        if (rv != CKR_OK)
            return rv;
        for (CK_ULONG i = 0; i < n && !*taken; i++) {
            struct obj_info info;
            *taken = yh_describe(own, found[i], &info) == CKR_OK && info.type == type;
        }
    }
    return CKR_OK;
}

/* Before anything is stored: an authenticated session (every command but
 * session set-up needs one), a free (type, ID), and room for one more
 * object of `pages` pages. The device answers a full storage with
 * YHR_DEVICE_STORAGE_FAILED, which yubihsm_pkcs11 turns into
 * CKR_DEVICE_MEMORY, and an existing ID with YHR_DEVICE_OBJECT_EXISTS,
 * turned into CKR_ATTRIBUTE_VALUE_INVALID (util_pkcs11.c yrc_to_rv). */
static CK_RV admit_on(CK_SESSION_HANDLE own, enum yh_type type, const void *id, CK_ULONG id_len,
                      unsigned long pages)
{
    if (id != NULL && id_len > 0) {
        bool taken = false;
        CK_RV rv = id_taken(own, type, id, id_len, &taken);
        if (rv != CKR_OK)
            return rv;
        if (taken)
            return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    struct storage st;
    CK_RV rv = yh_measure(own, &st);
    if (rv != CKR_OK)
        return rv;
    yh_note_storage(&st);
    if (st.objects + 1 <= YH_MAX_OBJECTS && st.pages + pages <= YH_MAX_PAGES)
        return CKR_OK;
    pthread_mutex_lock(&yh_lock);
    yh_counts.storage_refused++;
    pthread_mutex_unlock(&yh_lock);
    return CKR_DEVICE_MEMORY;
}

CK_RV yh_admit(CK_SESSION_HANDLE app, enum yh_type type, const void *id, CK_ULONG id_len,
               unsigned long pages)
{
    CK_SESSION_HANDLE own;
    bool logged_in;
    CK_RV rv = yh_own_session(app, &own, &logged_in);
    if (rv != CKR_OK)
        return rv;
    rv = logged_in ? admit_on(own, type, id, id_len, pages) : CKR_USER_NOT_LOGGED_IN;
    R()->C_CloseSession(own);
    return rv;
}

void yh_note_created(unsigned long pages, bool was_unwrapped, CK_OBJECT_HANDLE handle)
{
    pthread_mutex_lock(&yh_lock);
    yh_counts.objects_created++;
    if (yh_counts.objects_left >= 0) {
        yh_counts.objects_left++;
        yh_counts.pages_used += (long)pages;
    }
    if (was_unwrapped) {
        yh_counts.objects_unwrapped++;
        if (n_unwrapped < MAX_UNWRAPPED)
            unwrapped[n_unwrapped++] = handle;
        yh_counts.unwrapped_left = n_unwrapped;
    }
    pthread_mutex_unlock(&yh_lock);
}

static void note_deleted(unsigned long pages, CK_OBJECT_HANDLE handle)
{
    pthread_mutex_lock(&yh_lock);
    yh_counts.objects_deleted++;
    if (yh_counts.objects_left > 0) {
        yh_counts.objects_left--;
        yh_counts.pages_used -= (long)pages;
    }
    for (size_t i = 0; i < n_unwrapped; i++) {
        if (unwrapped[i] == handle) {
            unwrapped[i] = unwrapped[--n_unwrapped];
            break;
        }
    }
    yh_counts.unwrapped_left = n_unwrapped;
    pthread_mutex_unlock(&yh_lock);
}

void shim_yh_counts(struct shim_yh_counts *out)
{
    pthread_mutex_lock(&yh_lock);
    *out = yh_counts;
    pthread_mutex_unlock(&yh_lock);
}

/* ---- objects: persistent only, counted against the storage ----------------- */

static CK_RV new_object_pages(const CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_CLASS cls,
                              CK_KEY_TYPE kt, unsigned long *pages)
{
    const CK_ATTRIBUTE *a;
    CK_ULONG v;
    switch (cls) {
    case CKO_PRIVATE_KEY:
        if (kt == CKK_RSA) {
            a = find_attr(t, n, CKA_MODULUS);
            *pages = rsa_pages(a != NULL ? a->ulValueLen : 256);
        } else {
            a = find_attr(t, n, CKA_EC_PARAMS);
            *pages = ec_pages(a != NULL ? a->pValue : NULL, a != NULL ? a->ulValueLen : 0);
        }
        return CKR_OK;
    case CKO_SECRET_KEY:
        a = find_attr(t, n, CKA_VALUE);
        *pages = pages_for(a != NULL ? a->ulValueLen
                           : attr_ulong(t, n, CKA_VALUE_LEN, &v) ? v : 32);
        return CKR_OK;
    default:
        a = find_attr(t, n, CKA_VALUE);
        *pages = pages_for(a != NULL ? a->ulValueLen : 0);
        return CKR_OK;
    }
}

static enum yh_type type_of_template(const CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_CLASS cls,
                                     CK_KEY_TYPE kt)
{
    switch (cls) {
    case CKO_PUBLIC_KEY: return YH_NONE;
    case CKO_PRIVATE_KEY: return YH_ASYMMETRIC;
    case CKO_SECRET_KEY:
        if (yubico_wrap_len(kt) != 0 ||
            (kt == CKK_AES && (attr_true(t, n, CKA_WRAP) || attr_true(t, n, CKA_UNWRAP))))
            return YH_WRAP;
        return kt == CKK_AES ? YH_SYMMETRIC : YH_HMAC;
    default: return YH_OPAQUE;
    }
}

/* C_CreateObject: CKA_TOKEN is forced true (there are no session objects);
 * a CKK_YUBICO_AES*_CCM_WRAP key becomes a SoftHSM AES key. */
CK_RV shim_yh_create_object(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                            CK_OBJECT_HANDLE_PTR obj)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_KEY_TYPE kt = CKK_AES;
    if (!attr_ulong(tmpl, n, CKA_CLASS, &cls))
        return CKR_TEMPLATE_INCOMPLETE;
    if (cls != CKO_DATA && cls != CKO_CERTIFICATE && !attr_ulong(tmpl, n, CKA_KEY_TYPE, &kt))
        return CKR_TEMPLATE_INCOMPLETE;
    struct tmpl t;
    CK_RV rv = tmpl_copy(&t, tmpl, n);
    if (rv != CKR_OK)
        return rv;
    tmpl_set(&t, CKA_TOKEN, &t.yes, sizeof t.yes);
    enum yh_type type = type_of_template(tmpl, n, cls, kt);
    if (type == YH_WRAP) {
        const CK_ATTRIBUTE *value = find_attr(tmpl, n, CKA_VALUE);
        CK_ULONG want = yubico_wrap_len(kt);
        if (value == NULL || (want != 0 && value->ulValueLen != want))
            return CKR_TEMPLATE_INCONSISTENT;
        make_wrap_key_template(&t, value->ulValueLen);
    }
    unsigned long pages = 0;
    if (type != YH_NONE) {
        const CK_ATTRIBUTE *id = find_attr(tmpl, n, CKA_ID);
        rv = new_object_pages(tmpl, n, cls, kt, &pages);
        if (rv == CKR_OK)
            rv = yh_admit(s, type, id != NULL ? id->pValue : NULL, id != NULL ? id->ulValueLen : 0,
                          pages);
        if (rv != CKR_OK)
            return rv;
    }
    rv = R()->C_CreateObject(s, t.a, t.n, obj);
    if (rv == CKR_OK && type != YH_NONE)
        yh_note_created(pages, false, *obj);
    return rv;
}

/* C_GenerateKey: CKM_GENERIC_SECRET_KEY_GEN with a Yubico wrap key type
 * (how yubihsm_pkcs11 generates wrap keys) or CKM_AES_KEY_GEN. */
CK_RV shim_yh_generate_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl,
                           CK_ULONG n, CK_OBJECT_HANDLE_PTR key)
{
    if (mech == NULL)
        return CKR_ARGUMENTS_BAD;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ULONG value_len = 0;
    bool has_kt = attr_ulong(tmpl, n, CKA_KEY_TYPE, &kt);
    struct tmpl t;
    CK_RV rv = tmpl_copy(&t, tmpl, n);
    if (rv != CKR_OK)
        return rv;
    tmpl_set(&t, CKA_TOKEN, &t.yes, sizeof t.yes);
    CK_MECHANISM real_mech = *mech;
    enum yh_type type = YH_HMAC;
    if (has_kt && yubico_wrap_len(kt) != 0) {
        if (mech->mechanism != CKM_GENERIC_SECRET_KEY_GEN && mech->mechanism != CKM_AES_KEY_GEN)
            return CKR_MECHANISM_INVALID;
        real_mech = (CK_MECHANISM){CKM_AES_KEY_GEN, NULL, 0};
        make_wrap_key_template(&t, yubico_wrap_len(kt));
        tmpl_set(&t, CKA_VALUE_LEN, &t.value_len, sizeof t.value_len);
        type = YH_WRAP;
    } else if (mech->mechanism == CKM_AES_KEY_GEN) {
        type = type_of_template(tmpl, n, CKO_SECRET_KEY, CKK_AES);
        if (type == YH_WRAP && attr_ulong(tmpl, n, CKA_VALUE_LEN, &value_len))
            make_wrap_key_template(&t, value_len);
    }
    if (!attr_ulong(t.a, t.n, CKA_VALUE_LEN, &value_len))
        value_len = 32;
    const CK_ATTRIBUTE *id = find_attr(tmpl, n, CKA_ID);
    rv = yh_admit(s, type, id != NULL ? id->pValue : NULL, id != NULL ? id->ulValueLen : 0,
                  pages_for(value_len));
    if (rv != CKR_OK)
        return rv;
    rv = R()->C_GenerateKey(s, &real_mech, t.a, t.n, key);
    if (rv == CKR_OK)
        yh_note_created(pages_for(value_len), false, *key);
    return rv;
}

CK_RV shim_yh_generate_key_pair(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,
                                CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_n,
                                CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG priv_n,
                                CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
    if (mech == NULL)
        return CKR_ARGUMENTS_BAD;
    struct tmpl pt, kt;
    CK_RV rv = tmpl_copy(&pt, pub_tmpl, pub_n);
    if (rv == CKR_OK)
        rv = tmpl_copy(&kt, priv_tmpl, priv_n);
    if (rv != CKR_OK)
        return rv;
    tmpl_set(&pt, CKA_TOKEN, &pt.yes, sizeof pt.yes);
    tmpl_set(&kt, CKA_TOKEN, &kt.yes, sizeof kt.yes);
    unsigned long pages;
    CK_ULONG bits = 2048;
    if (mech->mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN) {
        (void)attr_ulong(pub_tmpl, pub_n, CKA_MODULUS_BITS, &bits);
        pages = rsa_pages(bits / 8);
    } else {
        const CK_ATTRIBUTE *a = find_attr(pub_tmpl, pub_n, CKA_EC_PARAMS);
        pages = ec_pages(a != NULL ? a->pValue : NULL, a != NULL ? a->ulValueLen : 0);
    }
    const CK_ATTRIBUTE *id = find_attr(priv_tmpl, priv_n, CKA_ID);
    rv = yh_admit(s, YH_ASYMMETRIC, id != NULL ? id->pValue : NULL,
                  id != NULL ? id->ulValueLen : 0, pages);
    if (rv != CKR_OK)
        return rv;
    rv = R()->C_GenerateKeyPair(s, mech, pt.a, pt.n, kt.a, kt.n, pub, priv);
    if (rv == CKR_OK)
        yh_note_created(pages, false, *priv);
    return rv;
}

/* The public half of an asymmetric object goes with its private key. */
static void delete_public_half(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv)
{
    CK_BYTE id[256];
    CK_ULONG id_len = sizeof id;
    if (yh_get_one(s, priv, CKA_ID, id, &id_len) != CKR_OK || id_len == 0)
        return;
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, id, id_len}};
    CK_OBJECT_HANDLE found[8];
    CK_ULONG n = 0;
    if (find_all(s, t, 2, found, 8, &n) != CKR_OK)
        return;
    for (CK_ULONG i = 0; i < n; i++) {
        R()->C_DestroyObject(s, found[i]);
        cache_drop(found[i]);
    }
}

/* yubihsm_pkcs11.c C_DestroyObject: deleting a public key "returns success
 * with noop"; deleting a private key deletes the asymmetric object, public
 * half included. */
CK_RV shim_yh_destroy_object(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj)
{
    struct obj_info info;
    CK_RV rv = yh_describe(s, obj, &info);
    if (rv != CKR_OK)
        return rv;
    if (info.type == YH_NONE)
        return CKR_OK;
    CK_SESSION_HANDLE own;
    bool logged_in;
    rv = yh_own_session(s, &own, &logged_in);
    if (rv != CKR_OK)
        return rv;
    if (!logged_in) {
        R()->C_CloseSession(own);
        return CKR_USER_NOT_LOGGED_IN;
    }
    if (info.cls == CKO_PRIVATE_KEY)
        delete_public_half(own, obj);
    R()->C_CloseSession(own);
    rv = R()->C_DestroyObject(s, obj);
    cache_drop(obj);
    if (rv == CKR_OK)
        note_deleted(info.pages, obj);
    return rv;
}

/* A wrap key reads back with its Yubico key type. */
CK_RV shim_yh_get_attribute_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,
                                  CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
    CK_RV rv = R()->C_GetAttributeValue(s, obj, tmpl, n);
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
        rv != CKR_BUFFER_TOO_SMALL)
        return rv;
    for (CK_ULONG i = 0; i < n; i++) {
        if (tmpl[i].type != CKA_KEY_TYPE || tmpl[i].pValue == NULL ||
            tmpl[i].ulValueLen != sizeof(CK_KEY_TYPE) ||
            *(CK_KEY_TYPE *)tmpl[i].pValue != CKK_AES)
            continue;
        struct obj_info info;
        if (yh_describe(s, obj, &info) == CKR_OK && info.wrap_key)
            *(CK_KEY_TYPE *)tmpl[i].pValue = yubico_wrap_type(info.aes_len);
    }
    return rv;
}

/* A search for a Yubico wrap key type searches SoftHSM's AES keys of that
 * length. */
CK_RV shim_yh_find_objects_init(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
    CK_KEY_TYPE kt;
    if (!attr_ulong(tmpl, n, CKA_KEY_TYPE, &kt) || yubico_wrap_len(kt) == 0)
        return R()->C_FindObjectsInit(s, tmpl, n);
    struct tmpl t;
    CK_RV rv = tmpl_copy(&t, tmpl, n);
    if (rv != CKR_OK)
        return rv;
    t.value_len = yubico_wrap_len(kt);
    tmpl_set(&t, CKA_KEY_TYPE, &t.aes, sizeof t.aes);
    tmpl_set(&t, CKA_VALUE_LEN, &t.value_len, sizeof t.value_len);
    return R()->C_FindObjectsInit(s, t.a, t.n);
}

