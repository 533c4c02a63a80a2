/* Gathering and checking shares for restore and verification (see
 * shareset.h). */
#include "ceremony/shareset.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/age.h"
#include "util/encoding.h"
#include "util/file.h"
#include "util/secmem.h"

#define SHARE_FILE_MAX (64u * 1024)
#define HEADER "hsmsign-share v"

hs_result hs_shareset_init(hs_shareset *s, hs_error *e)
{
    memset(s, 0, sizeof *s);
    s->shares = hs_secure_alloc(HS_SHARESET_MAX * sizeof *s->shares);
    if (s->shares == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of locked memory for the shares");
    return HS_OK;
}

void hs_shareset_clear(hs_shareset *s)
{
    if (s->shares != NULL)
        hs_share_free_array(s->shares, HS_SHARESET_MAX);
    memset(s, 0, sizeof *s);
}

static void note(hs_shareset *s, const char *fmt, ...) HS_PRINTF(2, 3);
static void note(hs_shareset *s, const char *fmt, ...)
{
    size_t used = strlen(s->notes);
    if (used + 2 >= sizeof s->notes)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->notes + used, sizeof s->notes - used - 1, fmt, ap);
    va_end(ap);
    used = strlen(s->notes);
    s->notes[used] = '\n';
    s->notes[used + 1] = '\0';
}

/* A v2 transcript commits to every share: a share that differs from its
 * commitment is named here, alone, before any interpolation, even when
 * exactly k are given (its checksum proves nothing: anyone who alters a
 * share can recompute it). */
static bool matches_commitment(hs_shareset *s, const hs_transcript *t, const hs_share *sh,
                               const char *source)
{
    hs_error ce;
    /* A damaged share (checksum) is left to recovery, which names it as
     * damaged; the commitment is for shares whose checksum was redone. */
    if (t->version < 2 || hs_share_verify_checksum(sh, &ce) != HS_OK)
        return true;
    for (size_t i = 0; i < t->n_holders; i++) {
        if (t->holders[i].x != sh->x)
            continue;
        uint8_t c[32];
        hs_share_commitment(sh, t->holders[i].salt, c);
        if (hs_ct_equal(c, t->holders[i].commitment, 32))
            return true;
        s->set_aside++;
        s->forged++;
        note(s, "%s (%s): set aside: it does not match the commitment to %s's share (x = %u) "
                "in the signed transcript: altered or forged",
                source, sh->label, t->holders[i].name, sh->x);
        return false;
    }
    s->set_aside++;
    s->forged++;
    note(s, "%s (%s): set aside: the transcript commits to no share with x = %u: forged",
         source, sh->label, sh->x);
    return false;
}

/* Keeps a parsed share if it belongs to the transcript's set. */
static void keep(hs_shareset *s, const hs_transcript *t, const hs_share *sh, const char *source)
{
    char want[2 * HS_SHARE_SET_ID_LEN + 1], got[2 * HS_SHARE_SET_ID_LEN + 1];
    hs_hex_encode(t->set_id, HS_SHARE_SET_ID_LEN, want);
    hs_hex_encode(sh->set_id, HS_SHARE_SET_ID_LEN, got);
    if (memcmp(sh->set_id, t->set_id, HS_SHARE_SET_ID_LEN) != 0) {
        s->set_aside++;
        note(s, "%s (%s): set aside: it belongs to share set %s, this ceremony's is %s (a share "
                "from another ceremony)", source, sh->label, got, want);
        return;
    }
    if (sh->k != t->threshold || sh->n != t->n_holders ||
        memcmp(sh->kcv, t->kcv, HS_SHARE_KCV_LEN) != 0) {
        s->set_aside++;
        note(s, "%s (%s): set aside: its threshold, share count or check value disagree with "
                "the transcript", source, sh->label);
        return;
    }
    if (!matches_commitment(s, t, sh, source))
        return;
    if (s->count >= HS_SHARESET_MAX) {
        s->set_aside++;
        note(s, "%s: set aside: more than %u shares given", source, HS_SHARESET_MAX);
        return;
    }
    s->shares[s->count] = *sh;
    snprintf(s->source[s->count], sizeof s->source[0], "%s", source);
    s->count++;
}

