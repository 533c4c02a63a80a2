/* Loading a PKCS#11 module, choosing its token, initializing a token. */
#include "p11/p11.h"

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p11/ckr.h"
#include "p11/token_lock.h"
#include "util/secmem.h"

#ifndef HSMSIGN_DEFAULT_MODULE
#define HSMSIGN_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

void hs_p11_string(char *dst, size_t dst_len, const CK_UTF8CHAR *src, size_t src_len)
{
    size_t n = src_len < dst_len - 1 ? src_len : dst_len - 1;
    memcpy(dst, src, n);
    while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
        n--;
    dst[n] = '\0';
}

/* Parenthesized: p11.h defines an hs_p11_fail macro for the static analyzer. */
hs_result (hs_p11_fail)(const hs_p11 *p, hs_error *e, CK_RV rv, const char *function,
                        const char *doing, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, doing);
    vsnprintf(what, sizeof what, doing, ap);
    va_end(ap);
    if (p != NULL && p->have_token)
        hs_fail(e, HS_E_P11, "token '%s': %s failed with %s (%s)", p->label, function,
                hs_ckr_name(rv), what);
    else
        hs_fail(e, HS_E_P11, "PKCS#11 module %s: %s failed with %s (%s)",
                p != NULL ? p->module_path : "?", function, hs_ckr_name(rv), what);
    if (e != NULL)
        e->ckr = rv;
    return HS_E_P11;
}

/* C_Initialize with the module's configuration string, if any, in
 * pReserved (NSS softokn reads its database directory from it, Yubico's
 * module its connector URL). p11-kit's own initialize always passes NULL
 * there, so the module is called directly; OS locking as p11-kit asks. */
static CK_RV initialize(hs_p11 *p)
{
    if (p->init_args == NULL)
        return p11_kit_module_initialize(p->fn);
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = p->init_args;
    CK_RV rv = p->fn->C_Initialize(&args);
    return rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv;
}

/* C_Initialize under the token lock: SoftHSM reads every token file of its
 * directory here. */
static CK_RV initialize_locked_once(hs_p11 *p, hs_error *e)
{
    if (hs_p11_token_lock(p, e) != HS_OK)
        return CKR_CANT_LOCK;
    CK_RV rv = initialize(p);
    hs_p11_token_unlock(p);
    if (rv != CKR_OK)
        hs_p11_fail(p, e, rv, "C_Initialize", "initializing the module");
    return rv;
}

hs_result hs_p11_open(const char *module_path, hs_p11 **out, hs_error *e)
{
    return hs_p11_open_args(module_path, NULL, out, e);
}

hs_result hs_p11_open_args(const char *module_path, const char *init_args, hs_p11 **out,
                           hs_error *e)
{
    *out = NULL;
    if (module_path == NULL || *module_path == '\0')
        module_path = HSMSIGN_DEFAULT_MODULE;
    if (access(module_path, R_OK) != 0)
        return hs_fail(e, HS_E_NOTFOUND,
                       "PKCS#11 module %s: no such file (give the module with --module or "
                       "HSMSIGN_MODULE; Debian's SoftHSMv2 is package softhsm2)",
                       module_path);
    hs_p11 *p = calloc(1, sizeof *p);
    if (p == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    snprintf(p->module_path, sizeof p->module_path, "%s", module_path);
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->mech_lock, NULL);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&p->token_mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    p->token_lock_fd = -1;
    p->key_session = CK_INVALID_HANDLE;
    p->max_sessions = 4;
    if (init_args != NULL && *init_args != '\0') {
        p->init_args = strdup(init_args);
        if (p->init_args == NULL) {
            hs_p11_close(p);
            return hs_fail(e, HS_E_NOMEM, "out of memory");
        }
    }

    /* p11-kit would otherwise print its own messages on stderr; the
     * library reports errors only through hs_error. */
    p11_kit_be_quiet();
    p->fn = p11_kit_module_load(module_path, P11_KIT_MODULE_UNMANAGED);
    if (p->fn == NULL) {
        const char *why = p11_kit_message();
        hs_fail(e, HS_E_P11, "PKCS#11 module %s: cannot load: %s", module_path,
                why != NULL ? why : "not a PKCS#11 module");
        hs_p11_close(p);
        return HS_E_P11;
    }
    hs_result r = hs_p11_token_lock_open(p, e);
    if (r != HS_OK) {
        hs_p11_close(p);
        return r;
    }
    hs_p11_retry rt;
    hs_p11_retry_start(&rt);
    CK_RV rv;
    while ((rv = initialize_locked_once(p, e)) != CKR_OK &&
           hs_p11_retry_again(&rt, hs_p11_rv_transient(rv), e)) {
    }
    if (rv != CKR_OK) {
        hs_p11_close(p);
        return e != NULL && e->code != HS_OK ? e->code : HS_E_P11;
    }
    p->initialized = true;
    *out = p;
    return HS_OK;
}

