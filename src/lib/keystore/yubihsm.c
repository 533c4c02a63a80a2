#include "keystore/yubihsm.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "p11/objects.h"
#include "p11/token_lock.h"
#include "util/flock.h"

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

/* ---- holds --------------------------------------------------------------- */

void hs_yh_hold_release(hs_yh_hold *h)
{
    if (h->fd >= 0)
        close(h->fd); /* drops the flock */
    *h = HS_YH_HOLD_NONE;
}

/* Takes the hold of id: waiting up to the token lock's timeout, or not at
 * all (*got false when another process has it). */
static hs_result hold_take(hs_p11 *p, uint16_t id, bool wait, hs_yh_hold *h, bool *got,
                           hs_error *e)
{
    *got = false;
    char path[sizeof p->token_lock_path + 64];
    int n = snprintf(path, sizeof path, "%s.yh-%s-%04x", p->token_lock_path, p->serial, id);
    if (n < 0 || (size_t)n >= sizeof path || p->token_lock_path[0] == '\0')
        return hs_fail(e, HS_E_INTERNAL, "no lock file for object 0x%04x", id);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return hs_fail(e, HS_E_IO, "cannot open lock file %s: %s", path, strerror(errno));
    int err = wait ? hs_flock_wait(fd, hs_env_timeout_ms("HSMSIGN_TOKEN_LOCK_TIMEOUT",
                                                         HS_P11_TOKEN_LOCK_TIMEOUT_MS))
                   : (flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno);
    if (err == EWOULDBLOCK && !wait) {
        close(fd);
        return HS_OK;
    }
    if (err != 0) {
        close(fd);
        return hs_fail(e, HS_E_P11,
                       "token '%s': object 0x%04x is in use by another hsmsign process (%s "
                       "held for the whole timeout); sign through one agent (hsmsign agent) to "
                       "share keys between processes", p->label, id, path);
    }
    *h = (hs_yh_hold){fd, id};
    *got = true;
    return HS_OK;
}

/* ---- objects -------------------------------------------------------------- */

static void id_bytes(uint16_t id, uint8_t out[2])
{
    out[0] = (uint8_t)(id >> 8);
    out[1] = (uint8_t)id;
}

static bool is_ours(const char *label, size_t len)
{
    size_t k = sizeof HS_YH_LABEL_PREFIX - 1;
    return len >= k && memcmp(label, HS_YH_LABEL_PREFIX, k) == 0;
}

/* The device's label of an hsmsign key: prefix + name, cut to 40 bytes. */
static void make_label(const char *name, char out[HS_YH_LABEL_MAX + 1])
{
    snprintf(out, HS_YH_LABEL_MAX + 1, "%s%s", HS_YH_LABEL_PREFIX, name);
}

static hs_result read_label(hs_p11 *p, CK_OBJECT_HANDLE h, char out[HS_YH_LABEL_MAX + 1],
                            hs_error *e)
{
    uint8_t *v = NULL;
    size_t len = 0;
    hs_result r = hs_p11_get_attr(p, hs_p11_key_session(p), h, CKA_LABEL, &v, &len, e);
    if (r != HS_OK)
        return r;
    snprintf(out, HS_YH_LABEL_MAX + 1, "%.*s", (int)(len > HS_YH_LABEL_MAX ? HS_YH_LABEL_MAX : len),
             v != NULL ? (const char *)v : "");
    free(v);
    return HS_OK;
}

/* Private keys with object ID id (at most max handles). */
static hs_result find_by_id(hs_p11 *p, uint16_t id, CK_OBJECT_HANDLE *h, size_t max, size_t *n,
                            hs_error *e)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    uint8_t idb[2];
    id_bytes(id, idb);
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, idb, sizeof idb}};
    return hs_p11_find(p, hs_p11_key_session(p), t, 2, h, max, n, e);
}

