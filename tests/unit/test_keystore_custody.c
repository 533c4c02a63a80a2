/* The wrap key's custody inspection reads its attributes in one batched
 * C_GetAttributeValue (hs_p11_get_attrs) where the token answers a batch
 * as PKCS#11 v2.40 section 5.7 says, and one attribute per call where it
 * does not. Against a fake token (a C_GetAttributeValue over a table),
 * each kind of wrap key gets the same verdict from a conforming token,
 * from one that refuses every batch, and from one that stops at the first
 * unknown attribute of a batch without marking it, and the last two are
 * read one attribute at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keystore/custody.h"
#include "p11/objects.h"

enum mode { CONFORMING, REFUSES_BATCH, STOPS_AT_UNKNOWN };

typedef struct fake_attr {
    CK_ATTRIBUTE_TYPE type;
    const void *val;
    CK_ULONG len;
    bool array; /* an array of CK_ATTRIBUTE (the templates) */
} fake_attr;

static fake_attr key[32];
static size_t n_key;
static enum mode mode;
static unsigned calls, batches;

static const fake_attr *lookup(CK_ATTRIBUTE_TYPE t)
{
    for (size_t i = 0; i < n_key; i++)
        if (key[i].type == t)
            return &key[i];
    return NULL;
}

static CK_RV copy_array(CK_ATTRIBUTE *a, const fake_attr *f)
{
    const CK_ATTRIBUTE *src = f->val;
    CK_ATTRIBUTE *dst = a->pValue;
    for (CK_ULONG i = 0; i < f->len / sizeof(CK_ATTRIBUTE); i++) {
        dst[i].type = src[i].type;
        if (dst[i].pValue != NULL) {
            if (dst[i].ulValueLen < src[i].ulValueLen)
                return CKR_BUFFER_TOO_SMALL;
            memcpy(dst[i].pValue, src[i].pValue, src[i].ulValueLen);
        }
        dst[i].ulValueLen = src[i].ulValueLen;
    }
    return CKR_OK;
}

static CK_RV get_one(CK_ATTRIBUTE *a)
{
    const fake_attr *f = lookup(a->type);
    if (f == NULL) {
        a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return CKR_ATTRIBUTE_TYPE_INVALID;
    }
    if (a->pValue != NULL) {
        if (a->ulValueLen < f->len) {
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            return CKR_BUFFER_TOO_SMALL;
        }
        CK_RV rv = f->array ? copy_array(a, f) : (memcpy(a->pValue, f->val, f->len), CKR_OK);
        if (rv != CKR_OK)
            return rv;
    }
    a->ulValueLen = f->len;
    return CKR_OK;
}

static CK_RV fake_get_attribute_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE *t,
                                      CK_ULONG n)
{
    (void)s;
    (void)o;
    calls++;
    batches += n > 1;
    if (mode == REFUSES_BATCH && n > 1)
        return CKR_FUNCTION_FAILED;
    CK_RV rv = CKR_OK;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ULONG before = t[i].ulValueLen;
        CK_RV r = get_one(&t[i]);
        if (r == CKR_ATTRIBUTE_TYPE_INVALID && mode == STOPS_AT_UNKNOWN) {
            t[i].ulValueLen = before; /* neither marked nor the rest read */
            return r;
        }
        if (r != CKR_OK)
            rv = r;
    }
    return rv;
}

static CK_FUNCTION_LIST fake_fn = {.C_GetAttributeValue = fake_get_attribute_value};

static const CK_BBOOL T = CK_TRUE, F = CK_FALSE;
static const CK_OBJECT_CLASS private_class = CKO_PRIVATE_KEY;
static const CK_ATTRIBUTE wrap_tmpl[] = {{CKA_CLASS, (void *)&private_class, sizeof private_class}};
static CK_MECHANISM_TYPE mechs[2] = {CKM_AES_KEY_WRAP_PAD, CKM_AES_ECB};
static CK_ATTRIBUTE unwrap_tmpl[HS_CUSTODY_UNWRAP_ATTRS];

static void put(CK_ATTRIBUTE_TYPE type, const void *val, CK_ULONG len, bool array)
{
    for (size_t i = 0; i < n_key; i++)
        if (key[i].type == type) {
            key[i] = (fake_attr){type, val, len, array};
            return;
        }
    key[n_key++] = (fake_attr){type, val, len, array};
}

static void drop(CK_ATTRIBUTE_TYPE type)
{
    for (size_t i = 0; i < n_key; i++)
        if (key[i].type == type)
            key[i] = key[--n_key];
}

