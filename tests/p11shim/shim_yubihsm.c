/* HSMSIGN_SHIM_PERSONALITY=yubihsm2: the documented semantics of Yubico's
 * yubihsm_pkcs11 module, reproduced over SoftHSM (README.md lists each
 * behaviour and its source). Every key operation still happens in
 * SoftHSM: signatures, key generation, the AES key wrap that carries the
 * key material and the AES-GCM that seals a wrap blob's metadata. The
 * personality only changes what the application sees: the module's
 * identity, its one wrap mechanism, persistent-only objects, the storage
 * limits, the PIN format and the connector configuration.
 *
 * The personality's own calls into SoftHSM (object enumeration, the
 * cascade delete of a key pair's public half, the AES-GCM seal) are not
 * counted and never faulted: they stand for work inside the device. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11shim.h"

#define CKM_AES_KEY_WRAP_KWP_ 0x210BUL /* PKCS#11 3.0; not in every pkcs11.h */

/* Documented limits: "any YubiHSM 2 device can store up to 256 Objects.
 * Their combined size can not exceed 126 KB" (Concepts/Object.html); the
 * storage is 1024 pages of 126 bytes (yubihsm-shell get storage). */
#define YH_MAX_OBJECTS 256
#define YH_MAX_PAGES 1024
#define YH_PAGE_SIZE 126
/* C_WrapKey with no output buffer answers YH_MSG_BUF_SIZE (yubihsm.h). */
#define YH_MSG_BUF_SIZE 3136
/* yubihsm_pkcs11.c: the password part of the PIN is 8..64 bytes. */
#define YH_MIN_PIN_LEN 8
#define YH_MAX_PIN_LEN 64

/* YubiHSM object types (yubihsm.h yh_object_type). */
enum yh_type { YH_NONE = 0, YH_OPAQUE = 1, YH_ASYMMETRIC = 3, YH_WRAP = 4, YH_HMAC = 5,
               YH_SYMMETRIC = 8 };

#define MAX_UNWRAPPED 1024
#define MAX_TEMPLATE 48

static pthread_mutex_t yh_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_yh_counts yh = {.objects_left = -1, .pages_used = -1};
/* Handles of objects this process unwrapped and has not deleted. */
static CK_OBJECT_HANDLE unwrapped[MAX_UNWRAPPED];
static size_t n_unwrapped;

/* ---- small helpers ------------------------------------------------------ */

static CK_FUNCTION_LIST *R(void)
{
    return shim_real();
}

static void copy_padded(CK_UTF8CHAR *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    memset(dst, ' ', size);
    memcpy(dst, src, n < size ? n : size);
}

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

static bool is_auth_key(unsigned id)
{
    const struct shim_config *c = shim_cfg();
    for (size_t i = 0; i < c->n_yh_auth_keys; i++)
        if (c->yh_auth_keys[i] == id)
            return true;
    return false;
}

/* ---- what a SoftHSM object is on the device ------------------------------ */

struct obj_info {
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE kt;
    enum yh_type type;   /* YH_NONE: no device object of its own (public keys) */
    unsigned long pages;
    bool wrap_key;
    CK_ULONG aes_len;
};

static CK_RV get_one(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, void *value,
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
    if (get_one(s, o, type, NULL, &len) != CKR_OK || len == CK_UNAVAILABLE_INFORMATION)
        return 0;
    return len;
}

static bool get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = CK_FALSE;
    CK_ULONG len = sizeof v;
    return get_one(s, o, type, &v, &len) == CKR_OK && v == CK_TRUE;
}