hs_result hs_yh_delete(hs_p11 *p, uint16_t id, const char *name, hs_error *e)
{
    CK_OBJECT_HANDLE h[4];
    size_t n = 0;
    hs_result r = find_by_id(p, id, h, 4, &n, e);
    for (size_t i = 0; r == HS_OK && i < n && i < 4; i++) {
        char label[HS_YH_LABEL_MAX + 1];
        r = read_label(p, h[i], label, e);
        if (r == HS_OK && !is_ours(label, strlen(label)))
            r = hs_fail(e, HS_E_P11,
                        "token '%s': object 0x%04x is labelled '%s', not by hsmsign; refusing "
                        "to delete it (key '%s' needs that ID: the device was changed by hand)",
                        p->label, id, label, name);
        if (r != HS_OK)
            break;
        CK_RV rv = p->fn->C_DestroyObject(hs_p11_key_session(p), h[i]);
        if (rv != CKR_OK)
            r = hs_p11_fail(p, e, rv, "C_DestroyObject",
                            "deleting unwrapped key '%s' (object 0x%04x) from the YubiHSM; it "
                            "stays there until the next hsmsign run deletes it",
                            name, id);
    }
    if (r != HS_OK && n == 0)
        return hs_error_prefix(e, "looking for unwrapped key '%s' (object 0x%04x) to delete it; "
                                  "if it is there, it stays there until the next hsmsign run "
                                  "deletes it: ", name, id);
    return r;
}

/* ---- storage ---------------------------------------------------------------- */

unsigned long hs_yh_pages_of(hs_keyalg alg)
{
    if (!hs_keyalg_is_rsa(alg))
        return 1;
    /* 3.5 modulus lengths in 126-byte pages: the rule that gives the
     * documented capacity (127 RSA-2048, 93 RSA-3072, 68 RSA-4096). */
    unsigned long bytes = hs_keyalg_bits(alg) / 8 * 7 / 2;
    return (bytes + 125) / 126;
}

static unsigned long pages_of_bytes(size_t len)
{
    return len == 0 ? 1 : (len + 125) / 126;
}

/* The pages object h takes; 0 for a public key (part of its asymmetric
 * object). */
static hs_result object_pages(hs_p11 *p, CK_OBJECT_HANDLE h, unsigned long *pages, hs_error *e)
{
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_KEY_TYPE kt = CKK_EC;
    CK_ATTRIBUTE a[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt}};
    CK_RV rv = p->fn->C_GetAttributeValue(s, h, a, 2);
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID)
        return hs_p11_fail(p, e, rv, "C_GetAttributeValue", "measuring the YubiHSM's storage");
    *pages = 0;
    if (cls == CKO_PUBLIC_KEY)
        return HS_OK;
    if (cls == CKO_PRIVATE_KEY && kt != CKK_RSA) {
        *pages = 1;
        return HS_OK;
    }
    CK_ATTRIBUTE len = {cls == CKO_PRIVATE_KEY ? CKA_MODULUS : CKA_VALUE, NULL, 0};
    rv = p->fn->C_GetAttributeValue(s, h, &len, 1);
    size_t n = rv == CKR_OK && len.ulValueLen != CK_UNAVAILABLE_INFORMATION ? len.ulValueLen : 32;
    *pages = cls == CKO_PRIVATE_KEY ? pages_of_bytes(n * 7 / 2) : pages_of_bytes(n);
    return HS_OK;
}

static hs_result measure(hs_p11 *p, unsigned long *free_obj, unsigned long *free_pages,
                         hs_error *e)
{
    enum { MAX_SCAN = 1024 };
    CK_OBJECT_HANDLE *all = calloc(MAX_SCAN, sizeof *all);
    if (all == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    size_t n = 0;
    /* The authentication key hsmsign logged in with is an object too, and
     * PKCS#11 does not list it. */
    unsigned long objects = 1, pages = 1;
    hs_result r = hs_p11_find(p, hs_p11_key_session(p), NULL, 0, all, MAX_SCAN, &n, e);
    for (size_t i = 0; r == HS_OK && i < n && i < MAX_SCAN; i++) {
        unsigned long pg = 0;
        r = object_pages(p, all[i], &pg, e);
        if (r == HS_OK && pg > 0) {
            objects++;
            pages += pg;
        }
    }
    free(all);
    *free_obj = objects < HS_YH_MAX_OBJECTS ? HS_YH_MAX_OBJECTS - objects : 0;
    *free_pages = pages < HS_YH_MAX_PAGES ? HS_YH_MAX_PAGES - pages : 0;
    return r;
}

hs_result hs_yh_free_storage(hs_p11 *p, unsigned long *objects, unsigned long *pages, hs_error *e)
{
    return measure(p, objects, pages, e);
}

hs_result hs_yh_check_room(hs_p11 *p, hs_keyalg alg, const char *name, hs_error *e)
{
    unsigned long free_obj = 0, free_pages = 0;
    hs_result r = measure(p, &free_obj, &free_pages, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "checking room for key '%s': ", name);
    unsigned long need = hs_yh_pages_of(alg);
    if (free_obj >= 1 && free_pages >= need)
        return HS_OK;
    return hs_fail(e, HS_E_P11,
                   "YubiHSM '%s' (serial %s) is full: key '%s' (%s) needs 1 object and %lu "
                   "pages, and %lu of %lu objects and %lu of %lu pages are free; delete objects "
                   "it no longer needs (yubihsm-shell), or sign with fewer keys resident "
                   "(hsmsign agent --resident-keys)",
                   p->label, p->serial, name, hs_keyalg_name(alg), need, free_obj,
                   HS_YH_MAX_OBJECTS, free_pages, HS_YH_MAX_PAGES);
}

/* ---- wrap key ------------------------------------------------------------------ */

/* The wrap keys labelled *label (the default label when NULL, which
 * *label then names for the caller's messages). */
static hs_result find_wrapkeys(hs_p11 *p, const char **label, CK_OBJECT_HANDLE *h, size_t *n,
                               hs_error *e)
{
    if (*label == NULL)
        *label = HS_WRAPKEY_DEFAULT_LABEL;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_LABEL, (void *)*label, strlen(*label)}};
    *h = CK_INVALID_HANDLE;
    *n = 0;
    return hs_p11_find(p, hs_p11_key_session(p), t, 2, h, 1, n, e);
}