static void add_parsed(hs_shareset *s, const hs_transcript *t, const char *text, size_t len,
                       const char *source)
{
    hs_share *sh = hs_secure_alloc(sizeof *sh);
    hs_error pe;
    if (sh == NULL) {
        s->set_aside++;
        note(s, "%s: set aside: out of locked memory", source);
        return;
    }
    if (hs_share_parse(text, len, source, sh, &pe) != HS_OK) {
        s->set_aside++;
        note(s, "%s: set aside: %s", source, pe.msg);
    } else {
        keep(s, t, sh, source);
    }
    hs_secure_free(sh, sizeof *sh);
}

/* Says which holder's file this is, from its hash in the transcript. */
static void match_hash(hs_shareset *s, const hs_transcript *t, const uint8_t *data, size_t len,
                       const char *path)
{
    uint8_t h[32];
    SHA256(data, len, h);
    for (size_t i = 0; i < t->n_holders; i++)
        if (hs_ct_equal(h, t->holders[i].file.sha256, 32))
            return;
    note(s, "%s: note: not byte-identical to any share file the ceremony wrote (re-encrypted "
            "by its holder, damaged, or from another ceremony)", path);
}

hs_result hs_shareset_add_file(hs_shareset *s, const hs_transcript *t, const char *path,
                               const char *const *identities, size_t n_identities, hs_error *e)
{
    uint8_t *data;
    size_t len;
    hs_result r = hs_read_secret_file(path, SHARE_FILE_MAX, &data, &len, e);
    if (r != HS_OK)
        return r;
    if (len >= strlen(HEADER) && memcmp(data, HEADER, strlen(HEADER)) == 0) {
        add_parsed(s, t, (const char *)data, len, path);
        hs_secure_free(data, len + 1);
        return HS_OK;
    }
    match_hash(s, t, data, len, path);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    hs_error de;
    if (n_identities == 0) {
        s->set_aside++;
        note(s, "%s: set aside: it is age-encrypted and no --identity was given", path);
    } else if ((r = hs_age_decrypt(identities, n_identities, NULL, data, len, &plain, &plain_len,
                                   &de)) != HS_OK) {
        s->set_aside++;
        if (r == HS_E_NOTFOUND)
            note(s, "%s: set aside: none of the given age identities can decrypt it (wrong "
                    "--identity for this share?)", path);
        else
            note(s, "%s: set aside: cannot decrypt it (damaged?): %s", path, de.msg);
    } else {
        add_parsed(s, t, (const char *)plain, plain_len, path);
    }
    if (plain != NULL)
        hs_secure_free(plain, plain_len);
    hs_secure_free(data, len + 1);
    return HS_OK;
}

/* Start of the next share header at a line start, at or after from. */
static size_t next_header(const char *text, size_t len, size_t from)
{
    size_t hl = strlen(HEADER);
    for (size_t i = from; i + hl <= len; i++)
        if ((i == 0 || text[i - 1] == '\n') && memcmp(text + i, HEADER, hl) == 0)
            return i;
    return len;
}

hs_result hs_shareset_add_text(hs_shareset *s, const hs_transcript *t, const char *text,
                               size_t len, const char *source, hs_error *e)
{
    (void)e;
    size_t at = next_header(text, len, 0);
    for (size_t i = 0; i < at; i++) {
        if (text[i] != '\n' && text[i] != ' ') {
            s->set_aside++;
            note(s, "%s: set aside: text before the first share header", source);
            break;
        }
    }
    if (at == len)
        note(s, "%s: no share found (expected \"hsmsign-share v1\" texts)", source);
    for (unsigned nr = 1; at < len; nr++) {
        size_t end = next_header(text, len, at + 1);
        char name[300];
        snprintf(name, sizeof name, "%s share #%u", source, nr);
        add_parsed(s, t, text + at, end - at, name);
        at = end;
    }
    return HS_OK;
}

static void append_sources(const hs_shareset *s, hs_error *e)
{
    size_t used = strlen(e->msg);
    for (size_t i = 0; i < s->count && used + 8 < sizeof e->msg; i++) {
        int w = snprintf(e->msg + used, sizeof e->msg - used, "%sshare %zu = %s%s",
                         i == 0 ? " [" : "; ", i + 1, s->source[i], i + 1 == s->count ? "]" : "");
        if (w < 0)
            break;
        used = strlen(e->msg);
    }
}

