#include "audit/record.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/git.h"
#include "audit/lock.h"
#include "audit/log.h"
#include "util/encoding.h"
#include "util/file.h"

struct hs_audit {
    char *dir;
    char *entries_path;
    char token_label[64], token_serial[32], batch_id[40];
    char user[64], host[256];
    const hs_auditkey *key;
    size_t appended;
    /* Entries that call for a signed checkpoint (not "reuse" or "output"),
     * in all and at this handle's last checkpoint: docs/audit-log.md,
     * "Deferred checkpoints". */
    size_t fresh, fresh_checkpointed;
    bool gated;    /* the gate passed under the lock of an earlier append */
    bool unsynced; /* appended with hs_audit_append_deferred, not yet fsynced */
};

static void fill_operator(hs_audit *a)
{
    /* The reentrant form: the library hashes on threads, and getpwuid's
     * static result could be overwritten by a lookup in another one. */
    struct passwd pwd, *pw = NULL;
    char buf[4096];
    if (getpwuid_r(geteuid(), &pwd, buf, sizeof buf, &pw) != 0)
        pw = NULL;
    snprintf(a->user, sizeof a->user, "%s", pw != NULL ? pw->pw_name : "?");
    if (gethostname(a->host, sizeof a->host) != 0)
        snprintf(a->host, sizeof a->host, "?");
    a->host[sizeof a->host - 1] = '\0';
}

