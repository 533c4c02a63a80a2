/* Token administration for the ceremonies (see admin.h). */
#include "p11/admin.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11/ckr.h"
#include "p11/token_lock.h"
#include "util/secmem.h"

const char *hs_token_state_name(hs_token_state s)
{
    switch (s) {
    case HS_TOKEN_ABSENT: return "not initialized";
    case HS_TOKEN_FRESH: return "freshly initialized (no user PIN)";
    case HS_TOKEN_IN_USE: return "in use (user PIN set)";
    }
    return "?";
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 7512 percent-decoding of one attribute value. */
static bool pct_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= len)
                return false;
            int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

hs_result hs_p11_spec_label(const char *spec, char *label, size_t cap, hs_error *e)
{
    if (strncmp(spec, "pkcs11:", 7) != 0) {
        if (spec[0] == '\0' || strlen(spec) > 32 || strlen(spec) >= cap)
            return hs_fail(e, HS_E_USAGE, "token label '%s' must be 1 to 32 bytes", spec);
        snprintf(label, cap, "%s", spec);
        return HS_OK;
    }
    /* The path part ends at '?'; attributes are separated by ';'. */
    const char *p = spec + 7;
    size_t path_len = strcspn(p, "?");
    while (path_len > 0) {
        size_t attr_len = strcspn(p, ";");
        if (attr_len > path_len)
            attr_len = path_len;
        if (attr_len > 6 && strncmp(p, "token=", 6) == 0) {
            if (!pct_decode(p + 6, attr_len - 6, label, cap) || label[0] == '\0' ||
                strlen(label) > 32)
                return hs_fail(e, HS_E_USAGE,
                               "token URI '%s': the token= label is malformed or longer than 32 "
                               "bytes",
                               spec);
            return HS_OK;
        }
        path_len -= attr_len;
        p += attr_len;
        if (path_len > 0) {
            p++;
            path_len--;
        }
    }
    return hs_fail(e, HS_E_USAGE,
                   "token URI '%s' names no token label (token=...): a ceremony must be able to "
                   "find the token again after initializing it",
                   spec);
}

static void deselect(hs_p11 *p)
{
    p->have_token = false;
}

hs_result hs_p11_token_probe(hs_p11 *p, const char *spec, hs_token_state *state,
                             hs_p11_token_info *info, hs_error *e)
{
    memset(info, 0, sizeof *info);
    hs_error tmp;
    hs_error_clear(&tmp);
    hs_result r = hs_p11_select_token(p, spec, &tmp);
    if (r == HS_E_NOTFOUND) {
        char label[33];
        r = hs_p11_spec_label(spec, label, sizeof label, e);
        if (r != HS_OK)
            return r;
        snprintf(info->label, sizeof info->label, "%s", label);
        *state = HS_TOKEN_ABSENT;
        return HS_OK;
    }
    if (r != HS_OK) {
        *e = tmp;
        return r;
    }
    info->slot = p->slot;
    memcpy(info->label, p->label, sizeof info->label);
    memcpy(info->serial, p->serial, sizeof info->serial);
    memcpy(info->model, p->model, sizeof info->model);
    memcpy(info->manufacturer, p->manufacturer, sizeof info->manufacturer);
    info->initialized = true;
    info->user_pin_initialized = (p->token_flags & CKF_USER_PIN_INITIALIZED) != 0;
    info->login_required = (p->token_flags & CKF_LOGIN_REQUIRED) != 0;
    *state = info->user_pin_initialized ? HS_TOKEN_IN_USE : HS_TOKEN_FRESH;
    deselect(p);
    return HS_OK;
}

bool hs_p11_token_is_softhsm(const hs_p11_token_info *info)
{
    return strncmp(info->manufacturer, "SoftHSM", 7) == 0;
}

/* Counts the objects an SO session can see: on a fresh token there must
 * be none (someone may have created public objects without a user PIN). */
static hs_result count_objects(hs_p11 *p, CK_SESSION_HANDLE s, CK_ULONG *n, hs_error *e)
{
    *n = 0;
    CK_RV rv = p->fn->C_FindObjectsInit(s, NULL, 0);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_FindObjectsInit", "checking that the token is empty");
    for (;;) {
        CK_OBJECT_HANDLE h[16];
        CK_ULONG got = 0;
        rv = p->fn->C_FindObjects(s, h, 16, &got);
        if (rv != CKR_OK || got == 0)
            break;
        *n += got;
    }
    CK_RV frv = p->fn->C_FindObjectsFinal(s);
    if (rv == CKR_OK)
        rv = frv;
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_FindObjects", "checking that the token is empty");
    return HS_OK;
}

