/* Internal interface of the forwarding PKCS#11 test shim (see README.md).
 *
 * p11shim.c       the CK_FUNCTION_LIST: one thin wrapper per entry point
 * shim_config.c   HSMSIGN_SHIM_* environment variables
 * shim_state.c    counters, session table, faults, latency
 * shim_counts.c   the counts JSON file
 * shim_replay.c   ending the real operation behind a faulted operation call
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
};

/* Reads HSMSIGN_SHIM_* into *cfg. On a malformed value prints the variable
 * and the reason to stderr and returns false. */
bool shim_config_load(struct shim_config *cfg);

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

#endif
