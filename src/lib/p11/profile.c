#include "p11/profile.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "p11/ckr.h"
#include "p11/objects.h"

/* PKCS#11 3.0's name for RFC 5649; SoftHSM calls it CKM_AES_KEY_WRAP_PAD. */
#define HS_CKM_AES_KEY_WRAP_KWP 0x210BUL

static const hs_profile_ops profiles[HS_PROFILE_COUNT] = {
    {HS_PROFILE_WRAPPED, "wrapped", HS_KEYS_WRAPPED_SESSION, true, true,
     "signing keys are stored outside the token, wrapped under its AES wrap key, and unwrapped "
     "into session objects to sign"},
    {HS_PROFILE_YUBIHSM, "yubihsm", HS_KEYS_WRAPPED_PERSISTENT, true, true,
     "signing keys are generated in the YubiHSM, exported under its wrap key "
     "(CKM_YUBICO_AES_CCM_WRAP) and deleted; to sign, a key is unwrapped into a persistent "
     "object and deleted after use, and what a killed run left is deleted at the next start"},
    {HS_PROFILE_RESIDENT, "resident", HS_KEYS_RESIDENT, false, true,
     "signing keys are generated inside the token as sensitive, non-extractable token objects; "
     "key files name them by CKA_ID. There is no wrap key and no shares: a key exists only in "
     "this token"},
};

const hs_profile_ops *hs_profile_ops_of(hs_profile p)
{
    return (unsigned)p < HS_PROFILE_COUNT ? &profiles[p] : &profiles[HS_PROFILE_WRAPPED];
}

const char *hs_profile_name(hs_profile p)
{
    return hs_profile_ops_of(p)->name;
}

bool hs_profile_parse(const char *name, hs_profile *out)
{
    for (size_t i = 0; i < HS_PROFILE_COUNT; i++)
        if (strcmp(name, profiles[i].name) == 0) {
            *out = profiles[i].id;
            return true;
        }
    return false;
}

hs_result hs_p11_module_info_get(hs_p11 *p, hs_p11_module_info *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    CK_INFO info;
    CK_RV rv = p->fn->C_GetInfo(&info);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetInfo", "reading the module's identity");
    hs_p11_string(out->manufacturer, sizeof out->manufacturer, info.manufacturerID,
                  sizeof info.manufacturerID);
    hs_p11_string(out->description, sizeof out->description, info.libraryDescription,
                  sizeof info.libraryDescription);
    out->lib_major = info.libraryVersion.major;
    out->lib_minor = info.libraryVersion.minor;
    out->cryptoki_major = info.cryptokiVersion.major;
    out->cryptoki_minor = info.cryptokiVersion.minor;
    return HS_OK;
}

/* Whether the token has m for all of flags. Only CKR_MECHANISM_INVALID
 * means "no": any other failure (a token error, a dropped device) fails,
 * or a fault would quietly choose another profile. */
static hs_result has_mechanism(hs_p11 *p, CK_MECHANISM_TYPE m, CK_FLAGS flags, bool *has,
                               hs_error *e)
{
    CK_MECHANISM_INFO info;
    CK_RV rv = hs_p11_mechanism_info(p, m, &info);
    *has = rv == CKR_OK && (info.flags & flags) == flags;
    if (rv == CKR_OK || rv == CKR_MECHANISM_INVALID)
        return HS_OK;
    return hs_p11_fail(p, e, rv, "C_GetMechanismInfo", "checking %s to choose the token's profile",
                       hs_ckm_name(m));
}

static hs_result detect(hs_p11 *p, hs_profile_choice *out, hs_error *e)
{
    hs_p11_module_info mi;
    hs_result r = hs_p11_module_info_get(p, &mi, e);
    if (r != HS_OK)
        return r;
    /* Yubico's module has no standard wrap mechanism; its name is the
     * only sign that the vendor one is there. */
    if (strncasecmp(mi.manufacturer, "Yubico", 6) == 0 && strstr(mi.description, "YubiHSM")) {
        out->profile = HS_PROFILE_YUBIHSM;
        snprintf(out->why, sizeof out->why, "module '%s' by %s", mi.description, mi.manufacturer);
        return HS_OK;
    }
    CK_FLAGS wrap = CKF_WRAP | CKF_UNWRAP;
    bool pad = false, kwp = false;
    r = has_mechanism(p, CKM_AES_KEY_WRAP_PAD, wrap, &pad, e);
    if (r == HS_OK && !pad)
        r = has_mechanism(p, HS_CKM_AES_KEY_WRAP_KWP, wrap, &kwp, e);
    if (r != HS_OK)
        return r;
    if (pad || kwp) {
        out->profile = HS_PROFILE_WRAPPED;
        snprintf(out->why, sizeof out->why, "token '%s' wraps and unwraps with AES key wrap (RFC 5649)",
                 p->label);
        return HS_OK;
    }
    out->profile = HS_PROFILE_RESIDENT;
    snprintf(out->why, sizeof out->why,
             "token '%s' (%s %s) has no AES key wrap with padding to wrap and unwrap keys",
             p->label, p->manufacturer, p->model);
    return HS_OK;
}

hs_result hs_profile_select(hs_p11 *p, const char *requested, hs_profile_choice *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    if (requested != NULL) {
        if (!hs_profile_parse(requested, &out->profile))
            return hs_fail(e, HS_E_USAGE, "unknown profile '%s' (known: wrapped, yubihsm, resident)",
                           requested);
        out->requested = true;
        snprintf(out->why, sizeof out->why, "named by --profile");
        return HS_OK;
    }
    return detect(p, out, e);
}