/* As SO with current_so_pin: check emptiness, change the SO PIN, set the
 * user PIN. The session is closed on every path. */
static hs_result set_pins(hs_p11 *p, const char *current_so_pin, const char *so_pin,
                          const char *user_pin, hs_error *e)
{
    CK_SESSION_HANDLE s;
    CK_RV rv = p->fn->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_OpenSession", "setting the PINs");
    hs_result r = HS_OK;
    rv = p->fn->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)current_so_pin, strlen(current_so_pin));
    if (rv != CKR_OK) {
        r = hs_p11_fail(p, e, rv, "C_Login", "logging in as security officer with the current SO PIN");
        goto close;
    }
    CK_ULONG objects = 0;
    r = count_objects(p, s, &objects, e);
    if (r == HS_OK && objects != 0)
        r = hs_fail(e, HS_E_EXISTS, "token '%s' (serial %s) is not empty: it holds %lu object(s)",
                    p->label, p->serial, (unsigned long)objects);
    if (r == HS_OK && strcmp(current_so_pin, so_pin) != 0) {
        rv = p->fn->C_SetPIN(s, (CK_UTF8CHAR_PTR)current_so_pin, strlen(current_so_pin),
                             (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin));
        if (rv != CKR_OK)
            r = hs_p11_fail(p, e, rv, "C_SetPIN", "setting the new SO PIN");
    }
    /* The new SO PIN is proven by a login with it before anything else
     * depends on it (a token that stored something else would otherwise
     * be locked to everyone). */
    if (r == HS_OK) {
        (void)p->fn->C_Logout(s);
        rv = p->fn->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin));
        if (rv != CKR_OK)
            r = hs_p11_fail(p, e, rv, "C_Login",
                            "confirming the new SO PIN by logging in with it");
    }
    if (r == HS_OK) {
        rv = p->fn->C_InitPIN(s, (CK_UTF8CHAR_PTR)user_pin, strlen(user_pin));
        if (rv != CKR_OK)
            r = hs_p11_fail(p, e, rv, "C_InitPIN", "setting the user PIN");
    }
    (void)p->fn->C_Logout(s);
close:
    (void)p->fn->C_CloseSession(s);
    return r;
}

/* Re-initializes the token with its current SO PIN: every object on it
 * goes, the private ones the SO cannot see included (a previous holder may
 * have left a key on a "fresh" token by removing its user PIN afterwards).
 * An in-use token is erased only on SoftHSM (erase); a fresh one on any
 * token that implements C_InitToken. */
static hs_result reset_token(hs_p11 *p, const char *spec, const char *current_so_pin, bool erase,
                             hs_error *e)
{
    hs_result r = hs_p11_select_token(p, spec, e);
    if (r != HS_OK)
        return r;
    hs_p11_token_info info;
    memset(&info, 0, sizeof info);
    memcpy(info.manufacturer, p->manufacturer, sizeof info.manufacturer);
    if (erase && !hs_p11_token_is_softhsm(&info))
        return hs_fail(e, HS_E_USAGE,
                       "token '%s' (manufacturer '%s') is in use; erasing it is allowed only on "
                       "SoftHSM: reset a hardware token with its vendor's tool",
                       p->label, p->manufacturer);
    CK_UTF8CHAR padded[32];
    memset(padded, ' ', sizeof padded);
    memcpy(padded, p->label, strlen(p->label));
    CK_RV rv = p->fn->C_InitToken(p->slot, (CK_UTF8CHAR_PTR)current_so_pin,
                                  strlen(current_so_pin), padded);
    if (rv == CKR_FUNCTION_NOT_SUPPORTED)
        return hs_fail(e, HS_E_USAGE,
                       "token '%s' (manufacturer '%s') cannot be re-initialized through PKCS#11 "
                       "(C_InitToken not supported): objects hidden from the SO could survive; "
                       "reset it with its vendor's tool so that it is not initialized, then run "
                       "the ceremony again",
                       p->label, p->manufacturer);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_InitToken",
                           erase ? "erasing the token (--force-reset)"
                                 : "re-initializing the token with its current SO PIN");
    return HS_OK;
}

