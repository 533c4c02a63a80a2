/* Custody attributes of the wrap key and the audit key (see custody.h). */
#include "keystore/custody.h"

#include <stdio.h>
#include <string.h>

#include "keystore/kwp.h"
#include "p11/objects.h"

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static const CK_OBJECT_CLASS private_class = CKO_PRIVATE_KEY;

#define BOOL_ATTR(type, value) {(type), (void *)&(value), sizeof(CK_BBOOL)}

/* What an unwrapped signing key is, whoever asks for it: a private key
 * living only in the session that unwrapped it, never readable, never
 * changed or copied into something readable, good for signing alone.
 * CKA_MODIFIABLE is last: SoftHSM applies a C_UnwrapKey template in order
 * and refuses every attribute after CKA_MODIFIABLE=false
 * (CKR_ATTRIBUTE_READ_ONLY). */
static const CK_ATTRIBUTE unwrap_template[HS_CUSTODY_UNWRAP_ATTRS] = {
    {CKA_CLASS, (void *)&private_class, sizeof private_class},
    BOOL_ATTR(CKA_TOKEN, no),
    BOOL_ATTR(CKA_PRIVATE, yes),
    BOOL_ATTR(CKA_SENSITIVE, yes),
    BOOL_ATTR(CKA_EXTRACTABLE, no),
    BOOL_ATTR(CKA_COPYABLE, no),
    BOOL_ATTR(CKA_SIGN, yes),
    BOOL_ATTR(CKA_SIGN_RECOVER, no),
    BOOL_ATTR(CKA_DECRYPT, no),
    BOOL_ATTR(CKA_UNWRAP, no),
    BOOL_ATTR(CKA_DERIVE, no),
    BOOL_ATTR(CKA_MODIFIABLE, no),
};

/* The wrap key wraps private keys only (new signing keys, once). */
static const CK_ATTRIBUTE wrap_template[] = {
    {CKA_CLASS, (void *)&private_class, sizeof private_class},
};

const CK_ATTRIBUTE *hs_custody_unwrap_template(void)
{
    return unwrap_template;
}

CK_ULONG hs_custody_unwrap_attrs(bool gap, CK_ATTRIBUTE out[HS_CUSTODY_UNWRAP_ATTRS])
{
    CK_ULONG n = 0;
    for (size_t i = 0; i < HS_CUSTODY_UNWRAP_ATTRS; i++)
        if (!gap || unwrap_template[i].type != CKA_COPYABLE)
            out[n++] = unwrap_template[i];
    return n;
}

void hs_custody_wrapkey_attrs(CK_ATTRIBUTE out[HS_CUSTODY_WRAPKEY_ATTRS],
                              const CK_MECHANISM_TYPE *mech)
{
    const CK_ATTRIBUTE attrs[HS_CUSTODY_WRAPKEY_ATTRS] = {
        {CKA_UNWRAP_TEMPLATE, (void *)unwrap_template, sizeof unwrap_template},
        {CKA_WRAP_TEMPLATE, (void *)wrap_template, sizeof wrap_template},
        {CKA_ALLOWED_MECHANISMS, (void *)mech, sizeof *mech},
        BOOL_ATTR(CKA_COPYABLE, no),
        BOOL_ATTR(CKA_DESTROYABLE, no),
    };
    memcpy(out, attrs, sizeof attrs);
}

void hs_custody_auditkey_private_attrs(CK_ATTRIBUTE out[HS_CUSTODY_AUDITKEY_ATTRS], CK_ULONG *n)
{
    const CK_ATTRIBUTE attrs[HS_CUSTODY_AUDITKEY_ATTRS] = {
        BOOL_ATTR(CKA_SIGN, yes),        BOOL_ATTR(CKA_SIGN_RECOVER, no),
        BOOL_ATTR(CKA_DECRYPT, no),      BOOL_ATTR(CKA_UNWRAP, no),
        BOOL_ATTR(CKA_DERIVE, no),       BOOL_ATTR(CKA_MODIFIABLE, no),
        BOOL_ATTR(CKA_COPYABLE, no),     BOOL_ATTR(CKA_DESTROYABLE, no),
    };
    memcpy(out, attrs, sizeof attrs);
    *n = HS_CUSTODY_AUDITKEY_ATTRS;
}

