/* Checking up front that the token can do what a command needs, so a
 * token without, say, CKM_AES_KEY_WRAP_PAD fails with that sentence rather
 * than with CKR_MECHANISM_INVALID in the middle of a key generation. */
#include "p11/ckr.h"
#include "p11/p11.h"

static const char *flag_name(CK_FLAGS f)
{
    switch (f) {
    case CKF_SIGN: return "signing";
    case CKF_VERIFY: return "verifying";
    case CKF_WRAP: return "wrapping";
    case CKF_UNWRAP: return "unwrapping";
    case CKF_GENERATE: return "key generation";
    case CKF_GENERATE_KEY_PAIR: return "key-pair generation";
    case CKF_ENCRYPT: return "encryption";
    default: return "the needed use";
    }
}

CK_RV hs_p11_mechanism_info(hs_p11 *p, CK_MECHANISM_TYPE m, CK_MECHANISM_INFO *info)
{
    pthread_mutex_lock(&p->mech_lock);
    for (unsigned i = 0; i < p->n_mech_answers; i++) {
        const struct hs_p11_mech_answer *a = &p->mech_answers[i];
        if (a->slot == p->slot && a->type == m) {
            *info = a->info;
            CK_RV rv = a->rv;
            pthread_mutex_unlock(&p->mech_lock);
            return rv;
        }
    }
    pthread_mutex_unlock(&p->mech_lock);
    /* Asked outside the lock: two threads may both ask, and keep one. */
    CK_RV rv = p->fn->C_GetMechanismInfo(p->slot, m, info);
    pthread_mutex_lock(&p->mech_lock);
    if ((rv == CKR_OK || rv == CKR_MECHANISM_INVALID) &&
        p->n_mech_answers < sizeof p->mech_answers / sizeof p->mech_answers[0])
        p->mech_answers[p->n_mech_answers++] =
            (struct hs_p11_mech_answer){p->slot, m, rv, rv == CKR_OK ? *info : (CK_MECHANISM_INFO){0}};
    pthread_mutex_unlock(&p->mech_lock);
    return rv;
}

hs_result hs_p11_require_mechanism(hs_p11 *p, CK_MECHANISM_TYPE m, CK_FLAGS flags,
                                   const char *purpose, hs_error *e)
{
    CK_MECHANISM_INFO info;
    CK_RV rv = hs_p11_mechanism_info(p, m, &info);
    if (rv == CKR_MECHANISM_INVALID)
        return hs_fail(e, HS_E_P11, "token '%s' does not support %s, which hsmsign needs for %s",
                       p->label, hs_ckm_name(m), purpose);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetMechanismInfo", "checking %s for %s", hs_ckm_name(m),
                           purpose);
    for (CK_FLAGS bit = 1; bit != 0 && bit <= flags; bit <<= 1) {
        if ((flags & bit) && !(info.flags & bit))
            return hs_fail(e, HS_E_P11,
                           "token '%s' supports %s but not for %s, which hsmsign needs for %s",
                           p->label, hs_ckm_name(m), flag_name(bit), purpose);
    }
    return HS_OK;
}