static void close_sessions_locked(hs_p11 *p)
{
    for (unsigned i = 0; i < p->pool_len; i++)
        if (p->pool[i] != CK_INVALID_HANDLE)
            (void)p->fn->C_CloseSession(p->pool[i]);
    p->pool_len = 0;
    memset(p->pool_busy, 0, sizeof p->pool_busy);
    if (p->key_session != CK_INVALID_HANDLE) {
        if (p->logged_in)
            (void)p->fn->C_Logout(p->key_session);
        (void)p->fn->C_CloseSession(p->key_session);
    }
    p->key_session = CK_INVALID_HANDLE;
    p->logged_in = false;
}

void hs_p11_close(hs_p11 *p)
{
    if (p == NULL)
        return;
    if (p->fn != NULL) {
        if (p->initialized) {
            pthread_mutex_lock(&p->lock);
            close_sessions_locked(p);
            pthread_mutex_unlock(&p->lock);
            (void)p11_kit_module_finalize(p->fn);
        }
        p11_kit_module_release(p->fn);
    }
    if (p->pin != NULL)
        hs_pin_free(p->pin);
    hs_p11_token_lock_close(p);
    free(p->init_args);
    pthread_mutex_destroy(&p->token_mutex);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->mech_lock);
    hs_wipe(p, sizeof *p);
    free(p);
}