hs_result hs_yh_wrapkey_make(hs_p11 *p, const char *label, const uint8_t *key, hs_wrapkey *out,
                             hs_error *e)
{
    CK_OBJECT_HANDLE h;
    size_t n;
    hs_result r = find_wrapkeys(p, &label, &h, &n, e);
    if (r != HS_OK)
        return r;
    if (n > 0)
        return hs_fail(e, HS_E_EXISTS,
                       "YubiHSM '%s' already has a wrap key labelled '%s'; refusing to make "
                       "another (key files made under the existing one would become unusable)",
                       p->label, label);
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = HS_CKK_YUBICO_AES256_CCM_WRAP;
    CK_ULONG value_len = 32;
    uint8_t id[2];
    id_bytes(HS_YH_WRAPKEY_ID, id);
    /* Wrap and unwrap only: no export of itself (CKA_EXTRACTABLE false). */
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_TOKEN, (void *)&yes, sizeof yes},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, id, sizeof id},
        {CKA_WRAP, (void *)&yes, sizeof yes},
        {CKA_UNWRAP, (void *)&yes, sizeof yes},
        {CKA_EXTRACTABLE, (void *)&no, sizeof no},
        {key != NULL ? CKA_VALUE : CKA_VALUE_LEN, key != NULL ? (void *)key : &value_len,
         key != NULL ? 32 : sizeof value_len},
    };
    CK_ULONG count = sizeof t / sizeof t[0];
    CK_MECHANISM m = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    CK_RV rv = key != NULL ? p->fn->C_CreateObject(s, t, count, &h)
                           : p->fn->C_GenerateKey(s, &m, t, count, &h);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, key != NULL ? "C_CreateObject" : "C_GenerateKey",
                           "%s YubiHSM wrap key '%s' (CKK_YUBICO_AES256_CCM_WRAP)",
                           key != NULL ? "importing" : "generating", label);
    return hs_wrapkey_describe(p, s, h, label, HS_CKM_YUBICO_AES_CCM_WRAP, out, e);
}

hs_result hs_yh_wrapkey_find(hs_p11 *p, const char *label, hs_wrapkey *out, hs_error *e)
{
    CK_OBJECT_HANDLE h;
    size_t n;
    hs_result r = find_wrapkeys(p, &label, &h, &n, e);
    if (r != HS_OK)
        return r;
    if (n == 0)
        return hs_fail(e, HS_E_NOTFOUND,
                       "YubiHSM '%s' has no wrap key labelled '%s' (create one with `hsmsign "
                       "wrapkey create`, or restore it with `hsmsign ceremony restore`)",
                       p->label, label);
    if (n > 1)
        return hs_fail(e, HS_E_P11, "YubiHSM '%s' has %zu wrap keys labelled '%s'; expected one",
                       p->label, n, label);
    uint8_t *v = NULL;
    size_t len = 0;
    r = hs_p11_get_attr(p, hs_p11_key_session(p), h, CKA_KEY_TYPE, &v, &len, e);
    CK_KEY_TYPE kt = 0;
    if (r == HS_OK && len == sizeof kt)
        memcpy(&kt, v, sizeof kt);
    free(v);
    if (r == HS_OK && kt != HS_CKK_YUBICO_AES256_CCM_WRAP)
        r = hs_fail(e, HS_E_P11, "YubiHSM '%s': key '%s' is not a CKK_YUBICO_AES256_CCM_WRAP wrap "
                                 "key (key type 0x%lx)", p->label, label, (unsigned long)kt);
    if (r == HS_OK)
        r = hs_wrapkey_describe(p, hs_p11_key_session(p), h, label, HS_CKM_YUBICO_AES_CCM_WRAP,
                                out, e);
    return r;
}