void hs_custody_auditkey_public_attrs(CK_ATTRIBUTE out[HS_CUSTODY_AUDITKEY_ATTRS], CK_ULONG *n)
{
    const CK_ATTRIBUTE attrs[] = {
        BOOL_ATTR(CKA_VERIFY, yes),  BOOL_ATTR(CKA_VERIFY_RECOVER, no), BOOL_ATTR(CKA_ENCRYPT, no),
        BOOL_ATTR(CKA_WRAP, no),     BOOL_ATTR(CKA_DERIVE, no),         BOOL_ATTR(CKA_MODIFIABLE, no),
        BOOL_ATTR(CKA_DESTROYABLE, no),
    };
    memcpy(out, attrs, sizeof attrs);
    *n = sizeof attrs / sizeof attrs[0];
}

bool hs_custody_attr_unknown(CK_RV rv)
{
    return rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_TEMPLATE_INCONSISTENT ||
           rv == CKR_ATTRIBUTE_VALUE_INVALID;
}

/* --- reading a wrap key back ---------------------------------------------- */

static const char *attr_name(CK_ATTRIBUTE_TYPE t)
{
    switch (t) {
    case CKA_CLASS: return "CKA_CLASS";
    case CKA_TOKEN: return "CKA_TOKEN";
    case CKA_PRIVATE: return "CKA_PRIVATE";
    case CKA_SENSITIVE: return "CKA_SENSITIVE";
    case CKA_EXTRACTABLE: return "CKA_EXTRACTABLE";
    case CKA_MODIFIABLE: return "CKA_MODIFIABLE";
    case CKA_COPYABLE: return "CKA_COPYABLE";
    case CKA_DESTROYABLE: return "CKA_DESTROYABLE";
    case CKA_SIGN: return "CKA_SIGN";
    case CKA_SIGN_RECOVER: return "CKA_SIGN_RECOVER";
    case CKA_ENCRYPT: return "CKA_ENCRYPT";
    case CKA_DECRYPT: return "CKA_DECRYPT";
    case CKA_UNWRAP: return "CKA_UNWRAP";
    case CKA_DERIVE: return "CKA_DERIVE";
    default: return "attribute";
    }
}

static bool same_value(const CK_ATTRIBUTE *want, const CK_ATTRIBUTE *have)
{
    if (want->ulValueLen == sizeof(CK_BBOOL))
        return have->ulValueLen == sizeof(CK_BBOOL) &&
               (*(const CK_BBOOL *)want->pValue != CK_FALSE) ==
                   (*(const CK_BBOOL *)have->pValue != CK_FALSE);
    return have->ulValueLen == want->ulValueLen &&
           memcmp(have->pValue, want->pValue, want->ulValueLen) == 0;
}

/* Every entry of want appears in have with the same value; extra entries
 * in have only make the template stricter. */
static bool covers(const CK_ATTRIBUTE *have, CK_ULONG n_have, const CK_ATTRIBUTE *want,
                   size_t n_want, const CK_ATTRIBUTE **missing)
{
    for (size_t i = 0; i < n_want; i++) {
        bool found = false;
        for (CK_ULONG j = 0; j < n_have && !found; j++)
            found = have[j].type == want[i].type && same_value(&want[i], &have[j]);
        if (!found) {
            *missing = &want[i];
            return false;
        }
    }
    return true;
}

static void weak(hs_custody_report *rep, const char *what)
{
    if (!rep->ok)
        return; /* the first weakness is the one reported */
    rep->ok = false;
    snprintf(rep->problem, sizeof rep->problem, "%s", what);
}