hs_result hs_audit_open(const char *dir, const hs_audit_context *ctx, hs_audit **out, hs_error *e)
{
    *out = NULL;
    hs_auditkey_alg alg;
    /* A token that cannot hold an audit key at all: say which mechanisms it
     * lacks rather than send the user to `audit init`, which would fail. */
    if (ctx != NULL && ctx->p11 != NULL &&
        (ctx->audit_key == NULL || ctx->audit_key->public_key == NULL) &&
        hs_auditkey_choose_alg(ctx->p11, HS_AUDITKEY_AUTO, &alg, e) != HS_OK) {
        e->code = HS_E_AUDIT;
        return hs_error_prefix(e, "audit log %s: ", dir);
    }
    if (ctx == NULL || ctx->audit_key == NULL || ctx->audit_key->public_key == NULL)
        return hs_fail(e, HS_E_AUDIT,
                       "audit log %s: token '%s' has no audit key ('" HS_AUDITKEY_LABEL "') to "
                       "check and sign the log, so nothing is signed; create it with `hsmsign "
                       "ceremony provision`, `hsmsign audit init` or `hsmsign audit restart` (or "
                       "`hsmsign wrapkey create` on a development token)",
                       dir, ctx != NULL && ctx->token_label ? ctx->token_label : "?");
    struct stat st;
    bool exists = stat(dir, &st) == 0;
    if (!exists && errno != ENOENT)
        return hs_fail(e, HS_E_AUDIT, "audit log %s: %s", dir, strerror(errno));
    if (exists && !S_ISDIR(st.st_mode))
        return hs_fail(e, HS_E_AUDIT, "audit log %s: not a directory", dir);
    /* Only a directory that does not exist is created implicitly. */
    hs_result r = HS_OK;
    if (!exists)
        r = ctx->p11 != NULL ? hs_auditlog_init(dir, ctx->p11, ctx->audit_key, e)
                             : hs_fail(e, HS_E_AUDIT, "audit log %s does not exist", dir);
    if (r != HS_OK) {
        if (r != HS_E_NOMEM)
            e->code = r = HS_E_AUDIT;
        return hs_error_prefix(e, "audit log %s: cannot create it: ", dir);
    }
    hs_audit *a = calloc(1, sizeof *a);
    if (a == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    a->key = ctx->audit_key;
    a->dir = strdup(dir);
    if (a->dir == NULL || asprintf(&a->entries_path, "%s/" HS_AUDIT_ENTRIES_FILE, dir) < 0) {
        hs_audit_close(a);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    snprintf(a->token_label, sizeof a->token_label, "%s", ctx->token_label ? ctx->token_label : "");
    snprintf(a->token_serial, sizeof a->token_serial, "%s", ctx->token_serial ? ctx->token_serial : "");
    if (ctx->batch_id != NULL) {
        snprintf(a->batch_id, sizeof a->batch_id, "%s", ctx->batch_id);
    } else {
        uint8_t id[16];
        if (RAND_bytes(id, sizeof id) != 1) {
            hs_audit_close(a);
            return hs_fail(e, HS_E_CRYPTO, "cannot draw a batch id");
        }
        hs_hex_encode(id, sizeof id, a->batch_id);
    }
    fill_operator(a);
    *out = a;
    return HS_OK;
}

void hs_audit_close(hs_audit *a)
{
    if (a == NULL)
        return;
    hs_error ignored = {0};
    if (hs_audit_sync(a, &ignored) != HS_OK) {
        /* Best effort: nothing these entries cover was released. */
    }
    hs_auditgit_warm_wait();
    free(a->dir);
    free(a->entries_path);
    free(a);
}

size_t hs_audit_appended(const hs_audit *a)
{
    return a->appended;
}

bool hs_audit_op_defers_checkpoint(const char *operation)
{
    return operation != NULL &&
           (strcmp(operation, HS_AUDIT_OP_REUSE) == 0 || strcmp(operation, HS_AUDIT_OP_OUTPUT) == 0);
}

bool hs_audit_checkpoint_due(const hs_audit *a)
{
    return a->fresh > a->fresh_checkpointed;
}

void hs_audit_checkpoint_done(hs_audit *a)
{
    a->fresh_checkpointed = a->fresh;
}

size_t hs_audit_fresh(const hs_audit *a)
{
    return a->fresh;
}

const char *hs_audit_dir(const hs_audit *a)
{
    return a->dir;
}

const char *hs_audit_batch_id(const hs_audit *a)
{
    return a->batch_id;
}

static void set_hex(json_t *obj, const char *key, const uint8_t *d)
{
    if (d == NULL)
        return;
    char hex[65];
    hs_hex_encode(d, 32, hex);
    json_object_set_new(obj, key, json_string(hex));
}

static void set_str(json_t *obj, const char *key, const char *v)
{
    if (v != NULL)
        json_object_set_new(obj, key, json_string(v));
}

/* Reads the sequence number of the last complete entry, and cuts off an
 * incomplete last line (a crash mid-append: never acknowledged). */
static hs_result next_seq(hs_audit *a, int fd, uint64_t *seq, hs_error *e)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return hs_fail(e, HS_E_AUDIT, "audit log %s: %s", a->entries_path, strerror(errno));
    *seq = 0;
    if (st.st_size == 0)
        return HS_OK;
    size_t tail = st.st_size < 65536 ? (size_t)st.st_size : 65536;
    char *buf = malloc(tail + 1);
    if (buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    off_t start = st.st_size - (off_t)tail;
    ssize_t got = pread(fd, buf, tail, start);
    if (got != (ssize_t)tail) {
        free(buf);
        return hs_fail(e, HS_E_AUDIT, "audit log %s: cannot read its end", a->entries_path);
    }
    buf[tail] = '\0';
    size_t end = tail;
    while (end > 0 && buf[end - 1] != '\n')
        end--;
    if (end != tail) {
        if (ftruncate(fd, start + (off_t)end) != 0) {
            free(buf);
            return hs_fail(e, HS_E_AUDIT, "audit log %s: cannot cut an incomplete last entry: %s",
                           a->entries_path, strerror(errno));
        }
    }
    if (end == 0) {
        free(buf);
        if (start == 0)
            return HS_OK;
        return hs_fail(e, HS_E_AUDIT, "audit log %s: last entry longer than 64 KiB", a->entries_path);
    }
    buf[end - 1] = '\0';
    char *line = strrchr(buf, '\n');
    line = line != NULL ? line + 1 : buf;
    json_t *last = json_loads(line, 0, NULL);
    json_t *s = last != NULL ? json_object_get(last, "seq") : NULL;
    hs_result r = HS_OK;
    if (!json_is_integer(s) || json_integer_value(s) < 0)
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: last entry is not a valid entry", a->entries_path);
    else
        *seq = (uint64_t)json_integer_value(s) + 1;
    json_decref(last);
    free(buf);
    return r;
}

static json_t *prior_json(const hs_audit_prior *p)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    set_str(o, "dir", p->dir);
    json_object_set_new(o, "entries", json_integer((json_int_t)p->entries));
    set_hex(o, "entries_sha256", p->entries_sha256);
    if (p->has_checkpoint) {
        json_object_set_new(o, "checkpoint_size", json_integer((json_int_t)p->checkpoint_size));
        set_hex(o, "checkpoint_root", p->checkpoint_root);
        json_object_set_new(o, "checkpoint_verified", json_boolean(p->checkpoint_verified));
    }
    return o;
}

static char *format_entry(const hs_audit *a, const hs_audit_entry *en, uint64_t seq)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    /* Cannot fail: the longest result (a 5+ digit year) is far below 32. */
    (void)strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "v", json_integer(HS_AUDIT_FORMAT_VERSION));
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    set_str(o, "time", when);
    set_str(o, "op", en->operation);
    set_str(o, "purpose", en->purpose);
    set_str(o, "key", en->key_name);
    set_hex(o, "key_sha256", en->key_fingerprint);
    set_str(o, "alg", en->algorithm);
    set_hex(o, "tbs_sha256", en->tbs_sha256);
    set_hex(o, "sig_sha256", en->sig_sha256);
    set_str(o, "artifact", en->artifact);
    set_hex(o, "input_sha256", en->input_sha256);
    set_hex(o, "output_sha256", en->output_sha256);
    set_str(o, "batch", a->batch_id);
    set_str(o, "user", a->user);
    set_str(o, "host", a->host);
    set_str(o, "token", a->token_label);
    set_str(o, "token_serial", a->token_serial);
    set_str(o, "tool", "hsmsign " HSMSIGN_VERSION);
    set_str(o, "reason", en->reason);
    if (en->prior != NULL)
        json_object_set_new(o, "prior_log", prior_json(en->prior));
    if (en->reuse_of_seq != NULL)
        json_object_set_new(o, "reuse_of", json_pack("{s:I, s:s?}", "seq",
                                                     (json_int_t)*en->reuse_of_seq, "batch",
                                                     en->reuse_of_batch));
    char *text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return text;
}

