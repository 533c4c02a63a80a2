/* Ending the real operation when a fault replaces an operation call.
 *
 * PKCS#11 says a failing C_Sign, C_SignUpdate, C_SignFinal, C_Decrypt, ...
 * ends the session's active operation. A faulted call is not forwarded, so
 * without help SoftHSM would keep the operation active and the
 * application's next C_SignInit would get CKR_OPERATION_ACTIVE, something
 * no real token does after an error. So the shim replays such a call into
 * its own scratch buffers and discards the result (application buffers
 * untouched, the application still sees only the injected code); for an
 * update that succeeded it then finishes the operation the same way. */
#include <stdlib.h>
#include <string.h>

#include "p11shim.h"

/* Room for any signature, digest or block-cipher output of an input of
 * in_len bytes; a module asking for more gets one retry at its size. */
#define SCRATCH_SLACK 16384u

bool shim_fn_ends_operation(enum shim_fn fn)
{
    switch (fn) {
    case SHIM_FN_Encrypt: case SHIM_FN_EncryptUpdate: case SHIM_FN_EncryptFinal:
    case SHIM_FN_Decrypt: case SHIM_FN_DecryptUpdate: case SHIM_FN_DecryptFinal:
    case SHIM_FN_Digest: case SHIM_FN_DigestUpdate: case SHIM_FN_DigestKey:
    case SHIM_FN_DigestFinal:
    case SHIM_FN_Sign: case SHIM_FN_SignUpdate: case SHIM_FN_SignFinal:
    case SHIM_FN_SignRecover:
    case SHIM_FN_Verify: case SHIM_FN_VerifyUpdate: case SHIM_FN_VerifyFinal:
    case SHIM_FN_VerifyRecover:
        return true;
    default:
        return false;
    }
}

static CK_BYTE *scratch_alloc(CK_ULONG size)
{
    CK_BYTE *buf = malloc(size == 0 ? 1 : size);
    if (buf == NULL)
        abort(); /* a test module: see grow() in shim_state.c */
    return buf;
}

/* Outputs may be plaintext (C_Decrypt): wipe before freeing. */
static void scratch_free(CK_BYTE *buf, CK_ULONG size)
{
    explicit_bzero(buf, size == 0 ? 1 : size);
    free(buf);
}

static CK_RV in_out_into_scratch(CK_C_Sign fn, CK_SESSION_HANDLE s, CK_BYTE_PTR in,
                                 CK_ULONG in_len)
{
    CK_ULONG cap = in_len > (CK_ULONG)-1 - SCRATCH_SLACK ? in_len : in_len + SCRATCH_SLACK;
    for (int attempt = 0;; attempt++) {
        CK_BYTE *buf = scratch_alloc(cap);
        CK_ULONG len = cap;
        CK_RV rv = fn(s, in, in_len, buf, &len);
        scratch_free(buf, cap);
        if (rv != CKR_BUFFER_TOO_SMALL || len <= cap || attempt == 1)
            return rv;
        cap = len;
    }
}

static CK_RV out_into_scratch(CK_C_SignFinal fn, CK_SESSION_HANDLE s)
{
    CK_ULONG cap = SCRATCH_SLACK;
    for (int attempt = 0;; attempt++) {
        CK_BYTE *buf = scratch_alloc(cap);
        CK_ULONG len = cap;
        CK_RV rv = fn(s, buf, &len);
        scratch_free(buf, cap);
        if (rv != CKR_BUFFER_TOO_SMALL || len <= cap || attempt == 1)
            return rv;
        cap = len;
    }
}

/* After an update that the module accepted, the operation is still active:
 * finish it. A verification finishes with a signature that cannot match,
 * which ends it just the same. */
static void finish_operation(enum shim_fn update, CK_SESSION_HANDLE s)
{
    CK_FUNCTION_LIST *real = shim_real();
    CK_BYTE no_signature[1] = {0};
    switch (update) {
    case SHIM_FN_EncryptUpdate: out_into_scratch(real->C_EncryptFinal, s); break;
    case SHIM_FN_DecryptUpdate: out_into_scratch(real->C_DecryptFinal, s); break;
    case SHIM_FN_DigestUpdate:
    case SHIM_FN_DigestKey: out_into_scratch(real->C_DigestFinal, s); break;
    case SHIM_FN_SignUpdate: out_into_scratch(real->C_SignFinal, s); break;
    case SHIM_FN_VerifyUpdate:
        real->C_VerifyFinal(s, no_signature, sizeof no_signature);
        break;
    default: break;
    }
}

static void after_replay(const struct shim_call *call, CK_RV rv)
{
    if (rv == CKR_OK)
        finish_operation(call->fn, call->session);
}

void shim_replay_in_out(const struct shim_call *call, CK_C_Sign fn, CK_BYTE_PTR in,
                        CK_ULONG in_len)
{
    if (call->replay && fn != NULL)
        after_replay(call, in_out_into_scratch(fn, call->session, in, in_len));
}

void shim_replay_out(const struct shim_call *call, CK_C_SignFinal fn)
{
    if (call->replay && fn != NULL)
        after_replay(call, out_into_scratch(fn, call->session));
}

void shim_replay_in(const struct shim_call *call, CK_C_SignUpdate fn, CK_BYTE_PTR in,
                    CK_ULONG in_len)
{
    if (call->replay && fn != NULL)
        after_replay(call, fn(call->session, in, in_len));
}

void shim_replay_digest_key(const struct shim_call *call, CK_OBJECT_HANDLE key)
{
    if (call->replay && shim_real()->C_DigestKey != NULL)
        after_replay(call, shim_real()->C_DigestKey(call->session, key));
}

void shim_replay_verify(const struct shim_call *call, CK_BYTE_PTR data, CK_ULONG data_len,
                        CK_BYTE_PTR sig, CK_ULONG sig_len)
{
    if (call->replay && shim_real()->C_Verify != NULL)
        shim_real()->C_Verify(call->session, data, data_len, sig, sig_len);
}