static CK_RV describe(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, struct obj_info *out)
{
    memset(out, 0, sizeof *out);
    CK_ULONG len = sizeof out->cls;
    CK_RV rv = get_one(s, o, CKA_CLASS, &out->cls, &len);
    if (rv != CKR_OK)
        return rv;
    if (out->cls == CKO_PRIVATE_KEY || out->cls == CKO_PUBLIC_KEY ||
        out->cls == CKO_SECRET_KEY) {
        len = sizeof out->kt;
        rv = get_one(s, o, CKA_KEY_TYPE, &out->kt, &len);
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
            bool ok = get_one(s, o, CKA_EC_PARAMS, params, &plen) == CKR_OK;
            out->pages = ec_pages(ok ? params : NULL, ok ? plen : 0);
        }
        break;
    case CKO_SECRET_KEY: {
        CK_ULONG vlen = 0;
        len = sizeof vlen;
        if (get_one(s, o, CKA_VALUE_LEN, &vlen, &len) != CKR_OK)
            vlen = 32;
        out->pages = pages_for(vlen);
        out->aes_len = vlen;
        out->wrap_key = out->kt == CKK_AES &&
                        (get_bool(s, o, CKA_WRAP) || get_bool(s, o, CKA_UNWRAP));
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
static CK_RV own_session(CK_SESSION_HANDLE app, CK_SESSION_HANDLE *own, bool *logged_in)
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

struct storage {
    unsigned long objects, pages;
};

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

static void cache_clear(void)
{
    pthread_mutex_lock(&yh_lock);
    n_cache = 0;
    pthread_mutex_unlock(&yh_lock);
}

/* What the device holds: every object it would store, plus one page and
 * one object per authentication key. */
static CK_RV measure(CK_SESSION_HANDLE own, struct storage *st)
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
            if (describe(own, all[i], &info) != CKR_OK)
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

static void note_storage(const struct storage *st)
{
    pthread_mutex_lock(&yh_lock);
    yh.objects_left = (long)st->objects;
    yh.pages_used = (long)st->pages;
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
            *taken = describe(own, found[i], &info) == CKR_OK && info.type == type;
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
    CK_RV rv = measure(own, &st);
    if (rv != CKR_OK)
        return rv;
    note_storage(&st);
    if (st.objects + 1 <= YH_MAX_OBJECTS && st.pages + pages <= YH_MAX_PAGES)
        return CKR_OK;
    pthread_mutex_lock(&yh_lock);
    yh.storage_refused++;
    pthread_mutex_unlock(&yh_lock);
    return CKR_DEVICE_MEMORY;
}

static CK_RV admit(CK_SESSION_HANDLE app, enum yh_type type, const void *id, CK_ULONG id_len,
                   unsigned long pages)
{
    CK_SESSION_HANDLE own;
    bool logged_in;
    CK_RV rv = own_session(app, &own, &logged_in);
    if (rv != CKR_OK)
        return rv;
    rv = logged_in ? admit_on(own, type, id, id_len, pages) : CKR_USER_NOT_LOGGED_IN;
    R()->C_CloseSession(own);
    return rv;
}

static void note_created(unsigned long pages, bool was_unwrapped, CK_OBJECT_HANDLE handle)
{
    pthread_mutex_lock(&yh_lock);
    yh.objects_created++;
    if (yh.objects_left >= 0) {
        yh.objects_left++;
        yh.pages_used += (long)pages;
    }
    if (was_unwrapped) {
        yh.objects_unwrapped++;
        if (n_unwrapped < MAX_UNWRAPPED)
            unwrapped[n_unwrapped++] = handle;
        yh.unwrapped_left = n_unwrapped;
    }
    pthread_mutex_unlock(&yh_lock);
}

static void note_deleted(unsigned long pages, CK_OBJECT_HANDLE handle)
{
    pthread_mutex_lock(&yh_lock);
    yh.objects_deleted++;
    if (yh.objects_left > 0) {
        yh.objects_left--;
        yh.pages_used -= (long)pages;
    }
    for (size_t i = 0; i < n_unwrapped; i++) {
        if (unwrapped[i] == handle) {
            unwrapped[i] = unwrapped[--n_unwrapped];
            break;
        }
    }
    yh.unwrapped_left = n_unwrapped;
    pthread_mutex_unlock(&yh_lock);
}

/* ---- C_Initialize: the connector configuration ---------------------------- */

/* yubihsm_pkcs11 reads options from pReserved ("connector=URL debug ...",
 * each word becomes --word) and from the file named by YUBIHSM_PKCS11_CONF
 * ("connector = URL" lines); without a connector C_Initialize fails with
 * CKR_ARGUMENTS_BAD (yubihsm_pkcs11.c C_Initialize). */
static bool connector_in_words(const char *text, char *out, size_t size)
{
    const char *p = text;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        size_t len = strcspn(p, " \t\r\n");
        if (len > 10 && strncmp(p, "connector=", 10) == 0 && len - 10 < size) {
            memcpy(out, p + 10, len - 10);
            out[len - 10] = '\0';
            return true;
        }
        p += len;
    }
    return false;
}

static CK_RV connector_in_file(const char *path, char *out, size_t size, bool *found)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "hsmsign-p11shim: yubihsm2: YUBIHSM_PKCS11_CONF=%s: %s\n", path,
                strerror(errno));
        return CKR_GENERAL_ERROR; /* the module's "Unable to parse configuration file" */
    }
    char line[512];
    *found = false;
    while (!*found && fgets(line, sizeof line, f) != NULL) {
        char *p = line + strspn(line, " \t");
        if (strncmp(p, "connector", 9) != 0)
            continue;
        p += 9;
        p += strspn(p, " \t=");
        p[strcspn(p, " \t\r\n\"")] = '\0';
        if (*p == '\0' || strlen(p) >= size)
            continue;
        strcpy(out, p);
        *found = true;
    }
    fclose(f);
    return CKR_OK;
}