static hs_result gate(hs_audit *a, hs_error *e)
{
    if (a->gated)
        return HS_OK;
    hs_result r = hs_auditlog_gate(a->dir, a->key->public_key, e);
    a->gated = r == HS_OK;
    return r;
}

hs_result hs_audit_check(hs_audit *a, hs_error *e)
{
    int lock;
    hs_result r = hs_audit_lock(a->dir, &lock, e);
    if (r != HS_OK)
        return r;
    r = gate(a, e);
    hs_audit_unlock(lock);
    return r;
}

/* The entries file as this process last made it durable: its inode and
 * its length at an fdatasync made under the log's lock. The file only
 * grows (O_APPEND) or loses an incomplete last line (next_seq), never
 * below the end of the last complete one, which every durable length is;
 * it is only replaced under a new inode. So the same inode at that same
 * length holds exactly the bytes that fdatasync made durable (whoever
 * wrote them: fdatasync flushes every page of the file), and a second
 * fdatasync would have nothing to write: the checkpoint after a signing
 * command's own synced append skips it. One slot: the last file synced. */
static struct {
    pthread_mutex_t mu;
    bool set;
    dev_t dev;
    ino_t ino;
    off_t size;
} durable = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Called after a successful fdatasync of fd, under the log's lock, the
 * file ending in the newline of the entry just written: never a length
 * that ends in someone's incomplete line, which next_seq could cut and an
 * append refill to the same length with bytes not yet durable. */
static void note_durable(int fd)
{
    struct stat st;
    bool ok = fstat(fd, &st) == 0;
    pthread_mutex_lock(&durable.mu);
    durable.set = ok;
    durable.dev = st.st_dev;
    durable.ino = st.st_ino;
    durable.size = st.st_size;
    pthread_mutex_unlock(&durable.mu);
}