static hs_result take_over_locked(hs_p11 *p, const char *spec, hs_token_state state,
                                  const char *current_so_pin, const char *so_pin,
                                  const char *user_pin, bool erase, hs_error *e)
{
    char label[33];
    hs_result r = hs_p11_spec_label(spec, label, sizeof label, e);
    if (r != HS_OK)
        return r;
    if (state == HS_TOKEN_ABSENT)
        return hs_p11_init_token(p, label, so_pin, user_pin, e);
    if (current_so_pin == NULL)
        return hs_fail(e, HS_E_USAGE,
                       "token '%s' is already initialized: its current SO PIN is needed to take "
                       "it over",
                       label);
    if (state == HS_TOKEN_IN_USE && !erase)
        return hs_fail(e, HS_E_EXISTS,
                       "token '%s' is in use (its user PIN is set, it may hold keys); "
                       "refusing to provision it (--force-reset erases a SoftHSM token)",
                       label);
    r = reset_token(p, spec, current_so_pin, state == HS_TOKEN_IN_USE, e);
    if (r != HS_OK)
        return r;
    /* Slots may be renumbered by C_InitToken: find the token again. */
    r = hs_p11_select_token(p, label, e);
    if (r == HS_OK)
        r = set_pins(p, current_so_pin, so_pin, user_pin, e);
    if (r == HS_OK)
        r = hs_p11_select_token(p, label, e); /* refresh the flags */
    return r;
}

/* C_InitToken, C_SetPIN and C_InitPIN rewrite the token's files: the
 * whole take-over runs under the token lock (see token_lock.h). */
hs_result hs_p11_take_over_token(hs_p11 *p, const char *spec, hs_token_state state,
                                 const char *current_so_pin, const char *so_pin,
                                 const char *user_pin, bool erase, hs_error *e)
{
    hs_result r = hs_p11_token_lock(p, e);
    if (r != HS_OK)
        return r;
    r = take_over_locked(p, spec, state, current_so_pin, so_pin, user_pin, erase, e);
    hs_p11_token_unlock(p);
    return r;
}

hs_result hs_p11_read_token_details(hs_p11 *p, hs_p11_token_details *d, hs_error *e)
{
    memset(d, 0, sizeof *d);
    CK_TOKEN_INFO ti;
    CK_RV rv = p->fn->C_GetTokenInfo(p->slot, &ti);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetTokenInfo", "reading the firmware version and PIN limits");
    d->min_pin = ti.ulMinPinLen;
    d->max_pin = ti.ulMaxPinLen;
    snprintf(d->firmware, sizeof d->firmware, "%u.%u", ti.firmwareVersion.major,
             ti.firmwareVersion.minor);
    snprintf(d->hardware, sizeof d->hardware, "%u.%u", ti.hardwareVersion.major,
             ti.hardwareVersion.minor);
    return HS_OK;
}

static hs_result check_so_pin_locked(hs_p11 *p, const char *so_pin, hs_error *e)
{
    CK_SESSION_HANDLE s;
    CK_RV rv = p->fn->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_OpenSession", "checking the current SO PIN");
    rv = p->fn->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin));
    hs_result r = HS_OK;
    if (rv != CKR_OK)
        r = hs_p11_fail(p, e, rv, "C_Login",
                        "checking the current SO PIN before anything changes");
    else
        (void)p->fn->C_Logout(s);
    (void)p->fn->C_CloseSession(s);
    return r;
}

hs_result hs_p11_check_so_pin(hs_p11 *p, const char *so_pin, hs_error *e)
{
    hs_result r = hs_p11_token_lock(p, e);
    if (r != HS_OK)
        return r;
    r = check_so_pin_locked(p, so_pin, e);
    hs_p11_token_unlock(p);
    return r;
}

static bool label_expected(const char *label, const char *const *labels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(label, labels[i]) == 0)
            return true;
    return false;
}

/* Lists what the logged-in session s sees: every object must carry one
 * of the labels; counts them and the public ones. */
static hs_result survey(hs_p11 *p, CK_SESSION_HANDLE s, const char *const *labels, size_t n_labels,
                        CK_ULONG *total, CK_ULONG *public_n, hs_error *e)
{
    *total = *public_n = 0;
    CK_RV rv = p->fn->C_FindObjectsInit(s, NULL, 0);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_FindObjectsInit", "listing the token's objects");
    hs_result r = HS_OK;
    for (;;) {
        CK_OBJECT_HANDLE h;
        CK_ULONG got = 0;
        rv = p->fn->C_FindObjects(s, &h, 1, &got);
        if (rv != CKR_OK || got == 0)
            break;
        char label[65] = "";
        CK_BBOOL priv = CK_TRUE;
        CK_ATTRIBUTE a[2] = {{CKA_LABEL, label, sizeof label - 1}, {CKA_PRIVATE, &priv, sizeof priv}};
        CK_RV arv = p->fn->C_GetAttributeValue(s, h, a, 2);
        if (arv != CKR_OK || a[0].ulValueLen >= sizeof label)
            label[0] = '\0';
        else
            label[a[0].ulValueLen] = '\0';
        (*total)++;
        if (priv == CK_FALSE)
            (*public_n)++;
        if (r == HS_OK && !label_expected(label, labels, n_labels))
            r = hs_fail(e, HS_E_VERIFY,
                        "token '%s' (serial %s) holds an object the ceremony did not make "
                        "(label '%s'): it was not blank",
                        p->label, p->serial, label);
    }
    CK_RV frv = p->fn->C_FindObjectsFinal(s);
    if (rv == CKR_OK)
        rv = frv;
    if (r == HS_OK && rv != CKR_OK)
        r = hs_p11_fail(p, e, rv, "C_FindObjects", "listing the token's objects");
    return r;
}

