/* Internal interface of the forwarding PKCS#11 test shim (see README.md).
 *
 * p11shim.c       the CK_FUNCTION_LIST: one thin wrapper per entry point
 * shim_config.c   HSMSIGN_SHIM_* environment variables
 * shim_state.c    counters, session table, faults, latency
 * shim_counts.c   the counts JSON file
 * shim_replay.c   ending the real operation behind a faulted operation call
 * shim_yubihsm.c  HSMSIGN_SHIM_PERSONALITY=yubihsm2: the documented semantics of
 *                 Yubico's yubihsm_pkcs11 over SoftHSM (README.md)
 * shim_yh_store.c, shim_yh_wrap.c  its objects and storage limits, its wrap
 *                 blob (shim_yubihsm.h)
 *
 * Every wrapper runs shim_enter() before and shim_leave() after the real
 * call; shim_enter() may answer the call itself (injected fault, expired
 * session, session limit), in which case nothing is forwarded. */
#ifndef HSMSIGN_P11SHIM_H
#define HSMSIGN_P11SHIM_H

#include <limits.h>
#include <stdbool.h>

#include <p11-kit/pkcs11.h>

#include "shim_functions.h"

enum shim_fn {
#define SHIM_ENUM_ENTRY(name) SHIM_FN_##name,
    SHIM_FUNCTIONS(SHIM_ENUM_ENTRY)
#undef SHIM_ENUM_ENTRY
    SHIM_FN_COUNT
};

/* "C_Sign" for SHIM_FN_Sign. */
const char *shim_fn_name(enum shim_fn fn);
/* SHIM_FN_x for "C_x", or -1 when the name is not a forwarded function. */
int shim_fn_from_name(const char *name);

#define SHIM_ANY_FUNCTION (-1)

struct shim_config {
    char module_path[PATH_MAX];
    unsigned long fail_at;        /* 0: no fault injection */
    int fail_fn;                  /* SHIM_ANY_FUNCTION or an enum shim_fn */
    CK_RV fail_rv;
    bool fail_always;
    bool fail_hang;               /* FAIL_MODE=hang: block at the call, for kill -9 tests */
    char hang_mark[PATH_MAX];     /* created when the call blocks */
    unsigned long latency_ms[SHIM_FN_COUNT]; /* global + per-function */
    unsigned long max_sessions;   /* 0: unlimited */
    unsigned long idle_timeout_ms; /* 0: sessions never expire */
    char counts_path[PATH_MAX];   /* "": no counts file */
    bool yubihsm;                 /* HSMSIGN_SHIM_PERSONALITY=yubihsm2 */
    char yh_firmware[16];         /* "2.4.0" */
    CK_VERSION yh_version;        /* as yubihsm_pkcs11 reports it: {2, 4 * 10 + 0} */
    unsigned yh_auth_keys[16];    /* authentication key IDs that exist */
    size_t n_yh_auth_keys;
};

/* Reads HSMSIGN_SHIM_* into *cfg. On a malformed value prints the variable
 * and the reason to stderr and returns false. */
bool shim_config_load(struct shim_config *cfg);

/* The personality's part of the counts file ("yubihsm":{...}). */
struct shim_yh_counts {
    char connector[256];          /* connector=... as configured */
    char config_source[32];       /* "pReserved" or "YUBIHSM_PKCS11_CONF" */
    char firmware[16];
    unsigned long objects_created; /* device objects created through the shim */
    unsigned long objects_deleted;
    unsigned long objects_unwrapped;
    unsigned long unwrapped_left;  /* unwrapped here and not deleted here */
    unsigned long storage_refused; /* CKR_DEVICE_MEMORY: objects or pages full */
    long objects_left;             /* device objects (auth keys included); -1 unknown */
    long pages_used;               /* pages in use; -1 unknown */
};

/* What the counts file reports (README.md documents every field). */
struct shim_counts {
    bool finalized;
    unsigned long calls_total;
    unsigned long calls[SHIM_FN_COUNT];
    unsigned long sessions_opened;
    unsigned long sessions_closed; /* every way a session ended, below */
    unsigned long sessions_closed_by_close_all;
    unsigned long sessions_closed_by_finalize;
    unsigned long sessions_expired; /* closed by the shim: idle timeout */
    unsigned long sessions_refused; /* CKR_SESSION_COUNT from MAX_SESSIONS */
    unsigned long sessions_open;
    unsigned long max_sessions_open;
    unsigned long logins;
    unsigned long faults_injected;
    bool yubihsm;
    struct shim_yh_counts yh;
};

/* Writes *counts as JSON to path atomically (temp file + rename); on
 * failure says why on stderr. */
void shim_counts_write(const char *path, const struct shim_counts *counts);

/* One call in flight through a wrapper. */
struct shim_call {
    enum shim_fn fn;
    bool has_session;
    CK_SESSION_HANDLE session;
    bool faulted;     /* answer with injected_rv whatever the module says */
    CK_RV injected_rv;
    bool replay;      /* faulted operation call: end the real operation */
    bool reserved_session_slot; /* C_OpenSession holds a MAX_SESSIONS slot */
    CK_RV rv;         /* the answer when shim_enter returns true */
};