static bool is_durable(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return false;
    pthread_mutex_lock(&durable.mu);
    bool same = durable.set && durable.dev == st.st_dev && durable.ino == st.st_ino &&
                durable.size == st.st_size;
    pthread_mutex_unlock(&durable.mu);
    return same;
}

static hs_result append(hs_audit *a, const hs_audit_entry *en, uint64_t *seq_out, bool sync,
                        hs_error *e)
{
    int lock;
    hs_result r = hs_audit_lock(a->dir, &lock, e);
    if (r != HS_OK) {
        hs_error_prefix(e, "audit record not written, so the result was discarded: ");
        return r;
    }
    char *line = NULL;
    int fd = -1;
    /* Once per handle, under this lock: nothing is appended to, and so no
     * signature released over, a log that does not hold. */
    r = gate(a, e);
    if (r != HS_OK) {
        hs_error_prefix(e, "nothing recorded, so nothing is released: ");
        goto out;
    }
    bool created = access(a->entries_path, F_OK) != 0;
    fd = open(a->entries_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: cannot open: %s", a->entries_path, strerror(errno));
        goto out;
    }
    uint64_t seq = 0;
    r = next_seq(a, fd, &seq, e);
    if (r != HS_OK)
        goto out;
    line = format_entry(a, en, seq);
    if (line == NULL) {
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
        goto out;
    }
    size_t n = strlen(line);
    line[n] = '\n'; /* replaces the NUL; written as one write() */
    r = hs_write_fd_all(fd, line, n + 1, a->entries_path, e);
    /* One fdatasync covers every earlier deferred append of the file too. */
    if (r == HS_OK && (sync || created) && fdatasync(fd) != 0)
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: fsync failed: %s", a->entries_path, strerror(errno));
    if (r == HS_OK && created)
        r = hs_fsync_dir(a->dir, e);
    if (r != HS_OK) {
        e->code = r = HS_E_AUDIT;
        hs_error_prefix(e, "audit record not written, so the result was discarded: ");
    } else {
        a->appended++;
        if (!hs_audit_op_defers_checkpoint(en->operation)) {
            a->fresh++;
            hs_auditgit_warm_up(); /* a checkpoint, and so a commit, is due */
        }
        a->unsynced = !(sync || created);
        if (!a->unsynced)
            note_durable(fd); /* under the lock, ending in this entry's newline */
        if (seq_out != NULL)
            *seq_out = seq;
    }
out:
    if (fd >= 0)
        close(fd);
    free(line);
    hs_audit_unlock(lock);
    return r;
}

hs_result hs_audit_append(hs_audit *a, const hs_audit_entry *en, uint64_t *seq_out, hs_error *e)
{
    return append(a, en, seq_out, true, e);
}

hs_result hs_audit_append_deferred(hs_audit *a, const hs_audit_entry *en, uint64_t *seq_out,
                                   hs_error *e)
{
    return append(a, en, seq_out, false, e);
}

/* Makes every byte the file holds now durable. Only checks the slot,
 * never fills it: outside append, the file may end in an incomplete line. */
static hs_result fsync_path(const char *path, hs_error *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    hs_result r = HS_OK;
    if (fd >= 0 && is_durable(fd))
        goto out;
    if (fd < 0 || fdatasync(fd) != 0)
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: fsync failed: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    return r;
}

hs_result hs_audit_fsync_entries(const char *dir, hs_error *e)
{
    char path[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, HS_AUDIT_ENTRIES_FILE) >= sizeof path)
        return hs_fail(e, HS_E_AUDIT, "audit log %s: path too long", dir);
    return fsync_path(path, e);
}

hs_result hs_audit_sync(hs_audit *a, hs_error *e)
{
    if (a == NULL || !a->unsynced)
        return HS_OK;
    hs_result r = fsync_path(a->entries_path, e);
    if (r == HS_OK)
        a->unsynced = false;
    return r;
}
