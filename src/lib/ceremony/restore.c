/* The restore ceremony (see restore.h). */
#include "ceremony/restore.h"

#include "audit/log.h"
#include "audit/record.h"
#include "keystore/yubihsm.h"
#include "p11/profile.h"
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
    /* The log is checked (and created when missing) before the token is
     * touched: a restore that cannot be recorded is not made. */
    hs_auditkey ak = {0};
    hs_audit *a = NULL;
    hs_audit_context ac = {.token_label = p->label, .token_serial = p->serial,
                           .audit_key = &ak, .p11 = p};
    hs_result r = hs_auditkey_find(p, &ak, e);
    if (r == HS_E_NOTFOUND)
        r = hs_fail(e, HS_E_AUDIT,
                    "token '%s' has no audit key ('" HS_AUDITKEY_LABEL "'), so the restore "
                    "cannot be recorded in the audit log %s; nothing was restored. A token "
                    "that replaces the primary needs a new audit key and log: run `hsmsign "
                    "--token '%s' audit restart --reason TEXT` (or `audit init` for a new "
                    "--audit-log) first", p->label, audit_dir, p->label);
    if (r == HS_OK)
        r = hs_audit_open(audit_dir, &ac, &a, e);
    if (r == HS_OK)
        r = hs_audit_check(a, e);
    uint8_t *key = r == HS_OK ? hs_secure_alloc(32) : NULL;
    if (r == HS_OK && key == NULL)
        r = hs_fail(e, HS_E_NOMEM, "out of locked memory for the wrap key");
    if (r == HS_OK)
        r = hs_shareset_recover(shares, t, key, report, e);
    size_t destroyed = 0;
    /* A YubiHSM takes the key as its own wrap key type (keystore/yubihsm.h). */
    hs_profile_choice pc = {0};
    if (r == HS_OK)
        r = hs_profile_select(p, NULL, &pc, e);
    bool yh = r == HS_OK && pc.profile == HS_PROFILE_YUBIHSM;
    if (yh && replace)
        r = hs_fail(e, HS_E_USAGE, "token '%s' is a YubiHSM: --replace-wrap-key upgrades the "
                                   "custody attributes of PKCS#11 wrap keys, which a YubiHSM wrap "
                                   "key does not have", p->label);
    else if (yh)
        r = hs_yh_wrapkey_make(p, t->wrap_label, key, out, e);
    else if (r == HS_OK && !replace)
        r = hs_wrapkey_import(p, t->wrap_label, key, out, e);
    else if (r == HS_OK)
        r = hs_wrapkey_replace(p, t->wrap_label, key, out, &destroyed, e);
    if (key != NULL)
        hs_secure_free(key, 32);
    if (replaced != NULL)
        *replaced = destroyed;
    /* A token without CKA_CHECK_VALUE (NSS) proved it holds the shares'
     * key by unwrapping the key's canary in hs_wrapkey_import. */
    if (r == HS_OK && out->have_kcv && !hs_ct_equal(out->kcv, t->kcv, HS_SHARE_KCV_LEN))
        r = hs_fail(e, HS_E_VERIFY, "token '%s': the restored wrap key's check value differs "
                                    "from the transcript's", p->label);
    hs_audit_entry en = {.operation = "wrapkey-import",
                         .purpose = replace ? "ceremony-replace-wrap-key" : "ceremony-restore",
                         .key_name = t->wrap_label, .algorithm = "aes-256"};
    if (r == HS_OK)
        r = hs_audit_append(a, &en, NULL, e);
    hs_audit_close(a);
    hs_checkpoint_result cp;
    if (r == HS_OK)
        r = hs_auditlog_checkpoint(audit_dir, p, &ak, &cp, e);
    hs_auditkey_clear(&ak);
    return r;
}
