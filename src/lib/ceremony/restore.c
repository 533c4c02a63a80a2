/* The restore ceremony (see restore.h). */
#include "ceremony/restore.h"

#include "audit/record.h"
#include "util/encoding.h"
#include "util/secmem.h"

hs_result hs_ceremony_check_shares(const hs_transcript *t, hs_shareset *shares,
                                   hs_share_report *report, hs_error *e)
{
    uint8_t *key = hs_secure_alloc(32);
    if (key == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of locked memory for the wrap key");
    hs_result r = hs_shareset_recover(shares, t, key, report, e);
    hs_secure_free(key, 32);
    return r;
}

hs_result hs_ceremony_restore(hs_p11 *p, const hs_transcript *t, hs_shareset *shares,
                              const char *audit_dir, bool replace, hs_wrapkey *out,
                              size_t *replaced, hs_share_report *report, hs_error *e)
{
    size_t destroyed = 0;
    uint8_t *key = hs_secure_alloc(32);
    if (key == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of locked memory for the wrap key");
    hs_result r = hs_shareset_recover(shares, t, key, report, e);
    if (r == HS_OK && !replace)
        r = hs_wrapkey_import(p, t->wrap_label, key, out, e);
    else if (r == HS_OK)
        r = hs_wrapkey_replace(p, t->wrap_label, key, out, &destroyed, e);
    hs_secure_free(key, 32);
    if (replaced != NULL)
        *replaced = destroyed;
    if (r == HS_OK && !hs_ct_equal(out->kcv, t->kcv, HS_SHARE_KCV_LEN))
        r = hs_fail(e, HS_E_VERIFY, "token '%s': the restored wrap key's check value differs "
                                    "from the transcript's", p->label);
    if (r != HS_OK)
        return r;
    hs_audit *a;
    hs_audit_context ac = {p->label, p->serial, NULL};
    hs_audit_entry en = {.operation = "wrapkey-import",
                         .purpose = replace ? "ceremony-replace-wrap-key" : "ceremony-restore",
                         .key_name = t->wrap_label, .algorithm = "aes-256"};
    r = hs_audit_open(audit_dir, &ac, &a, e);
    if (r == HS_OK)
        r = hs_audit_append(a, &en, NULL, e);
    hs_audit_close(a);
    return r;
}
