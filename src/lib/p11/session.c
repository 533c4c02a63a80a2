/* Login, the session pool, and transparent recovery from dropped sessions. */
#include <stdio.h>
#include <string.h>

#include "p11/ckr.h"
#include "p11/p11.h"
#include "p11/token_lock.h"
#include "util/flock.h"
#include "util/secmem.h"

/* Back-off for CKR_SESSION_COUNT: another process (or our own pool on a
 * token with few sessions, like a YubiHSM 2's 16) may free one soon. */
#define OPEN_RETRIES 6
#define OPEN_FIRST_DELAY_MS 25

/* SoftHSM reads the token's token.object in C_OpenSession: under the
 * token lock, which is not held while waiting for a free session. */
static CK_RV open_session_once(hs_p11 *p, CK_SESSION_HANDLE *s, hs_error *e)
{
    if (hs_p11_token_lock(p, e) != HS_OK)
        return CKR_CANT_LOCK;
    CK_RV rv = p->fn->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
    hs_p11_token_unlock(p);
    return rv;
}

static hs_result open_session(hs_p11 *p, CK_SESSION_HANDLE *s, const char *why, hs_error *e)
{
    unsigned delay = OPEN_FIRST_DELAY_MS;
    CK_RV rv = CKR_OK;
    for (int attempt = 0; attempt < OPEN_RETRIES; attempt++) {
        rv = open_session_once(p, s, e);
        if (rv == CKR_CANT_LOCK) {
            *s = CK_INVALID_HANDLE;
            return e != NULL ? e->code : HS_E_P11;
        }
        if (rv != CKR_SESSION_COUNT)
            break;
        hs_sleep_ms(delay);
        delay *= 2;
    }
    if (rv != CKR_OK) {
        *s = CK_INVALID_HANDLE;
        return hs_p11_fail(p, e, rv, "C_OpenSession", "%s", why);
    }
    return HS_OK;
}

static hs_result login_once(hs_p11 *p, hs_error *e)
{
    hs_result r;
    if (p->key_session == CK_INVALID_HANDLE) {
        r = open_session(p, &p->key_session, "opening the key session", e);
        if (r != HS_OK)
            return r;
    }
    CK_RV rv = p->fn->C_Login(p->key_session, CKU_USER, (CK_UTF8CHAR_PTR)p->pin, strlen(p->pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        r = hs_p11_fail(p, e, rv, "C_Login", "logging in as user");
        (void)p->fn->C_CloseSession(p->key_session);
        p->key_session = CK_INVALID_HANDLE;
        return r;
    }
    p->logged_in = true;
    return HS_OK;
}

/* Opens the key session and logs in, under the token lock (SoftHSM
 * rewrites token.object in every C_Login, see token_lock.h), retrying
 * CKR_GENERAL_ERROR and CKR_DEVICE_ERROR with a fresh session. Never a
 * wrong PIN: that is not transient, and a retry would burn a PIN try. */
static hs_result login_locked(hs_p11 *p, hs_error *e)
{
    hs_result r = hs_p11_token_lock(p, e);
    if (r != HS_OK)
        return r;
    hs_p11_retry rt;
    hs_p11_retry_start(&rt);
    while ((r = login_once(p, e)) != HS_OK &&
           hs_p11_retry_again(&rt, r == HS_E_P11 && hs_p11_rv_transient(e->ckr), e)) {
    }
    hs_p11_token_unlock(p);
    return r;
}

hs_result hs_p11_login(hs_p11 *p, const hs_pin_source *src, hs_error *e)
{
    if (!p->have_token)
        return hs_fail(e, HS_E_INTERNAL, "login before a token was selected");
    if (p->logged_in)
        return HS_OK;
    char what[128];
    snprintf(what, sizeof what, "user PIN of token '%s'", p->label);
    if (p->pin == NULL) {
        hs_result r = hs_pin_read(src, what, &p->pin, e);
        if (r != HS_OK)
            return r;
    }
    p->pin_source = *src;
    pthread_mutex_lock(&p->lock);
    hs_result r = login_locked(p, e);
    pthread_mutex_unlock(&p->lock);
    if (r != HS_OK) {
        /* A wrong PIN must not be retried behind the user's back: a token
         * locks after a few failures. */
        hs_pin_free(p->pin);
        p->pin = NULL;
    }
    return r;
}

CK_SESSION_HANDLE hs_p11_key_session(const hs_p11 *p)
{
    return p->key_session;
}

hs_result hs_p11_session_acquire(hs_p11 *p, CK_SESSION_HANDLE *s, hs_error *e)
{
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < p->pool_len; i++) {
        if (!p->pool_busy[i]) {
            p->pool_busy[i] = true;
            *s = p->pool[i];
            pthread_mutex_unlock(&p->lock);
            return HS_OK;
        }
    }
    hs_result r;
    if (p->pool_len >= p->max_sessions || p->pool_len >= HS_P11_POOL_MAX) {
        r = hs_fail(e, HS_E_INTERNAL, "token '%s': all %u sessions of the pool are in use",
                    p->label, p->pool_len);
    } else {
        r = open_session(p, s, "opening a work session", e);
        if (r == HS_OK) {
            p->pool[p->pool_len] = *s;
            p->pool_busy[p->pool_len] = true;
            p->pool_len++;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return r;
}

void hs_p11_session_release(hs_p11 *p, CK_SESSION_HANDLE s, bool broken)
{
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < p->pool_len; i++) {
        if (p->pool[i] != s)
            continue;
        if (broken) {
            (void)p->fn->C_CloseSession(s);
            p->pool[i] = p->pool[p->pool_len - 1];
            p->pool_busy[i] = p->pool_busy[p->pool_len - 1];
            p->pool_len--;
        } else {
            p->pool_busy[i] = false;
        }
        break;
    }
    pthread_mutex_unlock(&p->lock);
}

bool hs_p11_rv_recoverable(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_OBJECT_HANDLE_INVALID ||
           rv == CKR_KEY_HANDLE_INVALID;
}

hs_result hs_p11_recover(hs_p11 *p, hs_error *e)
{
    if (p->pin == NULL)
        return hs_fail(e, HS_E_INTERNAL, "token '%s': cannot log in again without a PIN", p->label);
    pthread_mutex_lock(&p->lock);
    /* Close what we know of one by one (not C_CloseAllSessions) so a
     * session-counting module sees every close; errors are expected here,
     * the sessions may already be gone. */
    for (unsigned i = 0; i < p->pool_len; i++)
        (void)p->fn->C_CloseSession(p->pool[i]);
    p->pool_len = 0;
    memset(p->pool_busy, 0, sizeof p->pool_busy);
    if (p->key_session != CK_INVALID_HANDLE)
        (void)p->fn->C_CloseSession(p->key_session);
    p->key_session = CK_INVALID_HANDLE;
    p->logged_in = false;
    p->generation++;
    p->recoveries++;
    hs_result r = login_locked(p, e);
    pthread_mutex_unlock(&p->lock);
    return r;
}