/* ---- generation ----------------------------------------------------------------- */

/* Any object at all with this ID (a wrap key, a key someone else made). */
static hs_result id_used(hs_p11 *p, uint16_t id, bool *used, hs_error *e)
{
    uint8_t idb[2];
    id_bytes(id, idb);
    CK_ATTRIBUTE t[] = {{CKA_ID, idb, sizeof idb}};
    CK_OBJECT_HANDLE h;
    size_t n = 0;
    hs_result r = hs_p11_find(p, hs_p11_key_session(p), t, 1, &h, 1, &n, e);
    *used = n > 0;
    return r;
}

/* A free ID in hsmsign's range, its hold taken: random first tries, so two
 * processes rarely race for one ID; the hold settles it when they do. */
static bool id_taken(uint16_t id, const uint16_t *taken, size_t n_taken)
{
    for (size_t i = 0; i < n_taken; i++)
        if (taken[i] == id)
            return true;
    return false;
}

/* The IDs tried: the whole range, or (test builds only, -Dtests=true)
 * the first HSMSIGN_TEST_YH_ID_SPAN of it, so a test can make a collision
 * with a key file's ID certain. */
static unsigned id_span(void)
{
    unsigned span = HS_YH_ID_LAST - HS_YH_ID_FIRST + 1;
#ifdef HSMSIGN_TEST_HOOKS
    const char *v = getenv("HSMSIGN_TEST_YH_ID_SPAN");
    if (v != NULL && atoi(v) > 0 && (unsigned)atoi(v) < span)
        span = (unsigned)atoi(v);
#endif
    return span;
}

static hs_result allocate_id(hs_p11 *p, const char *name, const uint16_t *taken, size_t n_taken,
                             hs_yh_hold *hold, hs_error *e)
{
    const unsigned span = id_span();
    for (unsigned attempt = 0; attempt < 64; attempt++) {
        uint16_t r16;
        if (RAND_bytes((unsigned char *)&r16, sizeof r16) != 1)
            return hs_fail(e, HS_E_CRYPTO, "no randomness for an object ID");
        uint16_t id = (uint16_t)(HS_YH_ID_FIRST + r16 % span);
        if (id_taken(id, taken, n_taken))
            continue;
        bool got = false, used = false;
        hs_result r = hold_take(p, id, false, hold, &got, e);
        if (r == HS_OK && got)
            r = id_used(p, id, &used, e);
        if (r != HS_OK) {
            hs_yh_hold_release(hold);
            return r;
        }
        if (got && !used)
            return HS_OK;
        hs_yh_hold_release(hold);
    }
    return hs_fail(e, HS_E_P11, "YubiHSM '%s': no free object ID for key '%s' in 0x%04x..0x%04x "
                                "after 64 tries", p->label, name, HS_YH_ID_FIRST, HS_YH_ID_LAST);
}