CK_RV shim_yh_initialize(CK_VOID_PTR init_args)
{
    const CK_C_INITIALIZE_ARGS *args = init_args;
    char connector[256] = "";
    const char *source = NULL;
    if (args != NULL && args->pReserved != NULL &&
        connector_in_words(args->pReserved, connector, sizeof connector))
        source = "pReserved";
    const char *conf = getenv("YUBIHSM_PKCS11_CONF");
    if (source == NULL && conf != NULL && conf[0] != '\0') {
        bool found = false;
        CK_RV rv = connector_in_file(conf, connector, sizeof connector, &found);
        if (rv != CKR_OK)
            return rv;
        if (found)
            source = "YUBIHSM_PKCS11_CONF";
    }
    if (source == NULL) {
        fputs("hsmsign-p11shim: yubihsm2: no connector: set connector=URL in pReserved or in "
              "the file named by YUBIHSM_PKCS11_CONF\n",
              stderr);
        return CKR_ARGUMENTS_BAD;
    }
    /* SoftHSM refuses a non-NULL pReserved: it is the personality's. */
    CK_C_INITIALIZE_ARGS forwarded = {0};
    if (args != NULL) {
        forwarded = *args;
        forwarded.pReserved = NULL;
    }
    cache_clear();
    CK_RV rv = R()->C_Initialize(args != NULL ? &forwarded : NULL);
    if (rv == CKR_OK) {
        pthread_mutex_lock(&yh_lock);
        strcpy(yh.connector, connector);
        strcpy(yh.config_source, source);
        snprintf(yh.firmware, sizeof yh.firmware, "%s", shim_cfg()->yh_firmware);
        pthread_mutex_unlock(&yh_lock);
    }
    return rv;
}

/* Objects left on the device, measured once more while the application
 * is still logged in (a logged-out session cannot see private keys, so
 * then the running count stands). */
void shim_yh_before_finalize(void)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    if (R()->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_SESSION_HANDLE own;
        if (R()->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &own) != CKR_OK)
            continue;
        CK_SESSION_INFO si;
        struct storage st;
        if (R()->C_GetSessionInfo(own, &si) == CKR_OK && si.state == CKS_RO_USER_FUNCTIONS &&
            measure(own, &st) == CKR_OK)
            note_storage(&st);
        R()->C_CloseSession(own);
    }
    cache_clear(); /* handles mean nothing after C_Finalize */
}

void shim_yh_counts(struct shim_yh_counts *out)
{
    pthread_mutex_lock(&yh_lock);
    *out = yh;
    pthread_mutex_unlock(&yh_lock);
}

/* ---- identity ------------------------------------------------------------ */

CK_RV shim_yh_get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    CK_RV rv = R()->C_GetSlotInfo(slot, info);
    if (rv != CKR_OK)
        return rv;
    /* slotDescription is 64 characters: a long URL is cut, as by the module */
    char desc[sizeof yh.connector + 32];
    pthread_mutex_lock(&yh_lock);
    snprintf(desc, sizeof desc, "YubiHSM Connector %s", yh.connector);
    pthread_mutex_unlock(&yh_lock);
    copy_padded(info->slotDescription, sizeof info->slotDescription, desc);
    copy_padded(info->manufacturerID, sizeof info->manufacturerID, "Yubico");
    info->flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | (info->flags & CKF_TOKEN_PRESENT);
    info->hardwareVersion = shim_cfg()->yh_version;
    info->firmwareVersion = shim_cfg()->yh_version;
    return CKR_OK;
}

/* yubihsm_pkcs11.c C_GetTokenInfo: label and model "YubiHSM", manufacturer
 * "Yubico (www.yubico.com)", version {major, minor * 10 + patch}. The
 * serial number stays SoftHSM's, so two emulated devices differ. */
CK_RV shim_yh_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    CK_RV rv = R()->C_GetTokenInfo(slot, info);
    if (rv != CKR_OK || (info->flags & CKF_TOKEN_INITIALIZED) == 0)
        return rv; /* SoftHSM's spare empty slot stays what it is */
    copy_padded(info->label, sizeof info->label, "YubiHSM");
    copy_padded(info->manufacturerID, sizeof info->manufacturerID, "Yubico (www.yubico.com)");
    copy_padded(info->model, sizeof info->model, "YubiHSM");
    info->flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED;
    info->ulMinPinLen = YH_MIN_PIN_LEN;
    info->ulMaxPinLen = YH_MAX_PIN_LEN;
    info->hardwareVersion = shim_cfg()->yh_version;
    info->firmwareVersion = shim_cfg()->yh_version;
    return CKR_OK;
}