hs_result hs_shareset_recover(hs_shareset *s, const hs_transcript *t, uint8_t key[32],
                              hs_share_report *report, hs_error *e)
{
    memset(report, 0, sizeof *report);
    if (s->count < t->threshold) {
        hs_fail(e, HS_E_VERIFY,
                "%zu usable share%s, ceremony '%s' needs %u to restore the wrap key%s", s->count,
                s->count == 1 ? "" : "s", t->name, t->threshold,
                s->set_aside ? " (see the shares set aside above)" : "");
        return HS_E_VERIFY;
    }
    hs_result r = hs_share_recover(s->shares, s->count, key, 32, report, e);
    if (r != HS_OK) {
        append_sources(s, e);
        return r;
    }
    /* Recomputed from the key itself, not taken from the shares. */
    uint8_t kcv[HS_SHARE_KCV_LEN];
    r = hs_share_aes_kcv(key, 32, kcv, e);
    if (r != HS_OK || !hs_ct_equal(kcv, t->kcv, HS_SHARE_KCV_LEN)) {
        hs_wipe(key, 32);
        if (r != HS_OK)
            return r;
        return hs_fail(e, HS_E_VERIFY, "the reconstructed key does not match the transcript's "
                                       "check value");
    }
    return HS_OK;
}

/* Reads a pipe of plain shares into locked memory. */
static hs_result read_fd_secret(int fd, char **out, size_t *len, hs_error *e)
{
    *out = hs_secure_alloc(SHARE_FILE_MAX + 1);
    *len = 0;
    if (*out == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of locked memory");
    for (;;) {
        if (*len >= SHARE_FILE_MAX)
            return hs_fail(e, HS_E_USAGE, "standard input: more than %u bytes of shares",
                           SHARE_FILE_MAX);
        ssize_t n = read(fd, *out + *len, SHARE_FILE_MAX - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hs_fail(e, HS_E_IO, "standard input: %s", strerror(errno));
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    (*out)[*len] = '\0';
    return HS_OK;
}

#define MAX_IDENTITIES 256

static hs_result load_identities(const char *const *paths, size_t n, char ***ids_out,
                                 size_t *counts, size_t *total, const char **flat, hs_error *e)
{
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *text;
        size_t len;
        hs_result r = hs_read_secret_file(paths[i], SHARE_FILE_MAX, &text, &len, e);
        if (r != HS_OK)
            return r;
        r = hs_age_parse_identity_file(text, len, &ids_out[i], &counts[i], e);
        hs_secure_free(text, len + 1);
        if (r != HS_OK)
            return hs_error_prefix(e, "identity file %s: ", paths[i]);
        for (size_t j = 0; j < counts[i]; j++) {
            if (*total >= MAX_IDENTITIES)
                return hs_fail(e, HS_E_USAGE, "more than %d age identities", MAX_IDENTITIES);
            flat[(*total)++] = ids_out[i][j];
        }
    }
    return HS_OK;
}

hs_result hs_shareset_gather(hs_shareset *s, const hs_transcript *t,
                             const char *const *share_paths, size_t n_shares,
                             const char *const *identity_paths, size_t n_identity_files,
                             int stdin_fd, hs_error *e)
{
    if (n_identity_files > HS_SHARESET_MAX || n_shares > HS_SHARESET_MAX)
        return hs_fail(e, HS_E_USAGE, "at most %u share and identity files", HS_SHARESET_MAX);
    char **ids[HS_SHARESET_MAX] = {0};
    size_t counts[HS_SHARESET_MAX] = {0}, total = 0;
    const char *flat[MAX_IDENTITIES];
    hs_result r = load_identities(identity_paths, n_identity_files, ids, counts, &total, flat, e);
    for (size_t i = 0; r == HS_OK && i < n_shares; i++)
        r = hs_shareset_add_file(s, t, share_paths[i], flat, total, e);
    for (size_t i = 0; i < n_identity_files; i++)
        if (ids[i] != NULL)
            hs_age_identities_free(ids[i], counts[i]);
    if (r == HS_OK && stdin_fd >= 0) {
        char *text = NULL;
        size_t len = 0;
        r = read_fd_secret(stdin_fd, &text, &len, e);
        if (r == HS_OK)
            r = hs_shareset_add_text(s, t, text, len, "standard input", e);
        if (text != NULL)
            hs_secure_free(text, SHARE_FILE_MAX + 1);
    }
    return r;
}