/* The real module's function list; valid once shim_enter has returned
 * false. */
CK_FUNCTION_LIST *shim_real(void);
/* The configuration; valid once shim_enter has returned false. */
const struct shim_config *shim_cfg(void);

/* Counts the call, applies latency, decides on a fault, checks the session
 * handle and the session limit. Returns true when the shim answers the call
 * itself with call->rv; false when the caller must forward it and pass the
 * module's answer to shim_leave. */
bool shim_enter(struct shim_call *call, enum shim_fn fn, bool has_session,
                CK_SESSION_HANDLE session);
/* Ends the call; returns what the application sees: the injected code for
 * a faulted call that was forwarded anyway, else real_rv. */
CK_RV shim_leave(struct shim_call *call, CK_RV real_rv);

/* Whether a failure of fn ends the session's active operation (PKCS#11
 * 2.40: the data functions other than the Init and dual-function ones). */
bool shim_fn_ends_operation(enum shim_fn fn);

/* For a call with call->replay set, which was not forwarded: make the same
 * real call into scratch buffers, and finish the operation if it is still
 * active, so the real session looks like one whose call failed. No-ops
 * otherwise. The application's buffers are never written. */
void shim_replay_in_out(const struct shim_call *call, CK_C_Sign fn, CK_BYTE_PTR in,
                        CK_ULONG in_len);
void shim_replay_out(const struct shim_call *call, CK_C_SignFinal fn);
void shim_replay_in(const struct shim_call *call, CK_C_SignUpdate fn, CK_BYTE_PTR in,
                    CK_ULONG in_len);
void shim_replay_digest_key(const struct shim_call *call, CK_OBJECT_HANDLE key);
void shim_replay_verify(const struct shim_call *call, CK_BYTE_PTR data, CK_ULONG data_len,
                        CK_BYTE_PTR sig, CK_ULONG sig_len);

/* Bookkeeping hooks, called by the wrappers with the module's own answer. */
void shim_note_initialized(CK_RV real_rv);
void shim_note_finalized(CK_RV real_rv);
void shim_note_session_opened(struct shim_call *call, CK_RV real_rv,
                              CK_SLOT_ID slot, CK_SESSION_HANDLE handle);
void shim_note_session_closed(CK_RV real_rv, CK_SESSION_HANDLE handle);
void shim_note_all_sessions_closed(CK_RV real_rv, CK_SLOT_ID slot);
void shim_note_login(CK_RV real_rv);

/* --- the yubihsm2 personality (shim_yubihsm.c) ---------------------------
 * Each replaces the forwarded call when shim_cfg()->yubihsm is set. */
#define CKM_YUBICO_AES_CCM_WRAP 0xD9554204UL      /* pkcs11y.h: vendor | 0x59554200 | YH_WRAP_KEY */
#define CKK_YUBICO_AES128_CCM_WRAP 0xD955421DUL   /* ... | YH_ALGO_AES128_CCM_WRAP (29) */
#define CKK_YUBICO_AES192_CCM_WRAP 0xD9554229UL   /* ... | YH_ALGO_AES192_CCM_WRAP (41) */
#define CKK_YUBICO_AES256_CCM_WRAP 0xD955422AUL   /* ... | YH_ALGO_AES256_CCM_WRAP (42) */

CK_RV shim_yh_initialize(CK_VOID_PTR init_args);
void shim_yh_before_finalize(void);
void shim_yh_counts(struct shim_yh_counts *out);
CK_RV shim_yh_get_info(CK_INFO_PTR info);
CK_RV shim_yh_get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info);
CK_RV shim_yh_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info);
CK_RV shim_yh_get_mechanism_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count);
CK_RV shim_yh_get_mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
                                 CK_MECHANISM_INFO_PTR info);
CK_RV shim_yh_login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len);
CK_RV shim_yh_create_object(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                            CK_OBJECT_HANDLE_PTR obj);
CK_RV shim_yh_destroy_object(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj);
CK_RV shim_yh_get_attribute_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,
                                  CK_ATTRIBUTE_PTR tmpl, CK_ULONG n);
CK_RV shim_yh_find_objects_init(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n);
CK_RV shim_yh_generate_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl,
                           CK_ULONG n, CK_OBJECT_HANDLE_PTR key);
CK_RV shim_yh_generate_key_pair(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,
                                CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_n,
                                CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG priv_n,
                                CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv);
CK_RV shim_yh_wrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE wrapping_key,
                       CK_OBJECT_HANDLE key, CK_BYTE_PTR wrapped, CK_ULONG_PTR wrapped_len);
CK_RV shim_yh_unwrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,
                         CK_OBJECT_HANDLE unwrapping_key, CK_BYTE_PTR wrapped,
                         CK_ULONG wrapped_len, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                         CK_OBJECT_HANDLE_PTR key);

#endif