/* ---- mechanisms ----------------------------------------------------------- */

static bool hidden_mechanism(CK_MECHANISM_TYPE m)
{
    return m == CKM_AES_KEY_WRAP || m == CKM_AES_KEY_WRAP_PAD || m == CKM_AES_KEY_WRAP_KWP_;
}

/* SoftHSM's list without its AES key wrap mechanisms, plus the Yubico
 * CCM wrap: the one mechanism that wraps objects. */
CK_RV shim_yh_get_mechanism_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
    if (count == NULL)
        return CKR_ARGUMENTS_BAD;
    CK_ULONG n = 0;
    CK_RV rv = R()->C_GetMechanismList(slot, NULL, &n);
    if (rv != CKR_OK)
        return rv;
    CK_MECHANISM_TYPE *all = calloc(n + 1, sizeof *all);
    if (all == NULL)
        return CKR_HOST_MEMORY;
    rv = R()->C_GetMechanismList(slot, all, &n);
    CK_ULONG kept = 0;
    for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++)
        if (!hidden_mechanism(all[i]))
            all[kept++] = all[i];
    all[kept++] = CKM_YUBICO_AES_CCM_WRAP;
    if (rv == CKR_OK && list != NULL) {
        if (*count < kept)
            rv = CKR_BUFFER_TOO_SMALL;
        else
            memcpy(list, all, kept * sizeof *all);
    }
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL)
        *count = kept;
    free(all);
    return rv;
}

/* util_pkcs11.c get_mechanism_info: CKM_YUBICO_AES_CCM_WRAP is
 * HW | WRAP | UNWRAP | ENCRYPT | DECRYPT, 128 to 256 bits. No other
 * mechanism offers wrapping. */
CK_RV shim_yh_get_mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
                                 CK_MECHANISM_INFO_PTR info)
{
    if (info == NULL)
        return CKR_ARGUMENTS_BAD;
    if (hidden_mechanism(type))
        return CKR_MECHANISM_INVALID;
    if (type == CKM_YUBICO_AES_CCM_WRAP) {
        CK_SLOT_INFO si;
        CK_RV rv = R()->C_GetSlotInfo(slot, &si);
        if (rv != CKR_OK)
            return rv;
        info->ulMinKeySize = 128;
        info->ulMaxKeySize = 256;
        info->flags = CKF_HW | CKF_WRAP | CKF_UNWRAP | CKF_ENCRYPT | CKF_DECRYPT;
        return CKR_OK;
    }
    CK_RV rv = R()->C_GetMechanismInfo(slot, type, info);
    if (rv == CKR_OK)
        info->flags &= ~(CKF_WRAP | CKF_UNWRAP);
    return rv;
}

/* ---- login: "<4 hex digits of the auth key ID><password>" ------------------ */

/* yubihsm_pkcs11.c C_Login/C_LoginUser, in its order: only CKU_USER; the
 * password (after the 4-character ID) is 8..64 bytes, else
 * CKR_ARGUMENTS_BAD; an ID that is not hex is CKR_PIN_INCORRECT, and so
 * is an ID with no authentication key (the device refuses the session).
 * The password is then SoftHSM's user PIN. The '@' (asymmetric) and '#'
 * (YubiKey) forms are not emulated and refused as an incorrect PIN. */
