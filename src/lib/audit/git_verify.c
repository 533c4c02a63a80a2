/* `audit verify --git`: the log's git history was only appended to (see
 * git.h). Every commit's entries and checkpoint are read through one
 * `git cat-file --batch` process rather than two processes per commit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/checkpoint.h"
#include "audit/git.h"
#include "audit/git_run.h"
#include "audit/log.h"
#include "audit/record.h"

#define MAX_BLOB ((size_t)1 << 32)

/* Buffered reads of cat-file's output. */
typedef struct reader {
    int fd;
    uint8_t buf[65536];
    size_t pos, len;
} reader;

static hs_result fill(reader *rd, hs_error *e)
{
    for (;;) {
        ssize_t n = read(rd->fd, rd->buf, sizeof rd->buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hs_fail(e, HS_E_IO, "git cat-file: %s", strerror(errno));
        if (n == 0)
            return hs_fail(e, HS_E_IO, "git cat-file: output ended early");
        rd->pos = 0;
        rd->len = (size_t)n;
        return HS_OK;
    }
}

static hs_result read_exact(reader *rd, uint8_t *out, size_t n, hs_error *e)
{
    while (n > 0) {
        if (rd->pos == rd->len) {
            hs_result r = fill(rd, e);
            if (r != HS_OK)
                return r;
        }
        size_t take = rd->len - rd->pos < n ? rd->len - rd->pos : n;
        memcpy(out, rd->buf + rd->pos, take);
        rd->pos += take;
        out += take;
        n -= take;
    }
    return HS_OK;
}

static hs_result read_line(reader *rd, char *line, size_t cap, hs_error *e)
{
    size_t n = 0;
    for (;;) {
        uint8_t c;
        hs_result r = read_exact(rd, &c, 1, e);
        if (r != HS_OK)
            return r;
        if (c == '\n')
            break;
        if (n + 1 >= cap)
            return hs_fail(e, HS_E_IO, "git cat-file: header line too long");
        line[n++] = (char)c;
    }
    line[n] = '\0';
    return HS_OK;
}

/* "<oid> blob <size>" into *size. strtoull, unlike sscanf's %llu, reports
 * overflow and trailing bytes instead of leaving them undefined or ignored. */
static bool parse_blob_header(const char *line, unsigned long long *size)
{
    const char *sp = strchr(line, ' ');
    if (sp == NULL || strncmp(sp + 1, "blob ", 5) != 0)
        return false;
    const char *num = sp + 6;
    if (*num < '0' || *num > '9')
        return false;
    char *end;
    errno = 0;
    *size = strtoull(num, &end, 10);
    return errno == 0 && *end == '\0';
}

/* One answer of `git cat-file --batch`: "<oid> blob <size>\n<bytes>\n",
 * or "<name> missing\n", which reads as an empty file. */
static hs_result next_blob(reader *rd, uint8_t **out, size_t *len, hs_error *e)
{
    char line[512];
    hs_result r = read_line(rd, line, sizeof line, e);
    if (r != HS_OK)
        return r;
    *len = 0;
    size_t n = strlen(line);
    bool missing = n >= 8 && strcmp(line + n - 8, " missing") == 0;
    unsigned long long size = 0;
    if (!missing && (!parse_blob_header(line, &size) || size > MAX_BLOB))
        return hs_fail(e, HS_E_IO, "git cat-file: unexpected answer '%s'", line);
    *out = malloc((size_t)size + 1);
    if (*out == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    uint8_t nl;
    r = missing ? HS_OK : read_exact(rd, *out, (size_t)size, e);
    if (r == HS_OK && !missing)
        r = read_exact(rd, &nl, 1, e);
    if (r != HS_OK) {
        free(*out);
        *out = NULL;
        return r;
    }
    (*out)[size] = '\0';
    *len = (size_t)size;
    return HS_OK;
}

/* One state of the log: a commit, or the working tree. */
typedef struct state {
    hs_auditlog log;
    uint8_t *note;
    size_t note_len;
} state;

static void state_free(state *s)
{
    hs_auditlog_free(&s->log);
    free(s->note);
    memset(s, 0, sizeof *s);
}

static hs_result load_state(reader *rd, state *s, hs_error *e)
{
    memset(s, 0, sizeof *s);
    uint8_t *entries;
    size_t len;
    hs_result r = next_blob(rd, &entries, &len, e);
    if (r == HS_OK)
        r = hs_auditlog_from_bytes(entries, len, &s->log, e);
    if (r == HS_OK)
        r = next_blob(rd, &s->note, &s->note_len, e);
    if (r != HS_OK)
        state_free(s);
    return r;
}

/* cur must extend prev: byte prefix, and a checkpoint no smaller. */
static hs_result check_step(const char *dir, const char *rev, const state *prev, const state *cur,
                            uint64_t *last_size, EVP_PKEY *pub, hs_error *e)
{
    if (cur->log.len < prev->log.len ||
        (prev->log.len > 0 && memcmp(cur->log.data, prev->log.data, prev->log.len) != 0))
        return hs_fail(e, HS_E_VERIFY, "audit log %s: commit %.12s does not extend the entries of "
                                       "its parent: history was rewritten", dir, rev);
    if (cur->note_len == 0)
        return HS_OK;
    hs_checkpoint cp;
    hs_result r = hs_auditlog_check_checkpoint(&cur->log, (const char *)cur->note, cur->note_len,
                                               pub, &cp, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "audit log %s: commit %.12s: ", dir, rev);
    if (cp.size < *last_size)
        return hs_fail(e, HS_E_VERIFY, "audit log %s: commit %.12s: checkpoint size %llu is smaller "
                                       "than its predecessor's %llu", dir, rev,
                       (unsigned long long)cp.size, (unsigned long long)*last_size);
    *last_size = cp.size;
    return HS_OK;
}

/* The requests for cat-file, two per commit, in a temporary file: writing
 * them to a pipe while reading the answers would need two threads. */
static hs_result write_requests(char *revs, FILE **out, size_t *count, hs_error *e)
{
    *count = 0;
    FILE *f = tmpfile();
    if (f == NULL)
        return hs_fail(e, HS_E_IO, "cannot create a temporary file: %s", strerror(errno));
    for (char *p = revs; *p;) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (*p != '\0') {
            /* Unchecked: a failed write sets f's error flag, tested below. */
            fprintf(f, "%s:" HS_AUDIT_ENTRIES_FILE "\n%s:" HS_AUDIT_CHECKPOINT_FILE "\n", p, p);
            (*count)++;
        }
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    if (fflush(f) != 0 || ferror(f) || fseek(f, 0, SEEK_SET) != 0) {
        (void)fclose(f); /* a temporary file being abandoned: nothing to save */
        return hs_fail(e, HS_E_IO, "cannot write a temporary file: %s", strerror(errno));
    }
    *out = f;
    return HS_OK;
}

static hs_result walk_commits(const char *dir, char *revs, size_t count, reader *rd,
                              EVP_PKEY *pub, state *prev, uint64_t *last_size, size_t *commits,
                              hs_error *e)
{
    hs_result r = HS_OK;
    const char *rev = revs;
    for (size_t i = 0; r == HS_OK && i < count; i++) {
        state cur;
        r = load_state(rd, &cur, e);
        if (r == HS_OK)
            r = check_step(dir, rev, prev, &cur, last_size, pub, e);
        state_free(prev);
        *prev = cur;
        if (r == HS_OK)
            (*commits)++;
        rev += strlen(rev) + 1;
    }
    return r;
}

hs_result hs_auditgit_verify(const char *dir, EVP_PKEY *pub, size_t *commits, hs_error *e)
{
    *commits = 0;
    uint8_t *list;
    size_t list_len, count = 0;
    const char *revs[] = {"rev-list", "--reverse", "--first-parent", "HEAD", NULL};
    hs_result r = hs_git_run(dir, revs, &list, &list_len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "no git history to verify: ");
    FILE *requests = NULL;
    r = write_requests((char *)list, &requests, &count, e);
    hs_git_proc proc = {-1, -1};
    const char *batch[] = {"cat-file", "--batch", NULL};
    if (r == HS_OK)
        r = hs_git_spawn(dir, batch, fileno(requests), true, &proc, e);
    state prev;
    memset(&prev, 0, sizeof prev);
    uint64_t last_size = 0;
    reader *rd = malloc(sizeof *rd);
    if (r == HS_OK && rd == NULL)
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    if (r == HS_OK) {
        rd->fd = proc.out_fd;
        rd->pos = rd->len = 0;
        r = walk_commits(dir, (char *)list, count, rd, pub, &prev, &last_size, commits, e);
    }
    int status = hs_git_wait(&proc);
    if (r == HS_OK && status != 0)
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: `git cat-file` failed (exit %d)", dir, status);
    /* The working tree may hold entries appended since the last commit,
     * never fewer. */
    if (r == HS_OK) {
        state cur;
        memset(&cur, 0, sizeof cur);
        r = hs_auditlog_load(dir, &cur.log, e);
        if (r == HS_OK)
            r = check_step(dir, "(working tree)", &prev, &cur, &last_size, pub, e);
        state_free(&cur);
    }
    state_free(&prev);
    free(rd);
    if (requests != NULL)
        (void)fclose(requests); /* only read from: closing loses nothing */
    free(list);
    return r;
}
