/* The PKCS#11 layer: one loaded module, one selected token, a small pool
 * of sessions, and the login state.
 *
 * Session objects (unwrapped signing keys) belong to the session that
 * created them, so one long-lived "key session" creates them and is never
 * handed out; work sessions come from the pool. When the token drops
 * sessions (a YubiHSM 2 closes sessions idle for 30 s) hs_p11_recover
 * reopens, logs in again and bumps `generation`, which tells holders of
 * object handles (the signer) to unwrap again. */
#ifndef HSMSIGN_P11_P11_H
#define HSMSIGN_P11_P11_H

#include <pthread.h>
#include <stdbool.h>

#include <p11-kit/pkcs11.h>

#include "p11/pin.h"
#include "util/result.h"

#define HS_P11_POOL_MAX 16

typedef struct hs_p11 {
    CK_FUNCTION_LIST *fn;
    char module_path[1024];
    char *init_args; /* pReserved of C_Initialize (--module-init-args), or NULL */
    bool initialized;
    /* The caller accepts a token that does not enforce the wrap key's
     * custody attributes (--accept-custody-gap; keystore/custody.h). */
    bool accept_custody_gap;

    bool have_token;
    CK_SLOT_ID slot;
    char label[33], serial[17], model[17], manufacturer[33];
    CK_FLAGS token_flags;

    hs_pin_source pin_source;
    char *pin; /* secure memory, kept while logged in for transparent re-login */
    bool logged_in;

    pthread_mutex_t lock;
    CK_SESSION_HANDLE key_session; /* CK_INVALID_HANDLE when closed */
    CK_SESSION_HANDLE pool[HS_P11_POOL_MAX];
    bool pool_busy[HS_P11_POOL_MAX];
    unsigned pool_len;
    unsigned max_sessions; /* work sessions, 1..HS_P11_POOL_MAX */
    unsigned generation;   /* bumped by every recovery */
    unsigned recoveries;

    /* The inter-process token lock (p11/token_lock.h). token_mutex is
     * recursive and held with the flock, so nested locking in one thread
     * counts and other threads wait. */
    pthread_mutex_t token_mutex;
    unsigned token_lock_depth;
    int token_lock_fd; /* -1 when not open */
    char token_lock_path[1100];
    char softhsm_conf[1024], softhsm_tokendir[1024]; /* "" unless the module is SoftHSM */

    /* C_GetMechanismInfo answers already had (hs_p11_mechanism_info). */
    pthread_mutex_t mech_lock;
    struct hs_p11_mech_answer {
        CK_SLOT_ID slot;
        CK_MECHANISM_TYPE type;
        CK_RV rv;
        CK_MECHANISM_INFO info;
    } mech_answers[8];
    unsigned n_mech_answers;
} hs_p11;

/* Loads the module (NULL: the default SoftHSMv2 path) through p11-kit and
 * calls C_Initialize. Token enumeration, login and C_OpenSession below run
 * under an inter-process token lock and retry transient failures (see
 * p11/token_lock.h), so parallel hsmsign processes can share one token. */
hs_result hs_p11_open(const char *module_path, hs_p11 **out, hs_error *e) HS_MUST_CHECK;

/* hs_p11_open, passing init_args (NULL or "": none) to C_Initialize as
 * CK_C_INITIALIZE_ARGS.pReserved, e.g. NSS softokn's
 * "configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db' flags=". */
hs_result hs_p11_open_args(const char *module_path, const char *init_args, hs_p11 **out,
                           hs_error *e) HS_MUST_CHECK;

/* Closes every session, logs out, calls C_Finalize, unloads the module and
 * wipes the PIN. Safe on NULL and on any partially opened state. */
void hs_p11_close(hs_p11 *p);

/* Chooses the token: spec is an RFC 7512 "pkcs11:" URI, a token label, or
 * NULL for "the only initialized token". */
hs_result hs_p11_select_token(hs_p11 *p, const char *spec, hs_error *e) HS_MUST_CHECK;