hs_result hs_profile_choose(hs_p11 *p, const char *requested, hs_profile_choice *out, hs_error *e)
{
    hs_result r = hs_profile_select(p, requested, out, e);
    if (r == HS_OK && !hs_profile_ops_of(out->profile)->implemented)
        r = hs_fail(e, HS_E_P11, "token '%s': profile '%s' (%s) is not supported by this hsmsign yet",
                    p->label, hs_profile_name(out->profile), out->why);
    return r;
}

hs_result hs_p11_check_key_size(hs_p11 *p, CK_MECHANISM_TYPE gen, unsigned long bits,
                                const char *what, hs_error *e)
{
    CK_MECHANISM_INFO info;
    CK_RV rv = p->fn->C_GetMechanismInfo(p->slot, gen, &info);
    if (rv == CKR_MECHANISM_INVALID)
        return hs_fail(e, HS_E_P11, "token '%s' does not support %s, which hsmsign needs for %s",
                       p->label, hs_ckm_name(gen), what);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetMechanismInfo", "checking %s for %s", hs_ckm_name(gen),
                           what);
    /* 0 means "no limit given" on some modules: let C_GenerateKeyPair say. */
    if (info.ulMaxKeySize != 0 && bits > info.ulMaxKeySize)
        return hs_fail(e, HS_E_P11,
                       "token '%s' (%s) makes keys of at most %lu bits with %s; %s needs %lu",
                       p->label, p->model, (unsigned long)info.ulMaxKeySize, hs_ckm_name(gen),
                       what, bits);
    if (bits < info.ulMinKeySize)
        return hs_fail(e, HS_E_P11,
                       "token '%s' (%s) makes keys of at least %lu bits with %s; %s needs %lu",
                       p->label, p->model, (unsigned long)info.ulMinKeySize, hs_ckm_name(gen),
                       what, bits);
    return HS_OK;
}

/* Copies t without the entries saying `type` is false. */
static CK_ULONG without_false(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type,
                              CK_ATTRIBUTE *out)
{
    CK_ULONG k = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        bool is_false = t[i].type == type && t[i].ulValueLen == sizeof(CK_BBOOL) &&
                        *(const CK_BBOOL *)t[i].pValue == CK_FALSE;
        if (!is_false)
            out[k++] = t[i];
    }
    return k;
}

bool hs_p11_template_refused(CK_RV rv)
{
    return rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_TEMPLATE_INCONSISTENT ||
           rv == CKR_ATTRIBUTE_VALUE_INVALID || rv == CKR_GENERAL_ERROR;
}

CK_RV hs_p11_generate_pair(hs_p11 *p, CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_ATTRIBUTE *pub,
                           CK_ULONG n_pub, CK_ATTRIBUTE *priv, CK_ULONG n_priv,
                           CK_OBJECT_HANDLE *h_pub, CK_OBJECT_HANDLE *h_priv, bool *relaxed)
{
    enum { MAX_ATTRS = 32 };
    CK_ATTRIBUTE rpub[MAX_ATTRS], rpriv[MAX_ATTRS];
    *relaxed = false;
    if (n_pub > MAX_ATTRS || n_priv > MAX_ATTRS || n_pub == 0 || n_priv == 0)
        return CKR_ARGUMENTS_BAD;
    CK_ULONG rn_pub = without_false(pub, n_pub - 1, CKA_ENCRYPT, rpub);
    CK_ULONG rn_priv = without_false(priv, n_priv - 1, CKA_DECRYPT, rpriv);
    rpub[rn_pub++] = pub[n_pub - 1];
    rpriv[rn_priv++] = priv[n_priv - 1];
    CK_RV rv = CKR_GENERAL_ERROR;
    for (int attempt = 0; attempt < 4; attempt++) {
        bool relax = attempt >= 2, short_ = attempt % 2 == 1;
        CK_ATTRIBUTE *tp = relax ? rpub : pub, *tq = relax ? rpriv : priv;
        CK_ULONG np = (relax ? rn_pub : n_pub) - short_, nq = (relax ? rn_priv : n_priv) - short_;
        rv = p->fn->C_GenerateKeyPair(s, m, tp, np, tq, nq, h_pub, h_priv);
        if (rv == CKR_OK)
            *relaxed = relax;
        if (rv == CKR_OK || !hs_p11_template_refused(rv))
            break;
    }
    return rv;
}

hs_result hs_p11_check_key_kept(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                const char *name, hs_error *e)
{
    static const struct {
        CK_ATTRIBUTE_TYPE type;
        bool want;
        const char *name;
    } need[] = {
        {CKA_PRIVATE, true, "CKA_PRIVATE"},
        {CKA_SENSITIVE, true, "CKA_SENSITIVE"},
        {CKA_EXTRACTABLE, false, "CKA_EXTRACTABLE"},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        bool v;
        hs_result r = hs_p11_get_bool(p, s, h, need[i].type, &v, e);
        if (r != HS_OK)
            return hs_error_prefix(e, "checking key '%s': ", name);
        if (v != need[i].want)
            return hs_fail(e, HS_E_VERIFY,
                           "key '%s' on token '%s' has %s %s: its private key could be read "
                           "out of the token, so hsmsign refuses to sign with it",
                           name, p->label, need[i].name, v ? "true" : "false");
    }
    return HS_OK;
}
