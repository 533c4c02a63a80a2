/* Starting an audit log over (see restart.h). */
#include "audit/restart.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/lock.h"
#include "util/file.h"

/* As log.c: far beyond any real log. */
#define MAX_LOG_BYTES ((size_t)1 << 32)
#define MAX_NOTE_BYTES 65536u

/* What the old log holds, read as it is: nothing in it is trusted, it is
 * only described (the checkpoint's signature is checked and the result
 * recorded). */
static hs_result describe_old(const char *dir, const hs_auditkey *key, hs_audit_restart_result *res,
                              uint8_t entries_sha[32], hs_checkpoint *cp, hs_error *e)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/" HS_AUDIT_ENTRIES_FILE, dir);
    uint8_t *data = NULL;
    size_t len = 0;
    hs_result r = access(path, F_OK) != 0 && errno == ENOENT
                      ? ((data = malloc(1)) != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory"))
                      : hs_read_file(path, MAX_LOG_BYTES, &data, &len, e);
    if (r != HS_OK)
        return r;
    SHA256(data, len, entries_sha);
    hs_auditlog log;
    r = hs_auditlog_from_bytes(data, len, &log, e);
    if (r != HS_OK)
        return r;
    res->old_entries = log.count;
    snprintf(path, sizeof path, "%s/" HS_AUDIT_CHECKPOINT_FILE, dir);
    uint8_t *note = NULL;
    size_t note_len = 0;
    hs_error ignored;
    if (access(path, F_OK) == 0 &&
        hs_read_file(path, MAX_NOTE_BYTES, &note, &note_len, &ignored) == HS_OK &&
        hs_checkpoint_parse((const char *)note, note_len, cp, &ignored) == HS_OK) {
        res->old_checkpoint = true;
        res->old_size = cp->size;
        hs_checkpoint checked;
        res->old_verified = hs_auditlog_check_checkpoint(&log, (const char *)note, note_len,
                                                         key->public_key, &checked,
                                                         &ignored) == HS_OK;
    }
    free(note);
    hs_auditlog_free(&log);
    return HS_OK;
}

static hs_result aside_name(const char *dir, char *out, size_t cap, hs_error *e)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    /* Cannot fail: about 16 bytes. */
    (void)strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if ((size_t)snprintf(out, cap, "%.*s.before-restart-%s", (int)n, dir, when) >= cap)
        return hs_fail(e, HS_E_AUDIT, "audit log %s: path too long", dir);
    if (access(out, F_OK) == 0)
        return hs_fail(e, HS_E_EXISTS, "%s already exists: the log was restarted a moment ago; "
                                       "run the command again", out);
    return HS_OK;
}

/* The new log, complete, under the name `aside`. */
static hs_result build_new(const char *aside, const hs_audit_context *ctx, const char *reason,
                           const hs_audit_prior *prior, hs_audit_restart_result *res, hs_error *e)
{
    hs_result r = hs_auditlog_init(aside, ctx->p11, ctx->audit_key, e);
    hs_audit *a = NULL;
    if (r == HS_OK)
        r = hs_audit_open(aside, ctx, &a, e);
    hs_audit_entry en = {.operation = "audit-restart", .reason = reason, .prior = prior};
    if (r == HS_OK)
        r = hs_audit_append(a, &en, NULL, e);
    hs_audit_close(a);
    if (r == HS_OK)
        r = hs_auditlog_checkpoint(aside, ctx->p11, ctx->audit_key, &res->cp, e);
    return r;
}

static hs_result swap_in(const char *dir, const char *aside, hs_error *e)
{
    if (renameat2(AT_FDCWD, aside, AT_FDCWD, dir, RENAME_EXCHANGE) != 0)
        return hs_fail(e, HS_E_AUDIT, "audit log %s: cannot swap in the new log %s: %s (the old "
                                      "log is untouched; the unused new one is in %s)",
                       dir, aside, strerror(errno), aside);
    char *parent = strdup(dir);
    hs_result r = parent != NULL ? hs_fsync_dir(dirname(parent), e)
                                 : hs_fail(e, HS_E_NOMEM, "out of memory");
    free(parent);
    return r;
}

hs_result hs_auditlog_restart(const char *dir, const hs_audit_context *ctx, const char *reason,
                              hs_audit_restart_result *res, hs_error *e)
{
    memset(res, 0, sizeof *res);
    if (ctx->audit_key == NULL || ctx->p11 == NULL)
        return hs_fail(e, HS_E_INTERNAL, "audit restart needs the audit key");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return hs_fail(e, HS_E_NOTFOUND, "audit log %s does not exist: nothing to restart "
                                         "(`hsmsign audit init` creates a log)", dir);
    int lock;
    hs_result r = hs_audit_lock(dir, &lock, e);
    if (r != HS_OK)
        return r;
    uint8_t entries_sha[32];
    hs_checkpoint old;
    memset(&old, 0, sizeof old);
    r = describe_old(dir, ctx->audit_key, res, entries_sha, &old, e);
    if (r == HS_OK)
        r = aside_name(dir, res->old_dir, sizeof res->old_dir, e);
    hs_audit_prior prior = {.dir = res->old_dir, .entries = res->old_entries,
                            .entries_sha256 = entries_sha, .has_checkpoint = res->old_checkpoint,
                            .checkpoint_verified = res->old_verified,
                            .checkpoint_size = res->old_size, .checkpoint_root = old.root};
    if (r == HS_OK)
        r = build_new(res->old_dir, ctx, reason, &prior, res, e);
    if (r == HS_OK)
        r = swap_in(dir, res->old_dir, e);
    hs_audit_unlock(lock);
    return r;
}
