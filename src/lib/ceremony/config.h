/* The provisioning ceremony's configuration file (JSON, docs/ceremony.md):
 * the two tokens, the share holders and threshold, and the recipients of
 * the role credentials. Read strictly: an unknown or missing field, a
 * wrong type, a malformed age recipient, a repeated holder or recipient is
 * an error naming the field. */
#ifndef HSMSIGN_CEREMONY_CONFIG_H
#define HSMSIGN_CEREMONY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "backup/share.h"
#include "keystore/auditkey.h"
#include "util/result.h"

#define HS_CEREMONY_CONFIG_VERSION 1
#define HS_CEREMONY_CONFIG_MAX (1u << 20)
#define HS_CEREMONY_NAME_MAX 128
#define HS_CEREMONY_RECIPIENT_MAX 127 /* an X25519 recipient is 62 characters */
#define HS_CEREMONY_ROLE_MAX 16       /* recipients per role */
#define HS_CEREMONY_TOKEN_SPEC_MAX 511

typedef struct hs_ceremony_holder {
    char name[HS_SHARE_LABEL_MAX + 1];
    char recipient[HS_CEREMONY_RECIPIENT_MAX + 1];
} hs_ceremony_holder;

typedef struct hs_ceremony_recipients {
    size_t n;
    char r[HS_CEREMONY_ROLE_MAX][HS_CEREMONY_RECIPIENT_MAX + 1];
} hs_ceremony_recipients;

typedef enum hs_ceremony_role { HS_ROLE_ADMIN, HS_ROLE_OPERATOR, HS_ROLE_AUDITOR, HS_ROLE_COUNT } hs_ceremony_role;

/* "admin", "operator", "auditor". */
const char *hs_ceremony_role_name(hs_ceremony_role role);

typedef struct hs_ceremony_config {
    char name[HS_CEREMONY_NAME_MAX + 1];
    char primary[HS_CEREMONY_TOKEN_SPEC_MAX + 1]; /* token URI or label */
    char backup[HS_CEREMONY_TOKEN_SPEC_MAX + 1];
    unsigned threshold;
    size_t n_holders;
    hs_ceremony_holder holders[HS_SHARE_MAX_SHARES];
    hs_ceremony_recipients roles[HS_ROLE_COUNT];
    char wrap_label[64];       /* default HS_WRAPKEY_DEFAULT_LABEL */
    hs_auditkey_alg audit_alg; /* default HS_AUDITKEY_AUTO */
    bool holders_may_hold_roles; /* "holders-may-hold-roles": explicit, recorded */
    char warning[160];           /* empty, or to show before the ceremony (k = n) */
} hs_ceremony_config;

/* Parses and validates a config. source names it in messages. *out is
 * malloc'd (free with free()). */
hs_result hs_ceremony_config_parse(const char *text, size_t len, const char *source,
                                   hs_ceremony_config **out, hs_error *e) HS_MUST_CHECK;

/* hs_read_file + hs_ceremony_config_parse. */
hs_result hs_ceremony_config_load(const char *path, hs_ceremony_config **out,
                                  hs_error *e) HS_MUST_CHECK;

#endif