CK_RV shim_yh_login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    if (pin == NULL)
        return CKR_ARGUMENTS_BAD;
    if (user != CKU_USER)
        return CKR_USER_TYPE_INVALID;
    CK_ULONG id_len = len < 4 ? len : 4;
    CK_ULONG pw_len = len - id_len;
    if (pw_len < YH_MIN_PIN_LEN || pw_len > YH_MAX_PIN_LEN)
        return CKR_ARGUMENTS_BAD;
    if (pin[0] == '@' || pin[0] == '#')
        return CKR_PIN_INCORRECT;
    unsigned id = 0;
    for (CK_ULONG i = 0; i < 4; i++) {
        CK_UTF8CHAR c = pin[i];
        unsigned digit = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                         : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                         : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                                : 16u;
        if (digit == 16u)
            return CKR_PIN_INCORRECT;
        id = id * 16 + digit;
    }
    if (!is_auth_key(id))
        return CKR_PIN_INCORRECT;
    CK_RV rv = R()->C_Login(s, CKU_USER, pin + 4, pw_len);
    if (rv == CKR_OK) { /* measure the device now, while private objects are visible */
        CK_SESSION_HANDLE own;
        bool logged_in;
        struct storage st;
        if (own_session(s, &own, &logged_in) == CKR_OK) {
            if (measure(own, &st) == CKR_OK)
                note_storage(&st);
            R()->C_CloseSession(own);
        }
    }
    return rv;
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
            rv = admit(s, type, id != NULL ? id->pValue : NULL, id != NULL ? id->ulValueLen : 0,
                       pages);
        if (rv != CKR_OK)
            return rv;
    }
    rv = R()->C_CreateObject(s, t.a, t.n, obj);
    if (rv == CKR_OK && type != YH_NONE)
        note_created(pages, false, *obj);
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
    rv = admit(s, type, id != NULL ? id->pValue : NULL, id != NULL ? id->ulValueLen : 0,
               pages_for(value_len));
    if (rv != CKR_OK)
        return rv;
    rv = R()->C_GenerateKey(s, &real_mech, t.a, t.n, key);
    if (rv == CKR_OK)
        note_created(pages_for(value_len), false, *key);
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
    rv = admit(s, YH_ASYMMETRIC, id != NULL ? id->pValue : NULL, id != NULL ? id->ulValueLen : 0,
               pages);
    if (rv != CKR_OK)
        return rv;
    rv = R()->C_GenerateKeyPair(s, mech, pt.a, pt.n, kt.a, kt.n, pub, priv);
    if (rv == CKR_OK)
        note_created(pages, false, *priv);
    return rv;
}

/* The public half of an asymmetric object goes with its private key. */
static void delete_public_half(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv)
{
    CK_BYTE id[256];
    CK_ULONG id_len = sizeof id;
    if (get_one(s, priv, CKA_ID, id, &id_len) != CKR_OK || id_len == 0)
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
    CK_RV rv = describe(s, obj, &info);
    if (rv != CKR_OK)
        return rv;
    if (info.type == YH_NONE)
        return CKR_OK;
    CK_SESSION_HANDLE own;
    bool logged_in;
    rv = own_session(s, &own, &logged_in);
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
        if (describe(s, obj, &info) == CKR_OK && info.wrap_key)
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
        if (get_one(s, key, meta_bytes[i], value, &len) != CKR_OK)
            len = 0;
        put_attr(m, meta_bytes[i], value, len);
    }
    for (size_t i = 0; i < sizeof meta_bools / sizeof meta_bools[0]; i++) {
        CK_BBOOL v = CK_FALSE;
        CK_ULONG len = sizeof v;
        if (get_one(s, key, meta_bools[i], &v, &len) != CKR_OK || len != 1)
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
    CK_RV rv = describe(s, key, &info);
    if (rv != CKR_OK)
        return CKR_KEY_HANDLE_INVALID;
    if (wrapped == NULL) {
        *wrapped_len = YH_MSG_BUF_SIZE;
        return CKR_OK;
    }
    rv = check_mechanism(mech);
    if (rv != CKR_OK)
        return rv;
    if (describe(s, wrapping_key, &wk) != CKR_OK)
        return CKR_WRAPPING_KEY_HANDLE_INVALID;
    if (!wk.wrap_key || !get_bool(s, wrapping_key, CKA_WRAP))
        return CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
    if (!get_bool(s, key, CKA_EXTRACTABLE))
        return CKR_KEY_UNEXTRACTABLE;
    if (info.type != YH_ASYMMETRIC && info.type != YH_SYMMETRIC && info.type != YH_HMAC &&
        info.type != YH_WRAP)
        return CKR_KEY_NOT_WRAPPABLE; /* opaque objects: not emulated */

    CK_SESSION_HANDLE own;
    bool logged_in;
    rv = own_session(s, &own, &logged_in);
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
    if (describe(s, unwrapping_key, &wk) != CKR_OK)
        return CKR_UNWRAPPING_KEY_HANDLE_INVALID;
    if (!wk.wrap_key || !get_bool(s, unwrapping_key, CKA_UNWRAP))
        return CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;

    CK_SESSION_HANDLE own;
    bool logged_in;
    rv = own_session(s, &own, &logged_in);
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
        rv = admit(s, r.type, r.id, r.id_len, r.pages);
    if (rv != CKR_OK)
        return rv;
    CK_MECHANISM m = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    rv = R()->C_UnwrapKey(s, &m, unwrapping_key, (CK_BYTE *)kwp, kwp_len, r.a, r.n, key);
    if (rv == CKR_OK)
        note_created(r.pages, true, *key);
    return rv;
}