hs_result hs_yh_generate(hs_p11 *p, hs_keyalg alg, const char *name, const uint16_t *taken,
                         size_t n_taken, hs_yh_hold *hold, CK_OBJECT_HANDLE *pub,
                         CK_OBJECT_HANDLE *priv, hs_error *e)
{
    *hold = HS_YH_HOLD_NONE;
    hs_result r = hs_yh_check_room(p, alg, name, e);
    if (r == HS_OK)
        r = allocate_id(p, name, taken, n_taken, hold, e);
    if (r != HS_OK)
        return r;
    bool rsa = hs_keyalg_is_rsa(alg);
    char label[HS_YH_LABEL_MAX + 1];
    make_label(name, label);
    uint8_t id[2];
    id_bytes(hold->id, id);
    CK_ULONG bits = hs_keyalg_bits(alg);
    CK_BYTE f4[] = {0x01, 0x00, 0x01};
    CK_ATTRIBUTE pub_t[] = {
        {CKA_TOKEN, (void *)&yes, sizeof yes},
        {CKA_VERIFY, (void *)&yes, sizeof yes},
        {CKA_LABEL, label, strlen(label)},
        {CKA_ID, id, sizeof id},
        {rsa ? CKA_MODULUS_BITS : CKA_EC_PARAMS, rsa ? (void *)&bits : (void *)hs_p256_oid_der,
         rsa ? sizeof bits : sizeof hs_p256_oid_der},
        {CKA_PUBLIC_EXPONENT, f4, sizeof f4},
    };
    /* Sign-only, exportable under wrap (CKA_EXTRACTABLE: that is how the
     * module spells the capability), never in the clear. */
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, (void *)&yes, sizeof yes},       {CKA_PRIVATE, (void *)&yes, sizeof yes},
        {CKA_SENSITIVE, (void *)&yes, sizeof yes},   {CKA_EXTRACTABLE, (void *)&yes, sizeof yes},
        {CKA_SIGN, (void *)&yes, sizeof yes},        {CKA_DECRYPT, (void *)&no, sizeof no},
        {CKA_UNWRAP, (void *)&no, sizeof no},        {CKA_DERIVE, (void *)&no, sizeof no},
        {CKA_LABEL, label, strlen(label)},           {CKA_ID, id, sizeof id},
    };
    CK_MECHANISM m = {rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_RV rv = p->fn->C_GenerateKeyPair(hs_p11_key_session(p), &m, pub_t, rsa ? 6 : 5, priv_t,
                                        sizeof priv_t / sizeof priv_t[0], pub, priv);
    if (rv != CKR_OK) {
        hs_yh_hold_release(hold);
        return hs_p11_fail(p, e, rv, "C_GenerateKeyPair", "generating %s key '%s' in the YubiHSM",
                           hs_keyalg_name(alg), name);
    }
    return HS_OK;
}

/* ---- unwrap and sweep -------------------------------------------------------------- */

static hs_result id_of(const hs_keyfile *kf, uint16_t *id, hs_error *e)
{
    if (kf->key_id_len != 2)
        return hs_fail(e, HS_E_FORMAT, "key '%s': its key file has no 2-byte YubiHSM object ID",
                       kf->name);
    *id = (uint16_t)(kf->key_id[0] << 8 | kf->key_id[1]);
    return HS_OK;
}

/* The unwrapped object must carry the ID the key file names: any other
 * would escape every later delete by ID. */
static hs_result check_unwrapped_id(hs_p11 *p, CK_OBJECT_HANDLE h, uint16_t id, const char *name,
                                    hs_error *e)
{
    uint8_t *v = NULL;
    size_t len = 0;
    hs_result r = hs_p11_get_attr(p, hs_p11_key_session(p), h, CKA_ID, &v, &len, e);
    uint8_t want[2];
    id_bytes(id, want);
    if (r == HS_OK && (len != 2 || memcmp(v, want, 2) != 0))
        r = hs_fail(e, HS_E_VERIFY,
                    "key '%s': the YubiHSM unwrapped an object with another ID than the key file "
                    "says (0x%04x); the key file and its blob do not belong together", name, id);
    free(v);
    return r;
}

static hs_result unwrap_call(hs_p11 *p, const hs_wrapkey *w, const hs_keyfile *kf, uint16_t id,
                             CK_OBJECT_HANDLE *out, hs_error *e)
{
    /* The device ignores the template: the blob says what the object is. */
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}};
    CK_MECHANISM m = {HS_CKM_YUBICO_AES_CCM_WRAP, NULL, 0};
    CK_RV rv = p->fn->C_UnwrapKey(hs_p11_key_session(p), &m, w->handle, kf->wrapped,
                                  kf->wrapped_len, t, 1, out);
    if (rv == CKR_DEVICE_MEMORY)
        return hs_p11_fail(p, e, rv, "C_UnwrapKey", "unwrapping key '%s' (object 0x%04x): the "
                           "YubiHSM's storage is full", kf->name, id);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_UnwrapKey", "unwrapping key '%s' (object 0x%04x)%s",
                           kf->name, id,
                           rv == CKR_WRAPPED_KEY_INVALID || rv == CKR_ENCRYPTED_DATA_INVALID
                               ? "; the wrapped key is corrupted or belongs to another wrap key"
                               : "");
    return check_unwrapped_id(p, *out, id, kf->name, e);
}