/* have: the attribute's size from the batched read (custody_read). */
static hs_result check_template(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                const CK_ATTRIBUTE *size, const CK_ATTRIBUTE *want, size_t n_want,
                                hs_custody_report *rep, hs_error *e)
{
    const char *name =
        size->type == CKA_UNWRAP_TEMPLATE ? "CKA_UNWRAP_TEMPLATE" : "CKA_WRAP_TEMPLATE";
    CK_ATTRIBUTE *have = NULL;
    CK_ULONG n_have = 0;
    /* Unknown to the token: no template at all. */
    hs_result r = size->ulValueLen == CK_UNAVAILABLE_INFORMATION
                      ? HS_OK
                      : hs_p11_get_attr_array_sized(p, s, h, size->type, size->ulValueLen, &have,
                                                    &n_have, e);
    if (r != HS_OK)
        return r;
    const CK_ATTRIBUTE *missing = NULL;
    char what[160];
    if (n_have == 0) {
        snprintf(what, sizeof what, "it has no %s", name);
        weak(rep, what);
    } else if (!covers(have, n_have, want, n_want, &missing)) {
        snprintf(what, sizeof what, "its %s does not force %s", name, attr_name(missing->type));
        weak(rep, what);
    }
    hs_p11_free_attr_array(have, n_have);
    return HS_OK;
}

/* size: CKA_ALLOWED_MECHANISMS's size from the batched read. A token that
 * does not know the attribute leaves every mechanism allowed: weak. */
static hs_result check_mechanisms(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                  const CK_ATTRIBUTE *size, hs_custody_report *rep, hs_error *e)
{
    uint8_t *v = NULL;
    size_t len = 0;
    if (size->ulValueLen != 0 && size->ulValueLen != CK_UNAVAILABLE_INFORMATION) {
        hs_result r = hs_p11_get_attr_sized(p, s, h, CKA_ALLOWED_MECHANISMS, size->ulValueLen, &v,
                                            &len, e);
        if (r != HS_OK)
            return r;
    }
    size_t n = len / sizeof(CK_MECHANISM_TYPE);
    bool only_wrap = n > 0 && len % sizeof(CK_MECHANISM_TYPE) == 0;
    for (size_t i = 0; i < n && only_wrap; i++) {
        CK_MECHANISM_TYPE m;
        memcpy(&m, v + i * sizeof m, sizeof m);
        only_wrap = hs_kwp_candidate(m);
    }
    free(v);
    if (!only_wrap)
        weak(rep, "its CKA_ALLOWED_MECHANISMS is not limited to the RFC 5649 mechanism "
                  "(CKM_AES_KEY_WRAP_PAD or CKM_AES_KEY_WRAP_KWP)");
    return HS_OK;
}

/* Boolean attributes of the wrap key itself. "unknown" attributes (a
 * PKCS#11 2.20 token has no CKA_COPYABLE or CKA_DESTROYABLE) pass. */