/* Logs in as the user with the PIN from src (read now, kept in locked
 * memory until hs_p11_close for re-login after a dropped session). */
hs_result hs_p11_login(hs_p11 *p, const hs_pin_source *src, hs_error *e) HS_MUST_CHECK;

/* The session that owns session objects; valid after login. */
CK_SESSION_HANDLE hs_p11_key_session(const hs_p11 *p);

/* Borrows a work session from the pool (opening one if needed, retrying
 * with back-off on CKR_SESSION_COUNT) and gives it back. A session that
 * failed with a session-level error is returned with broken=true and
 * closed. */
hs_result hs_p11_session_acquire(hs_p11 *p, CK_SESSION_HANDLE *s, hs_error *e) HS_MUST_CHECK;
void hs_p11_session_release(hs_p11 *p, CK_SESSION_HANDLE s, bool broken);

/* True for the return values after which reopening sessions and logging
 * in again can succeed: CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
 * CKR_USER_NOT_LOGGED_IN, CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID. */
bool hs_p11_rv_recoverable(CK_RV rv);

/* Closes all sessions, opens a new key session and logs in again with the
 * kept PIN. Bumps generation. */
hs_result hs_p11_recover(hs_p11 *p, hs_error *e) HS_MUST_CHECK;

/* Fails with a message naming the token, the PKCS#11 function and the
 * return value in words, e.g.
 * "token 'demo': C_Login failed with CKR_PIN_INCORRECT (logging in as user)".
 * Returns HS_E_P11. */
hs_result hs_p11_fail(const hs_p11 *p, hs_error *e, CK_RV rv, const char *function,
                      const char *doing, ...) HS_PRINTF(5, 6);
#ifdef __clang_analyzer__
/* For the static analyzer only, as hs_fail in util/result.h: it does not
 * look into variadic functions, so it would take HS_OK as a possible result. */
#define hs_p11_fail(p, e, rv, ...) ((hs_p11_fail)((p), (e), (rv), __VA_ARGS__), HS_E_P11)
#endif

/* C_GetMechanismInfo on the selected token's slot, asked once per process
 * per mechanism: an answer (CKR_OK or CKR_MECHANISM_INVALID) is kept, as
 * a token's mechanisms do not change under a running command; any other
 * return value is not, so the next caller asks again. A signing command
 * asked three times for two mechanisms. */
CK_RV hs_p11_mechanism_info(hs_p11 *p, CK_MECHANISM_TYPE m, CK_MECHANISM_INFO *info);

/* Fails early, in words, when the token lacks a mechanism or a use of it
 * (CKF_SIGN, CKF_WRAP, ...) that hsmsign needs for `purpose`. */
hs_result hs_p11_require_mechanism(hs_p11 *p, CK_MECHANISM_TYPE m, CK_FLAGS flags,
                                   const char *purpose, hs_error *e) HS_MUST_CHECK;

/* Initializes the token in a free (uninitialized) slot with the label and
 * PINs: C_InitToken with the SO PIN, then C_InitPIN for the user PIN. The
 * module must be open; no token selected. */
hs_result hs_p11_init_token(hs_p11 *p, const char *label, const char *so_pin,
                            const char *user_pin, hs_error *e) HS_MUST_CHECK;

/* A token present in the module, for `token list`. */
typedef struct hs_p11_token_info {
    CK_SLOT_ID slot;
    char label[33], serial[17], model[17], manufacturer[33];
    bool initialized, user_pin_initialized, login_required;
    CK_FLAGS flags; /* CK_TOKEN_INFO.flags */
} hs_p11_token_info;

hs_result hs_p11_list_tokens(hs_p11 *p, hs_p11_token_info **out, size_t *n,
                             hs_error *e) HS_MUST_CHECK;

/* Copies a blank-padded PKCS#11 string field into a NUL-terminated one. */
void hs_p11_string(char *dst, size_t dst_len, const CK_UTF8CHAR *src, size_t src_len);

#endif