/* A wrap key as `wrapkey create` makes it. */
static void strong_key(void)
{
    n_key = 0;
    memcpy(unwrap_tmpl, hs_custody_unwrap_template(), sizeof unwrap_tmpl);
    put(CKA_UNWRAP_TEMPLATE, unwrap_tmpl, sizeof unwrap_tmpl, true);
    put(CKA_WRAP_TEMPLATE, wrap_tmpl, sizeof wrap_tmpl, true);
    put(CKA_ALLOWED_MECHANISMS, mechs, sizeof mechs[0], false);
    put(CKA_SENSITIVE, &T, 1, false);
    static const CK_ATTRIBUTE_TYPE off[] = {CKA_EXTRACTABLE, CKA_MODIFIABLE, CKA_COPYABLE,
                                            CKA_DESTROYABLE, CKA_ENCRYPT, CKA_DECRYPT,
                                            CKA_SIGN, CKA_DERIVE};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        put(off[i], &F, 1, false);
}

static void inspect(enum mode m, hs_custody_report *rep)
{
    hs_p11 p;
    memset(&p, 0, sizeof p);
    p.fn = &fake_fn;
    snprintf(p.label, sizeof p.label, "fake");
    hs_error e = {0};
    mode = m;
    calls = batches = 0;
    assert_int_equal(hs_custody_inspect_wrapkey(&p, 1, 2, rep, &e), HS_OK);
}

/* The key the table holds now gets `problem` ("" for none) from all three
 * tokens; the conforming one in a few calls, the others attribute by
 * attribute. */
static void same_verdict(const char *problem)
{
    hs_custody_report rep;
    inspect(CONFORMING, &rep);
    assert_int_equal(rep.ok, problem[0] == '\0');
    assert_string_equal(rep.problem, problem);
    assert_int_equal(batches, 1);
    assert_in_range(calls, 1, 6);
    unsigned conforming_calls = calls;
    /* Whether the batch (9 flags, 3 lists) holds an unknown attribute. */
    static const CK_ATTRIBUTE_TYPE batch[] = {
        CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_MODIFIABLE, CKA_COPYABLE, CKA_DESTROYABLE,
        CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_DERIVE, CKA_UNWRAP_TEMPLATE,
        CKA_WRAP_TEMPLATE, CKA_ALLOWED_MECHANISMS};
    bool unknown = false;
    for (size_t i = 0; i < sizeof batch / sizeof batch[0]; i++)
        unknown |= lookup(batch[i]) == NULL;
    for (enum mode m = REFUSES_BATCH; m <= STOPS_AT_UNKNOWN; m++) {
        inspect(m, &rep);
        assert_int_equal(rep.ok, problem[0] == '\0');
        assert_string_equal(rep.problem, problem);
        /* The batch, then its 12 attributes one at a time; a token that
         * stops at an unknown one answers a batch without one right. */
        bool fallback = m == REFUSES_BATCH || unknown;
        assert_int_equal(calls, conforming_calls + (fallback ? 12 : 0));
    }
}

static void strong_keys_pass(void **state)
{
    (void)state;
    strong_key();
    same_verdict("");
    /* A PKCS#11 2.20 token: no CKA_COPYABLE, no CKA_DESTROYABLE. */
    drop(CKA_COPYABLE);
    drop(CKA_DESTROYABLE);
    same_verdict("");
}

static void weak_flags_are_named(void **state)
{
    (void)state;
    strong_key();
    put(CKA_EXTRACTABLE, &T, 1, false);
    same_verdict("CKA_EXTRACTABLE is true");
    strong_key();
    put(CKA_SENSITIVE, &F, 1, false);
    same_verdict("CKA_SENSITIVE is false");
    /* An unknown attribute before the weak one in the batch. */
    strong_key();
    drop(CKA_COPYABLE);
    put(CKA_DERIVE, &T, 1, false);
    same_verdict("CKA_DERIVE is true");
}

static void weak_templates_and_mechanisms_are_named(void **state)
{
    (void)state;
    strong_key();
    drop(CKA_UNWRAP_TEMPLATE);
    same_verdict("it has no CKA_UNWRAP_TEMPLATE");
    strong_key();
    drop(CKA_WRAP_TEMPLATE);
    drop(CKA_COPYABLE);
    same_verdict("it has no CKA_WRAP_TEMPLATE");
    strong_key();
    put(CKA_UNWRAP_TEMPLATE, unwrap_tmpl, 4 * sizeof unwrap_tmpl[0], true);
    same_verdict("its CKA_UNWRAP_TEMPLATE does not force CKA_EXTRACTABLE");
    strong_key();
    put(CKA_ALLOWED_MECHANISMS, mechs, sizeof mechs, false);
    same_verdict("its CKA_ALLOWED_MECHANISMS is not limited to the RFC 5649 mechanism "
                 "(CKM_AES_KEY_WRAP_PAD or CKM_AES_KEY_WRAP_KWP)");
    strong_key();
    drop(CKA_ALLOWED_MECHANISMS);
    same_verdict("its CKA_ALLOWED_MECHANISMS is not limited to the RFC 5649 mechanism "
                 "(CKM_AES_KEY_WRAP_PAD or CKM_AES_KEY_WRAP_KWP)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strong_keys_pass),
        cmocka_unit_test(weak_flags_are_named),
        cmocka_unit_test(weak_templates_and_mechanisms_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