static hs_result prove_locked(hs_p11 *p, const char *so_pin, const char *user_pin,
                              const char *const *labels, size_t n_labels, size_t expect,
                              hs_error *e)
{
    CK_SESSION_HANDLE s;
    CK_RV rv = p->fn->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_OpenSession", "checking the token's contents");
    CK_ULONG total = 0, pub = 0, so_total = 0, so_pub = 0;
    hs_result r = HS_OK;
    rv = p->fn->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)user_pin, strlen(user_pin));
    if (rv != CKR_OK)
        r = hs_p11_fail(p, e, rv, "C_Login", "logging in with the new user PIN");
    if (r == HS_OK)
        r = survey(p, s, labels, n_labels, &total, &pub, e);
    (void)p->fn->C_Logout(s);
    if (r == HS_OK && (rv = p->fn->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin))) !=
                          CKR_OK)
        r = hs_p11_fail(p, e, rv, "C_Login", "logging in with the new SO PIN");
    if (r == HS_OK) {
        r = survey(p, s, labels, n_labels, &so_total, &so_pub, e);
        (void)p->fn->C_Logout(s);
    }
    if (r == HS_OK && (total != expect || so_total != pub))
        r = hs_fail(e, HS_E_VERIFY,
                    "token '%s' (serial %s) holds %lu object(s) for the user and %lu for the "
                    "SO; the ceremony made %zu (%lu public): it was not blank",
                    p->label, p->serial, (unsigned long)total, (unsigned long)so_total, expect,
                    (unsigned long)pub);
    (void)p->fn->C_CloseSession(s);
    return r;
}

hs_result hs_p11_prove_contents(hs_p11 *p, const char *so_pin, const char *user_pin,
                                const char *const *labels, size_t n_labels, size_t expect,
                                hs_error *e)
{
    hs_result r = hs_p11_token_lock(p, e);
    if (r != HS_OK)
        return r;
    r = prove_locked(p, so_pin, user_pin, labels, n_labels, expect, e);
    hs_p11_token_unlock(p);
    return r;
}

hs_result hs_p11_login_with_pin(hs_p11 *p, const char *pin, hs_error *e)
{
    if (p->logged_in)
        return HS_OK;
    size_t len = strlen(pin);
    if (len + 1 > HS_PIN_MAX)
        return hs_fail(e, HS_E_USAGE, "PIN too long");
    if (p->pin == NULL) {
        p->pin = hs_secure_alloc(HS_PIN_MAX);
        if (p->pin == NULL)
            return hs_fail(e, HS_E_NOMEM, "out of locked memory for the PIN");
        memcpy(p->pin, pin, len + 1);
    }
    /* hs_p11_login reads the source only when no PIN is kept. */
    hs_pin_source unused;
    memset(&unused, 0, sizeof unused);
    unused.kind = HS_PIN_ENV;
    return hs_p11_login(p, &unused, e);
}

hs_result hs_p11_random_pin(char *pin, size_t len, hs_error *e)
{
    /* 32 symbols: a byte's low five bits pick one without bias. */
    static const char alphabet[] = "23456789abcdefghjkmnpqrstuvwxyzA";
    if (len < 8 || len > 64)
        return hs_fail(e, HS_E_INTERNAL, "PIN length %zu out of range", len);
    uint8_t rnd[64];
    if (RAND_priv_bytes(rnd, (int)len) != 1)
        return hs_fail(e, HS_E_CRYPTO, "no randomness for a PIN");
    for (size_t i = 0; i < len; i++)
        pin[i] = alphabet[rnd[i] & 31];
    pin[len] = '\0';
    hs_wipe(rnd, sizeof rnd);
    return HS_OK;
}