static const struct {
    CK_ATTRIBUTE_TYPE type;
    bool want;
} flags[] = {
    {CKA_SENSITIVE, true},  {CKA_EXTRACTABLE, false}, {CKA_MODIFIABLE, false},
    {CKA_COPYABLE, false},  {CKA_DESTROYABLE, false}, {CKA_ENCRYPT, false},
    {CKA_DECRYPT, false},   {CKA_SIGN, false},        {CKA_DERIVE, false},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

static void check_flags(const CK_ATTRIBUTE *a, hs_custody_report *rep)
{
    for (size_t i = 0; i < N_FLAGS; i++) {
        if (a[i].ulValueLen == CK_UNAVAILABLE_INFORMATION)
            continue;
        bool b = *(const CK_BBOOL *)a[i].pValue != CK_FALSE;
        if (b != flags[i].want) {
            char what[64];
            snprintf(what, sizeof what, "%s is %s", attr_name(flags[i].type),
                     b ? "true" : "false");
            weak(rep, what);
        }
    }
}

/* Everything the inspection reads, in one C_GetAttributeValue on a token
 * that answers a batch (hs_p11_get_attrs): the flags, and the sizes of the
 * two templates and of the mechanism list. 3 to 5 calls in all instead of
 * 18: SoftHSM re-reads the key's file for each. */
enum { AT_UNWRAP = N_FLAGS, AT_WRAP, AT_MECHS, AT_COUNT };

hs_result hs_custody_inspect_wrapkey(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                     hs_custody_report *rep, hs_error *e)
{
    rep->ok = true;
    rep->problem[0] = '\0';
    /* NSS stores a template as the raw CK_ATTRIBUTE array, pointers and
     * all, so reading it back would follow stale pointers; and it
     * enforces none of it (measured: tests/integration/test_nss.sh). */
    if (hs_p11_is_nss(p)) {
        weak(rep, "NSS softokn enforces no CKA_UNWRAP_TEMPLATE, CKA_ALLOWED_MECHANISMS, "
                  "CKA_COPYABLE or CKA_DESTROYABLE");
        return HS_OK;
    }
    CK_BBOOL b[N_FLAGS];
    CK_ATTRIBUTE a[AT_COUNT];
    for (size_t i = 0; i < N_FLAGS; i++)
        a[i] = (CK_ATTRIBUTE){flags[i].type, &b[i], sizeof b[i]};
    a[AT_UNWRAP] = (CK_ATTRIBUTE){CKA_UNWRAP_TEMPLATE, NULL, 0};
    a[AT_WRAP] = (CK_ATTRIBUTE){CKA_WRAP_TEMPLATE, NULL, 0};
    a[AT_MECHS] = (CK_ATTRIBUTE){CKA_ALLOWED_MECHANISMS, NULL, 0};
    hs_result r = hs_p11_get_attrs(p, s, h, a, AT_COUNT, "the wrap key's custody attributes", e);
    /* The first weakness found is the one reported: templates, mechanisms,
     * then flags, as before the batch. */
    if (r == HS_OK)
        r = check_template(p, s, h, &a[AT_UNWRAP], unwrap_template, HS_CUSTODY_UNWRAP_ATTRS, rep,
                           e);
    if (r == HS_OK)
        r = check_template(p, s, h, &a[AT_WRAP], wrap_template,
                           sizeof wrap_template / sizeof wrap_template[0], rep, e);
    if (r == HS_OK)
        r = check_mechanisms(p, s, h, &a[AT_MECHS], rep, e);
    if (r == HS_OK)
        check_flags(a, rep);
    return r;
}

hs_result hs_custody_check_wrapkey(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                   const char *label, hs_error *e)
{
    hs_custody_report rep;
    hs_result r = hs_custody_inspect_wrapkey(p, s, h, &rep, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "wrap key '%s': ", label);
    if (rep.ok)
        return HS_OK;
    if (hs_p11_is_nss(p))
        return hs_fail(e, HS_E_VERIFY,
                       "token '%s': refusing to use wrap key '%s': %s, so anyone with the user "
                       "PIN and a key file can make the token unwrap a signing key as "
                       "extractable and read it. NSS softokn cannot do better; to use it anyway "
                       "give --accept-custody-gap (or HSMSIGN_ACCEPT_CUSTODY_GAP=1; "
                       "docs/tokens.md)",
                       p->label, label, rep.problem);
    return hs_fail(e, HS_E_VERIFY,
                   "token '%s': refusing to use wrap key '%s': %s, so anyone with the user PIN "
                   "and a key file could make the token unwrap that key as extractable and read "
                   "it. Put the same wrap key back with the protections, from k shares: "
                   "`hsmsign ceremony restore --replace-wrap-key --token ... --transcript ... "
                   "--share ...` (docs/ceremony.md); a wrap key from `wrapkey create` has no "
                   "shares and cannot be upgraded: make a new token and new keys",
                   p->label, label, rep.problem);
}