hs_result hs_yh_unwrap(hs_p11 *p, const hs_wrapkey *w, const hs_keyfile *kf, bool ours,
                       hs_yh_swept_fn fn, void *ctx, hs_yh_hold *hold, CK_OBJECT_HANDLE *out,
                       hs_error *e)
{
    uint16_t id = 0;
    hs_result r = id_of(kf, &id, e);
    if (r != HS_OK)
        return r;
    bool got = hold->fd >= 0 && hold->id == id;
    if (!got) {
        hs_yh_hold_release(hold);
        r = hold_take(p, id, true, hold, &got, e);
        if (r != HS_OK)
            return hs_error_prefix(e, "key '%s': ", kf->name);
    }
    CK_OBJECT_HANDLE h[2];
    size_t n = 0;
    char label[HS_YH_LABEL_MAX + 1] = "";
    r = find_by_id(p, id, h, 2, &n, e);
    if (r == HS_OK && n > 0)
        r = read_label(p, h[0], label, e);
    if (r == HS_OK && n > 0)
        r = hs_yh_delete(p, id, kf->name, e);
    if (r == HS_OK && n > 0 && !ours && fn != NULL)
        r = fn(ctx, id, label, e);
    if (r == HS_OK)
        r = hs_yh_check_room(p, kf->alg, kf->name, e);
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    if (r == HS_OK)
        r = unwrap_call(p, w, kf, id, &obj, e);
    if (r != HS_OK) {
        /* Whatever this call left on the device goes now (a device may
         * have stored the object and then failed the answer). */
        hs_error ignored;
        if (hs_yh_delete(p, id, kf->name, &ignored) != HS_OK) {
            /* left for the next run's sweep, once the hold is released */
        }
        hs_yh_hold_release(hold);
        return r;
    }
    *out = obj;
    return HS_OK;
}

static hs_result sweep_one(hs_p11 *p, CK_OBJECT_HANDLE h, hs_yh_swept_fn fn, void *ctx, size_t *n,
                           hs_error *e)
{
    uint8_t *v = NULL;
    size_t len = 0;
    char label[HS_YH_LABEL_MAX + 1];
    hs_result r = hs_p11_get_attr(p, hs_p11_key_session(p), h, CKA_ID, &v, &len, e);
    uint16_t id = len == 2 && v != NULL ? (uint16_t)(v[0] << 8 | v[1]) : 0;
    free(v);
    if (r != HS_OK || id < HS_YH_ID_FIRST || id > HS_YH_ID_LAST)
        return r;
    r = read_label(p, h, label, e);
    if (r != HS_OK || !is_ours(label, strlen(label)))
        return r;
    hs_yh_hold hold = HS_YH_HOLD_NONE;
    bool got = false;
    r = hold_take(p, id, false, &hold, &got, e);
    if (r != HS_OK || !got)
        return r; /* a live process has it */
    CK_RV rv = p->fn->C_DestroyObject(hs_p11_key_session(p), h);
    if (rv != CKR_OK)
        r = hs_p11_fail(p, e, rv, "C_DestroyObject",
                        "deleting '%s' (object 0x%04x), left on the YubiHSM by an hsmsign run "
                        "that did not finish", label, id);
    if (r == HS_OK) {
        (*n)++;
        r = fn(ctx, id, label, e);
    }
    hs_yh_hold_release(&hold);
    return r;
}

hs_result hs_yh_sweep(hs_p11 *p, hs_yh_swept_fn fn, void *ctx, size_t *n, hs_error *e)
{
    enum { MAX_KEYS = 256 };
    *n = 0;
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}};
    CK_OBJECT_HANDLE h[MAX_KEYS];
    size_t found = 0;
    hs_result r = hs_p11_find(p, hs_p11_key_session(p), t, 1, h, MAX_KEYS, &found, e);
    for (size_t i = 0; r == HS_OK && i < found && i < MAX_KEYS; i++)
        r = sweep_one(p, h[i], fn, ctx, n, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "deleting keys left on YubiHSM '%s' by a killed run: ",
                               p->label);
    return HS_OK;
}
