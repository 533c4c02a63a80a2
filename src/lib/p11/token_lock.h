/* Many processes, one token: an inter-process lock around the PKCS#11
 * calls that make SoftHSMv2 read or rewrite its token files, and bounded
 * retries of what is still transient.
 *
 * Why: SoftHSM rewrites a token's token.object on every C_Login (to keep
 * the PIN counters) and reads it in C_Initialize, C_GetTokenInfo,
 * C_OpenSession and C_Login. Its writer truncates the file and fwrite()s
 * under an fcntl lock, but the stdio buffer reaches the file only at
 * fclose, after the unlock (object_store/File.cpp: the destructor unlocks,
 * then fcloses). Another process can therefore read an empty or partial
 * token.object, and then sees no token ("no initialized token found"),
 * CKR_GENERAL_ERROR from C_GetTokenInfo or C_Login, or
 * CKR_USER_PIN_NOT_INITIALIZED. Observed with 4 parallel loops of
 * `sign raw`: strace shows ftruncate, F_UNLCK, then the write.
 *
 * The lock: an exclusive flock on one file per token directory, taken by
 * hs_p11_open before C_Initialize and released after it, and taken again
 * around token enumeration, C_OpenSession and C_Login (and the admin calls
 * that rewrite the token: C_InitToken, C_InitPIN, C_SetPIN). Signing runs
 * without it, so parallel signing stays parallel. The kernel drops an flock
 * when its holder dies, even by SIGKILL, so a killed process never wedges
 * the others.
 *
 * Where the lock file lives (a per-directory, not per-token, lock: SoftHSM's
 * C_Initialize reads every token of its directory):
 *   - SoftHSM (the module's file name contains "softhsm"): TOKENDIR/.hsmsign.lock,
 *     TOKENDIR being directories.tokendir of the configuration SoftHSM reads
 *     ($SOFTHSM2_CONF, else ~/.config/softhsm2/softhsm2.conf if it exists,
 *     else /etc/softhsm/softhsm2.conf). SoftHSM looks only at the
 *     directory's subdirectories, so the file does not disturb it.
 *   - any other module, or a token directory we cannot create a file in:
 *     RUNTIME/hsmsign/token-HASH.lock, RUNTIME being $XDG_RUNTIME_DIR (else
 *     /tmp/hsmsign-UID, created 0700 and checked to be ours), HASH a hash
 *     of the token directory or of the module's path. This serializes one
 *     user's processes only.
 *
 * Waiting for the lock is bounded by HSMSIGN_TOKEN_LOCK_TIMEOUT seconds
 * (default 60); retries by HSMSIGN_P11_RETRY_TIMEOUT seconds (default 10). */
#ifndef HSMSIGN_P11_TOKEN_LOCK_H
#define HSMSIGN_P11_TOKEN_LOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "p11/p11.h"

#define HS_P11_TOKEN_LOCK_TIMEOUT_MS 60000u
#define HS_P11_RETRY_TIMEOUT_MS 10000u

/* Chooses and opens (creating it) p's lock file; hs_p11_open calls it
 * before C_Initialize. Records the SoftHSM token directory, if any. */
hs_result hs_p11_token_lock_open(hs_p11 *p, hs_error *e) HS_MUST_CHECK;
void hs_p11_token_lock_close(hs_p11 *p);

/* Takes the lock (nested calls in one thread only count); every
 * successful hs_p11_token_lock needs one hs_p11_token_unlock. */
hs_result hs_p11_token_lock(hs_p11 *p, hs_error *e) HS_MUST_CHECK;
void hs_p11_token_unlock(hs_p11 *p);

/* True for the return values a SoftHSM reading a half-written file gives,
 * which a later attempt can cure: CKR_GENERAL_ERROR, CKR_DEVICE_ERROR.
 * Never CKR_PIN_INCORRECT and friends: a retry would burn PIN tries. */
bool hs_p11_rv_transient(CK_RV rv);

/* Bounded exponential back-off over one operation. */
typedef struct hs_p11_retry {
    unsigned attempts;  /* made so far */
    unsigned waited_ms; /* slept so far */
    unsigned delay_ms;  /* next sleep */
    unsigned budget_ms; /* HSMSIGN_P11_RETRY_TIMEOUT */
} hs_p11_retry;

void hs_p11_retry_start(hs_p11_retry *rt);

/* Called after each attempt: counts it, and when the attempt failed
 * transiently and time remains, sleeps and returns true (try again). When
 * it returns false after a failure that was retried, it appends to e's
 * message how many attempts were made over how long. The lock is kept
 * while sleeping: the writer being waited out is not an hsmsign process
 * (those write under the lock), and letting other hsmsign processes in
 * would only have them fail on the same file. */
bool hs_p11_retry_again(hs_p11_retry *rt, bool transient, hs_error *e);

/* SoftHSM only: how many token directories (holding a token.object) the
 * token directory has; 0 when unknown. More than the module reports
 * initialized tokens means one could not be read just now. */
size_t hs_p11_softhsm_token_dirs(const hs_p11 *p);

/* A hint for "no token" messages: when the module is SoftHSM and
 * SOFTHSM2_CONF is not set, which configuration and token directory it
 * read, and that SOFTHSM2_CONF selects another; "" otherwise. */
void hs_p11_softhsm_hint(const hs_p11 *p, char *buf, size_t cap);

#endif