static hs_result slot_list(hs_p11 *p, CK_BBOOL token_present, CK_SLOT_ID **slots, CK_ULONG *n,
                           hs_error *e)
{
    *slots = NULL;
    CK_RV rv = p->fn->C_GetSlotList(token_present, NULL, n);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetSlotList", "listing slots");
    *slots = calloc(*n + 1, sizeof **slots);
    if (*slots == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    rv = p->fn->C_GetSlotList(token_present, *slots, n);
    if (rv != CKR_OK) {
        free(*slots);
        *slots = NULL;
        return hs_p11_fail(p, e, rv, "C_GetSlotList", "listing slots");
    }
    return HS_OK;
}

static void fill_info(hs_p11_token_info *t, CK_SLOT_ID slot, const CK_TOKEN_INFO *ti)
{
    t->slot = slot;
    hs_p11_string(t->label, sizeof t->label, ti->label, sizeof ti->label);
    hs_p11_string(t->serial, sizeof t->serial, ti->serialNumber, sizeof ti->serialNumber);
    hs_p11_string(t->model, sizeof t->model, ti->model, sizeof ti->model);
    hs_p11_string(t->manufacturer, sizeof t->manufacturer, ti->manufacturerID,
                  sizeof ti->manufacturerID);
    t->initialized = (ti->flags & CKF_TOKEN_INITIALIZED) != 0;
    t->user_pin_initialized = (ti->flags & CKF_USER_PIN_INITIALIZED) != 0;
    t->login_required = (ti->flags & CKF_LOGIN_REQUIRED) != 0;
    t->flags = ti->flags;
}

static hs_result list_once(hs_p11 *p, hs_p11_token_info **out, size_t *n, hs_error *e)
{
    CK_SLOT_ID *slots;
    CK_ULONG count;
    *out = NULL;
    *n = 0;
    hs_result r = slot_list(p, CK_TRUE, &slots, &count, e);
    if (r != HS_OK)
        return r;
    hs_p11_token_info *list = calloc(count + 1, sizeof *list);
    if (list == NULL) {
        free(slots);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    size_t got = 0;
    for (CK_ULONG i = 0; i < count; i++) {
        CK_TOKEN_INFO ti;
        CK_RV rv = p->fn->C_GetTokenInfo(slots[i], &ti);
        if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED)
            continue;
        if (rv != CKR_OK) {
            CK_SLOT_ID failed = slots[i]; /* named in the message after slots is freed */
            free(slots);
            free(list);
            return hs_p11_fail(p, e, rv, "C_GetTokenInfo", "reading slot %lu",
                               (unsigned long)failed);
        }
        fill_info(&list[got++], slots[i], &ti);
    }
    free(slots);
    *out = list;
    *n = got;
    return HS_OK;
}

/* Starts the module over, so that a SoftHSM that could not read a token
 * file in C_Initialize loads its tokens again. Only while no session is
 * open (before login), as C_Finalize closes them all. */
static hs_result reinitialize(hs_p11 *p, hs_error *e)
{
    if (p->key_session != CK_INVALID_HANDLE || p->pool_len > 0)
        return HS_OK;
    (void)p11_kit_module_finalize(p->fn);
    CK_RV rv = initialize(p);
    if (rv != CKR_OK) {
        p->initialized = false;
        return hs_p11_fail(p, e, rv, "C_Initialize", "initializing the module again");
    }
    return HS_OK;
}

/* Whether a failed attempt at enumerating tokens may succeed later: a
 * transient return value, or (SoftHSM) fewer initialized tokens than
 * token directories, one of which could not be read just now. */
static bool enumeration_transient(const hs_p11 *p, hs_result r, const hs_error *e,
                                  size_t initialized)
{
    if (r == HS_E_P11)
        return e != NULL && hs_p11_rv_transient(e->ckr);
    return r == HS_E_NOTFOUND && hs_p11_softhsm_token_dirs(p) > initialized;
}

/* Runs one enumeration attempt (list or select) under the token lock,
 * with retries; between attempts the module starts over. */
typedef hs_result (*enumerate_fn)(hs_p11 *p, const void *arg, size_t *initialized, hs_error *e);

static hs_result enumerate(hs_p11 *p, enumerate_fn fn, const void *arg, hs_error *e)
{
    hs_result r = hs_p11_token_lock(p, e);
    if (r != HS_OK)
        return r;
    hs_p11_retry rt;
    hs_p11_retry_start(&rt);
    for (;;) {
        size_t initialized = 0;
        r = fn(p, arg, &initialized, e);
        if (r == HS_OK || !hs_p11_retry_again(&rt, enumeration_transient(p, r, e, initialized), e))
            break;
        hs_result rr = reinitialize(p, e);
        if (rr != HS_OK) {
            r = rr;
            break;
        }
    }
    hs_p11_token_unlock(p);
    return r;
}

struct list_args {
    hs_p11_token_info **out;
    size_t *n;
};

static hs_result list_attempt(hs_p11 *p, const void *arg, size_t *initialized, hs_error *e)
{
    const struct list_args *a = arg;
    hs_result r = list_once(p, a->out, a->n, e);
    for (size_t i = 0; r == HS_OK && i < *a->n; i++)
        *initialized += (*a->out)[i].initialized;
    return r;
}

hs_result hs_p11_list_tokens(hs_p11 *p, hs_p11_token_info **out, size_t *n, hs_error *e)
{
    struct list_args a = {out, n};
    return enumerate(p, list_attempt, &a, e);
}

static void adopt_token(hs_p11 *p, const hs_p11_token_info *t)
{
    p->have_token = true;
    p->slot = t->slot;
    memcpy(p->label, t->label, sizeof p->label);
    memcpy(p->serial, t->serial, sizeof p->serial);
    memcpy(p->model, t->model, sizeof p->model);
    memcpy(p->manufacturer, t->manufacturer, sizeof p->manufacturer);
    p->token_flags = t->flags;
}

/* Lists the labels of initialized tokens for "no token matches" messages. */
static void describe_tokens(const hs_p11_token_info *list, size_t n, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++) {
        if (!list[i].initialized)
            continue;
        int w = snprintf(buf + used, cap - used, "%s'%s' (serial %s)", used ? ", " : "",
                         list[i].label, list[i].serial);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (used == 0)
        snprintf(buf, cap, "none");
}

/* Why no token may have been found: SoftHSM read another configuration
 * than the caller meant, or could not read a token file just now. */
static void not_found_hint(const hs_p11 *p, size_t initialized, char *buf, size_t cap)
{
    hs_p11_softhsm_hint(p, buf, cap);
    size_t dirs = hs_p11_softhsm_token_dirs(p), used = strlen(buf);
    if (dirs > initialized)
        snprintf(buf + used, cap - used,
                 " (SoftHSM's token directory %s holds %zu token(s) but the module read only "
                 "%zu: another process may be rewriting a token file)",
                 p->softhsm_tokendir, dirs, initialized);
}

static hs_result select_attempt(hs_p11 *p, const void *arg, size_t *initialized, hs_error *e)
{
    const char *spec = arg;
    hs_p11_token_info *list;
    size_t n;
    hs_result r = list_once(p, &list, &n, e);
    if (r != HS_OK)
        return r;
    for (size_t i = 0; i < n; i++)
        *initialized += list[i].initialized;
    P11KitUri *uri = NULL;
    if (spec != NULL && strncmp(spec, "pkcs11:", 7) == 0) {
        uri = p11_kit_uri_new();
        int ur = uri != NULL ? p11_kit_uri_parse(spec, P11_KIT_URI_FOR_TOKEN, uri) : P11_KIT_URI_NO_MEMORY;
        if (ur != P11_KIT_URI_OK) {
            hs_fail(e, HS_E_USAGE, "token URI '%s': %s", spec, p11_kit_uri_message(ur));
            p11_kit_uri_free(uri);
            free(list);
            return HS_E_USAGE;
        }
    }
    int found = -1, matches = 0;
    for (size_t i = 0; i < n; i++) {
        if (!list[i].initialized)
            continue;
        bool match;
        if (uri != NULL) {
            CK_TOKEN_INFO ti;
            match = p->fn->C_GetTokenInfo(list[i].slot, &ti) == CKR_OK &&
                    p11_kit_uri_match_token_info(uri, &ti);
        } else {
            match = spec == NULL || strcmp(list[i].label, spec) == 0;
        }
        if (match) {
            matches++;
            if (found < 0)
                found = (int)i;
        }
    }
    p11_kit_uri_free(uri);
    char names[600];
    describe_tokens(list, n, names, sizeof names);
    if (matches == 0) {
        char hint[2600];
        not_found_hint(p, *initialized, hint, sizeof hint);
        r = hs_fail(e, HS_E_NOTFOUND,
                    "no initialized token %s%s%s in module %s; tokens present: %s%s",
                    spec ? "matches '" : "found", spec ? spec : "", spec ? "'" : "",
                    p->module_path, names, hint);
    } else if (matches > 1) {
        r = hs_fail(e, HS_E_USAGE,
                    "%d tokens match '%s' in module %s (%s); choose one with --token "
                    "pkcs11:serial=...",
                    matches, spec ? spec : "(any)", p->module_path, names);
    } else {
        /* The flags list_once has just read, in this attempt: no third
         * C_GetTokenInfo (SoftHSM re-reads the token's file for each). */
        adopt_token(p, &list[found]);
    }
    free(list);
    return r;
}

hs_result hs_p11_select_token(hs_p11 *p, const char *spec, hs_error *e)
{
    return enumerate(p, select_attempt, spec, e);
}

static hs_result init_token_locked(hs_p11 *p, const char *label, const char *so_pin,
                                   const char *user_pin, hs_error *e)
{
    hs_p11_token_info *list;
    size_t n;
    hs_result r = hs_p11_list_tokens(p, &list, &n, e);
    if (r != HS_OK)
        return r;
    int free_slot = -1;
    for (size_t i = 0; i < n; i++) {
        if (list[i].initialized && strcmp(list[i].label, label) == 0) {
            hs_fail(e, HS_E_EXISTS, "a token labelled '%s' already exists (serial %s)", label,
                    list[i].serial);
            free(list);
            return HS_E_EXISTS;
        }
        if (!list[i].initialized && free_slot < 0)
            free_slot = (int)i;
    }
    if (free_slot < 0) {
        free(list);
        return hs_fail(e, HS_E_NOTFOUND, "module %s has no uninitialized token to initialize",
                       p->module_path);
    }
    CK_SLOT_ID slot = list[free_slot].slot;
    free(list);

    CK_UTF8CHAR padded[32];
    memset(padded, ' ', sizeof padded);
    size_t ll = strlen(label);
    if (ll == 0 || ll > sizeof padded)
        return hs_fail(e, HS_E_USAGE, "token label '%s' must be 1 to 32 bytes", label);
    memcpy(padded, label, ll);
    CK_RV rv = p->fn->C_InitToken(slot, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin), padded);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_InitToken", "initializing token '%s'", label);

    /* SoftHSM moves a freshly initialized token to a new slot id: find it
     * again by label before logging in as SO to set the user PIN. */
    r = hs_p11_select_token(p, label, e);
    if (r != HS_OK)
        return r;
    CK_SESSION_HANDLE s;
    rv = p->fn->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_OpenSession", "setting the user PIN");
    rv = p->fn->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin));
    if (rv == CKR_OK) {
        rv = p->fn->C_InitPIN(s, (CK_UTF8CHAR_PTR)user_pin, strlen(user_pin));
        if (rv != CKR_OK)
            hs_p11_fail(p, e, rv, "C_InitPIN", "setting the user PIN");
        (void)p->fn->C_Logout(s);
    } else {
        hs_p11_fail(p, e, rv, "C_Login", "logging in as security officer");
    }
    (void)p->fn->C_CloseSession(s);
    return rv == CKR_OK ? HS_OK : HS_E_P11;
}

/* C_InitToken and C_InitPIN rewrite the token's files: under the lock. */
hs_result hs_p11_init_token(hs_p11 *p, const char *label, const char *so_pin,
                            const char *user_pin, hs_error *e)
{
    hs_result r = hs_p11_token_lock(p, e);
    if (r != HS_OK)
        return r;
    r = init_token_locked(p, label, so_pin, user_pin, e);
    hs_p11_token_unlock(p);
    return r;
}
