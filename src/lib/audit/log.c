/* The tamper-evident audit log (see log.h). */
#include "audit/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <pthread.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/canon.h"
#include "audit/git.h"
#include "audit/lock.h"
#include "audit/note.h"
#include "audit/record.h"
#include "audit/state.h"
#include "util/encoding.h"
#include "util/file.h"
#include "util/stale_tmp.h"

/* Far beyond any real log; bounds what a corrupt file makes us allocate. */
#define MAX_LOG_BYTES ((size_t)1 << 32)
#define MAX_NOTE_BYTES 65536u

void hs_auditlog_free(hs_auditlog *log)
{
    if (log == NULL)
        return;
    free(log->data);
    free(log->offsets);
    free(log->leaves);
    memset(log, 0, sizeof *log);
}

const char *hs_auditlog_entry(const hs_auditlog *log, size_t i, size_t *len)
{
    *len = log->offsets[i + 1] - log->offsets[i] - 1;
    return (const char *)log->data + log->offsets[i];
}

hs_result hs_auditlog_roots(const hs_auditlog *log, const uint64_t *sizes, size_t n,
                            uint8_t *out, hs_error *e)
{
    hs_auditstate st;
    hs_auditstate_init(&st);
    hs_result r = HS_OK;
    for (size_t k = 0; r == HS_OK && k < n; k++) {
        if (sizes[k] > log->count || (k > 0 && sizes[k] < sizes[k - 1]))
            return hs_fail(e, HS_E_INTERNAL, "audit log: roots asked out of order");
        while (r == HS_OK && st.size < sizes[k])
            r = hs_auditstate_push_leaf(&st, log->leaves + st.size * HS_MERKLE_HASH_LEN, 0, e);
        if (r == HS_OK)
            r = hs_auditstate_root(&st, out + k * HS_MERKLE_HASH_LEN, e);
    }
    return r;
}

/* Hashing and parsing a large log is spread over the CPUs: each thread
 * takes a contiguous span of entries. The first failure in log order is
 * the one reported, as a single thread would. */
#define MAX_SPANS 8
#define MIN_SPAN 4096

typedef struct span {
    const hs_auditlog *log;
    uint8_t *leaves;
    size_t begin, end;
    hs_result r;
    hs_error e;
} span;

static void *hash_span(void *arg)
{
    span *s = arg;
    hs_merkle_hasher *h = NULL;
    s->r = hs_merkle_hasher_new(&h, &s->e);
    for (size_t i = s->begin; s->r == HS_OK && i < s->end; i++)
        s->r = hs_merkle_hasher_leaf(h, s->log->data + s->log->offsets[i],
                                     s->log->offsets[i + 1] - s->log->offsets[i] - 1,
                                     s->leaves + i * HS_MERKLE_HASH_LEN, &s->e);
    hs_merkle_hasher_free(h);
    return NULL;
}

static void *check_span(void *arg)
{
    span *s = arg;
    s->r = HS_OK;
    for (size_t i = s->begin; s->r == HS_OK && i < s->end; i++) {
        size_t len;
        const char *line = hs_auditlog_entry(s->log, i, &len);
        s->r = hs_auditlog_check_entry(line, len, i, &s->e);
    }
    return NULL;
}

/* Runs fn over [0, log->count) in up to MAX_SPANS spans, the first in
 * this thread; a thread that cannot be started has its span run here. */
static hs_result run_spans(const hs_auditlog *log, uint8_t *leaves, void *(*fn)(void *),
                           hs_error *e)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = log->count / MIN_SPAN + 1;
    if (n > MAX_SPANS)
        n = MAX_SPANS;
    if (cpus > 0 && n > (size_t)cpus)
        n = (size_t)cpus;
    span spans[MAX_SPANS];
    pthread_t tids[MAX_SPANS];
    bool started[MAX_SPANS] = {false};
    for (size_t k = 0; k < n; k++) {
        spans[k] = (span){.log = log, .leaves = leaves, .begin = log->count * k / n,
                          .end = log->count * (k + 1) / n, .r = HS_OK};
        hs_error_clear(&spans[k].e);
    }
    for (size_t k = 1; k < n; k++)
        started[k] = pthread_create(&tids[k], NULL, fn, &spans[k]) == 0;
    fn(&spans[0]);
    for (size_t k = 1; k < n; k++) {
        if (started[k])
            pthread_join(tids[k], NULL);
        else
            fn(&spans[k]);
    }
    for (size_t k = 0; k < n; k++)
        if (spans[k].r != HS_OK) {
            *e = spans[k].e;
            return spans[k].r;
        }
    return HS_OK;
}

hs_result hs_auditlog_from_bytes(uint8_t *data, size_t len, hs_auditlog *log, hs_error *e)
{
    memset(log, 0, sizeof *log);
    log->data = data;
    size_t complete = len;
    while (complete > 0 && data[complete - 1] != '\n')
        complete--;
    log->torn = complete != len;
    log->len = complete;
    size_t lines = 0;
    for (const uint8_t *p = data, *end = data + complete;
         p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        lines++;
    log->offsets = malloc((lines + 1) * sizeof *log->offsets);
    log->leaves = malloc(lines * HS_MERKLE_HASH_LEN + 1);
    if (log->offsets == NULL || log->leaves == NULL) {
        hs_auditlog_free(log);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    size_t n = 0;
    log->offsets[0] = 0;
    for (const uint8_t *p = data, *end = data + complete;
         p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        log->offsets[++n] = (size_t)(p - data) + 1;
    log->count = n;
    hs_result r = run_spans(log, log->leaves, hash_span, e);
    if (r != HS_OK)
        hs_auditlog_free(log);
    return r;
}

hs_result hs_auditlog_load(const char *dir, hs_auditlog *log, hs_error *e)
{
    memset(log, 0, sizeof *log);
    char *path;
    if (asprintf(&path, "%s/" HS_AUDIT_ENTRIES_FILE, dir) < 0)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    uint8_t *data = NULL;
    size_t len = 0;
    hs_result r;
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        data = malloc(1);
        r = data != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    } else {
        r = hs_read_file(path, MAX_LOG_BYTES, &data, &len, e);
    }
    free(path);
    if (r != HS_OK)
        return hs_error_prefix(e, "audit log: ");
    return hs_auditlog_from_bytes(data, len, log, e);
}

hs_result hs_auditlog_check_entry(const char *line, size_t len, size_t i, hs_error *e)
{
    int64_t fast;
    if (hs_auditline_canonical_seq(line, len, &fast) && fast >= 0 && (uint64_t)fast == i)
        return HS_OK; /* what record.c writes; anything else is parsed below */
    json_error_t jerr;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *seq = json_object_get(o, "seq");
    bool ok = json_is_object(o) && json_is_integer(seq) &&
              json_integer_value(seq) == (json_int_t)i;
    json_int_t got = json_is_integer(seq) ? json_integer_value(seq) : -1;
    json_decref(o);
    if (o == NULL)
        return hs_fail(e, HS_E_VERIFY, HS_AUDIT_ENTRIES_FILE ": entry %zu (line %zu) is not valid JSON: %s",
                       i, i + 1, jerr.text);
    if (!ok)
        return hs_fail(e, HS_E_VERIFY, HS_AUDIT_ENTRIES_FILE ": entry at line %zu has sequence number %lld, "
                                       "expected %zu: entries were removed, inserted or "
                                       "reordered", i + 1, (long long)got, i);
    return HS_OK;
}

hs_result hs_auditlog_check_entries(const hs_auditlog *log, hs_error *e)
{
    return run_spans(log, NULL, check_span, e);
}

hs_result hs_auditlog_compare_root(const hs_checkpoint *cp, const uint8_t root[HS_MERKLE_HASH_LEN],
                                   hs_error *e)
{
    if (!hs_ct_equal(root, cp->root, HS_MERKLE_HASH_LEN))
        return hs_fail(e, HS_E_VERIFY, "checkpoint of '%s' at size %llu does not match the first "
                                       "%llu entries: an entry was changed, removed or reordered",
                       cp->origin, (unsigned long long)cp->size, (unsigned long long)cp->size);
    return HS_OK;
}

hs_result hs_auditlog_verify_note(const char *note, size_t len, EVP_PKEY *pub,
                                  hs_checkpoint *cp, hs_error *e)
{
    /* The origin names the key, so read it before the signature is checked;
     * nothing else is trusted until then. */
    hs_result r = hs_checkpoint_parse(note, len, cp, e);
    size_t text_len;
    if (r == HS_OK)
        r = hs_note_verify(note, len, cp->origin, pub, &text_len, e);
    if (r == HS_OK)
        r = hs_checkpoint_parse(note, text_len, cp, e);
    return r;
}

/* A checkpoint larger than the log: its last entries were removed. */
static hs_result check_size(const hs_checkpoint *cp, size_t count, hs_error *e)
{
    if (cp->size > count)
        return hs_fail(e, HS_E_VERIFY, "checkpoint of '%s' covers %llu entries but the log has "
                                       "only %zu: entries were removed",
                       cp->origin, (unsigned long long)cp->size, count);
    return HS_OK;
}

hs_result hs_auditlog_check_checkpoint(const hs_auditlog *log, const char *note, size_t len,
                                       EVP_PKEY *pub, hs_checkpoint *cp, hs_error *e)
{
    hs_result r = hs_auditlog_verify_note(note, len, pub, cp, e);
    if (r == HS_OK)
        r = check_size(cp, log->count, e);
    if (r != HS_OK)
        return r;
    uint8_t root[HS_MERKLE_HASH_LEN];
    r = hs_auditlog_roots(log, &cp->size, 1, root, e);
    if (r == HS_OK)
        r = hs_auditlog_compare_root(cp, root, e);
    return r;
}

static char *path_in(const char *dir, const char *name)
{
    char *p;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* Reads DIR/name into *note; *found false when it does not exist. */
static hs_result read_note(const char *dir, const char *name, char **note, size_t *len,
                           bool *found, hs_error *e)
{
    *note = NULL;
    *found = false;
    char *path = path_in(dir, name);
    if (path == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_result r = HS_OK;
    if (access(path, F_OK) == 0) {
        *found = true;
        r = hs_read_file(path, MAX_NOTE_BYTES, (uint8_t **)note, len, e);
        if (r != HS_OK)
            hs_error_prefix(e, "audit log: ");
    }
    free(path);
    return r;
}

/* Written, fsynced and renamed into place; the directory's fsync is left
 * to the caller. */
static hs_result write_no_dir_sync(const char *path, const char *data, size_t len, hs_error *e)
{
    hs_atomic_file af;
    hs_result r = hs_atomic_open(&af, path, 0644, e);
    if (r != HS_OK)
        return r;
    r = hs_atomic_write_all(&af, data, len, e);
    if (r == HS_OK)
        r = hs_atomic_commit_no_dir_sync(&af, e);
    hs_atomic_abort(&af);
    return r;
}

static hs_result write_checkpoint(const char *dir, const hs_checkpoint *cp, const char *note,
                                  hs_error *e)
{
    char name[64];
    snprintf(name, sizeof name, HS_AUDIT_CHECKPOINT_DIR "/%020llu", (unsigned long long)cp->size);
    char *hist_dir = path_in(dir, HS_AUDIT_CHECKPOINT_DIR), *hist = path_in(dir, name),
         *latest = path_in(dir, HS_AUDIT_CHECKPOINT_FILE);
    hs_result r = hist_dir && hist && latest ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    /* History first: a crash between the two writes leaves a history entry
     * the latest file does not yet point at, never the reverse. */
    if (r == HS_OK)
        r = hs_mkdir_p(hist_dir, 0755, e);
    /* A history file is named by tree size, and the log has usually grown
     * before the next checkpoint, so the temporary file of one a kill
     * interrupted is not cleaned by hs_atomic_open of its own path: clean
     * the whole directory, which holds nothing but hsmsign's checkpoints
     * (best effort; files of live writers are locked and kept). */
    if (r == HS_OK)
        (void)hs_stale_tmp_remove_in_dir(hist_dir);
    if (r == HS_OK)
        r = hs_write_file_atomic(hist, note, strlen(note), 0644, false, e);
    /* The directory's fsync is sign_checkpoint's, after the state's rename. */
    if (r == HS_OK)
        r = write_no_dir_sync(latest, note, strlen(note), e);
    free(hist_dir);
    free(hist);
    free(latest);
    return r;
}

/* The state is an optimisation that the signed root authenticates: one
 * that cannot be read or written only costs the next gate a full check,
 * so failures here are not errors. */
static bool load_state(const char *dir, hs_auditstate *st)
{
    char *text = NULL;
    size_t len = 0;
    bool found = false;
    hs_error ignored;
    bool ok = read_note(dir, HS_AUDIT_STATE_FILE, &text, &len, &found, &ignored) == HS_OK &&
              found && hs_auditstate_parse(text, len, st, &ignored) == HS_OK;
    free(text);
    return ok;
}

static void save_state(const char *dir, const hs_auditstate *st)
{
    char *text = NULL, *path = path_in(dir, HS_AUDIT_STATE_FILE);
    size_t len;
    hs_error ignored;
    if (path != NULL && hs_auditstate_format(st, &text, &len, &ignored) == HS_OK &&
        write_no_dir_sync(path, text, len, &ignored) != HS_OK)
        hs_error_clear(&ignored); /* the next gate checks in full */
    free(text);
    free(path);
}

/* Signs and writes the checkpoint of st's tree, then st as its state. */
static hs_result sign_checkpoint(const char *dir, hs_p11 *p, const hs_auditkey *key,
                                 const hs_auditstate *st, hs_checkpoint_result *res, hs_error *e)
{
    hs_result r = hs_auditstate_root(st, res->cp.root, e);
    res->cp.size = st->size;
    char *text = NULL, *note = NULL;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    if (r == HS_OK)
        r = hs_checkpoint_format(&res->cp, &text, e);
    if (r == HS_OK)
        r = hs_auditkey_sign(p, key, (const uint8_t *)text, strlen(text), &sig, &sig_len, e);
    if (r == HS_OK)
        r = hs_note_assemble(text, res->cp.origin, key->public_key, sig, sig_len, &note, e);
    if (r == HS_OK)
        r = write_checkpoint(dir, &res->cp, note, e);
    if (r == HS_OK)
        res->signed_new = true;
    /* After the checkpoint: a kill in between leaves a state for an older
     * size, which the next gate ignores (full check, then rewritten). */
    if (r == HS_OK)
        save_state(dir, st);
    /* One fsync of the directory for both renames. Their order of
     * durability does not matter: the gate takes the fast path only when
     * the state is for the checkpoint's size, so a power cut that keeps
     * either rename without the other (a new checkpoint with the old
     * state, or the new state with the old checkpoint) costs one full
     * check, never a wrong result; and checkpoints/<size>, which must be
     * there whenever the checkpoint is, had its directory fsynced before
     * the checkpoint's rename. Before returning, so both are durable
     * before the commit and before the caller reports the checkpoint. */
    if (r == HS_OK)
        r = hs_fsync_dir(dir, e);
    free(text);
    free(sig);
    free(note);
    return r;
}

/* Wraps a failed check of the gate into the audit error every caller
 * reports (exit 7), keeping what failed. */
static hs_result refuse(const char *dir, hs_result r, hs_error *e)
{
    if (r == HS_E_NOMEM)
        return r;
    e->code = HS_E_AUDIT;
    hs_error_prefix(e, "audit log %s does not hold, refusing to use it: ", dir);
    return HS_E_AUDIT;
}

/* The latest checkpoint must also be in checkpoints/, byte for byte: the
 * history is written first, so a missing or different copy means someone
 * removed or replaced it (a kill between the two writes leaves the latest
 * file one checkpoint behind, whose history copy exists). */
static hs_result check_history_copy(const char *dir, const hs_checkpoint *latest,
                                    const char *note, size_t len, hs_error *e)
{
    char name[64];
    snprintf(name, sizeof name, HS_AUDIT_CHECKPOINT_DIR "/%020llu",
             (unsigned long long)latest->size);
    char *copy = NULL;
    size_t copy_len = 0;
    bool found;
    hs_result r = read_note(dir, name, &copy, &copy_len, &found, e);
    if (r == HS_OK && !found)
        r = hs_fail(e, HS_E_VERIFY, "%s (the history copy of the latest checkpoint, size %llu) is "
                                    "missing: the checkpoint history was removed",
                    name, (unsigned long long)latest->size);
    if (r == HS_OK && (copy_len != len || memcmp(copy, note, len) != 0))
        r = hs_fail(e, HS_E_VERIFY, "%s differs from " HS_AUDIT_CHECKPOINT_FILE
                                    ": the checkpoint history was rewritten", name);
    free(copy);
    return r;
}

/* The full check, under the lock: *log and *latest are the loaded log and
 * its verified latest checkpoint (both valid only on success). */
static hs_result gate_full(const char *dir, EVP_PKEY *pub, hs_auditlog *log,
                           hs_checkpoint *latest, hs_error *e)
{
    hs_result r = hs_auditlog_load(dir, log, e);
    if (r != HS_OK)
        return refuse(dir, r, e);
    char *note = NULL;
    size_t len = 0;
    bool found = false;
    r = hs_auditlog_check_entries(log, e);
    if (r == HS_OK)
        r = read_note(dir, HS_AUDIT_CHECKPOINT_FILE, &note, &len, &found, e);
    if (r == HS_OK && !found && log->count > 0)
        r = hs_fail(e, HS_E_AUDIT,
                    "audit log %s: " HS_AUDIT_ENTRIES_FILE " holds %zu entries but there is no "
                    HS_AUDIT_CHECKPOINT_FILE " file: nothing vouches for them, refusing to use "
                    "the log (to start over deliberately, see `hsmsign audit restart`)",
                    dir, log->count);
    else if (r == HS_OK && !found)
        r = hs_fail(e, HS_E_AUDIT,
                    "%s is not an initialized audit log (no " HS_AUDIT_CHECKPOINT_FILE "): create "
                    "one with `hsmsign audit init`, or to start over on a lost log, `hsmsign audit "
                    "restart`", dir);
    if (r == HS_OK) {
        r = hs_auditlog_check_checkpoint(log, note, len, pub, latest, e);
        if (r != HS_OK)
            hs_error_prefix(e, HS_AUDIT_CHECKPOINT_FILE " (%zu entries in "
                               HS_AUDIT_ENTRIES_FILE "): ", log->count);
    }
    if (r == HS_OK)
        r = check_history_copy(dir, latest, note, len, e);
    free(note);
    if (r != HS_OK) {
        hs_auditlog_free(log);
        return r == HS_E_AUDIT || r == HS_E_NOMEM ? r : refuse(dir, r, e);
    }
    return HS_OK;
}

/* The state of the whole log after a full check: the checkpoint's part
 * is saved for the next gate, then the entries after it are added. */
static hs_result state_of(const char *dir, const hs_auditlog *log, uint64_t covered,
                          hs_auditstate *st, hs_error *e)
{
    hs_auditstate_init(st);
    hs_result r = HS_OK;
    for (size_t i = 0; r == HS_OK && i < log->count; i++) {
        if (i == covered)
            save_state(dir, st);
        r = hs_auditstate_push_leaf(st, log->leaves + i * HS_MERKLE_HASH_LEN,
                                    log->offsets[i + 1] - log->offsets[i] - 1, e);
    }
    if (r == HS_OK && covered == log->count)
        save_state(dir, st);
    return r;
}

static hs_result gate_slow(const char *dir, EVP_PKEY *pub, hs_auditstate *st,
                           hs_checkpoint *latest, hs_error *e)
{
    hs_auditlog log;
    hs_result r = gate_full(dir, pub, &log, latest, e);
    if (r != HS_OK)
        return r;
    r = state_of(dir, &log, latest->size, st, e);
    hs_auditlog_free(&log);
    return r;
}

/* The fast path: the checkpoint and the state are checked, then only the
 * entries after the checkpoint are read. *fallback when there is no state
 * for this checkpoint (nothing was judged yet). */
static hs_result gate_fast(const char *dir, EVP_PKEY *pub, hs_auditstate *st,
                           hs_checkpoint *latest, bool *fallback, hs_error *e)
{
    *fallback = true;
    char *note = NULL, *entries = path_in(dir, HS_AUDIT_ENTRIES_FILE);
    size_t len = 0;
    bool found = false;
    if (entries == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    int fd = open(entries, O_RDONLY | O_CLOEXEC);
    free(entries);
    hs_result r = fd >= 0 ? read_note(dir, HS_AUDIT_CHECKPOINT_FILE, &note, &len, &found, e)
                          : HS_OK; /* no entries file: the full check says what is wrong */
    if (r != HS_OK || !found || !load_state(dir, st))
        goto out;
    /* Parsed before its signature is checked only to choose the path; the
     * checks below start from the verified checkpoint. */
    if (hs_checkpoint_parse(note, len, latest, e) != HS_OK || latest->size != st->size)
        goto out;
    *fallback = false;
    r = hs_auditlog_verify_note(note, len, pub, latest, e);
    if (r != HS_OK)
        hs_error_prefix(e, HS_AUDIT_CHECKPOINT_FILE ": ");
    if (r == HS_OK)
        r = check_history_copy(dir, latest, note, len, e);
    if (r == HS_OK)
        r = hs_auditstate_check(st, latest, e);
    if (r == HS_OK)
        r = hs_auditstate_extend(st, fd, e);
out:
    if (fd >= 0)
        close(fd);
    free(note);
    return r;
}

/* The gate itself, under the lock (log.h): *st is the state of the whole
 * log and *latest its verified latest checkpoint (valid on success). */
static hs_result gate_locked(const char *dir, EVP_PKEY *pub, hs_auditstate *st,
                             hs_checkpoint *latest, hs_error *e)
{
    bool fallback;
    hs_result r = gate_fast(dir, pub, st, latest, &fallback, e);
    if (r == HS_OK && fallback)
        return gate_slow(dir, pub, st, latest, e);
    if (r == HS_E_NOMEM || r == HS_OK)
        return r;
    return r == HS_E_AUDIT ? r : refuse(dir, r, e);
}

hs_result hs_auditlog_gate(const char *dir, EVP_PKEY *pub, hs_error *e)
{
    hs_auditstate st;
    hs_checkpoint latest;
    return gate_locked(dir, pub, &st, &latest, e);
}

static hs_result checkpoint_locked(const char *dir, hs_p11 *p, const hs_auditkey *key,
                                   hs_checkpoint_result *res, hs_error *e)
{
    hs_auditstate st;
    hs_result r = gate_locked(dir, key->public_key, &st, &res->cp, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "refusing to sign a new checkpoint: ");
    bool up_to_date = res->cp.size == st.size;
    /* Entries appended with hs_audit_append_deferred by any process may
     * still be only in the page cache: a checkpoint must never outlive, in
     * a power cut, entries it covers. */
    if (!up_to_date)
        r = hs_audit_fsync_entries(dir, e);
    /* Keeps the log's origin; size and root are replaced. */
    if (r == HS_OK && !up_to_date)
        r = sign_checkpoint(dir, p, key, &st, res, e);
    if (r == HS_OK) {
        char msg[128];
        snprintf(msg, sizeof msg, "audit: %llu entries", (unsigned long long)res->cp.size);
        r = hs_auditgit_commit(dir, msg, !up_to_date, &res->committed, e);
    }
    return r;
}

hs_result hs_auditlog_checkpoint(const char *dir, hs_p11 *p, const hs_auditkey *key,
                                 hs_checkpoint_result *res, hs_error *e)
{
    memset(res, 0, sizeof *res);
    int lock;
    hs_result r = hs_audit_lock(dir, &lock, e);
    if (r != HS_OK)
        return r;
    r = checkpoint_locked(dir, p, key, res, e);
    hs_audit_unlock(lock);
    return r;
}

void hs_auditlog_origin(const char *serial, char origin[HS_CHECKPOINT_ORIGIN_MAX])
{
    snprintf(origin, HS_CHECKPOINT_ORIGIN_MAX, HS_AUDIT_ORIGIN_PREFIX "%s",
             serial != NULL && serial[0] ? serial : "token");
    for (char *c = origin; *c; c++)
        if (*c == ' ' || *c == '+')
            *c = '_';
}

/* Fills an empty directory with a log: an empty entries file, the signed
 * checkpoint of size 0 (history copy first, as always) and the first git
 * commit. From then on the log always has a checkpoint to check. */
static hs_result create_in(const char *dir, hs_p11 *p, const hs_auditkey *key, hs_error *e)
{
    hs_checkpoint_result res;
    memset(&res, 0, sizeof res);
    hs_auditlog_origin(p->serial, res.cp.origin);
    hs_auditstate empty;
    hs_auditstate_init(&empty);
    char *entries = path_in(dir, HS_AUDIT_ENTRIES_FILE);
    hs_result r = entries != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    if (r == HS_OK)
        r = hs_write_file_atomic(entries, "", 0, 0644, false, e);
    if (r == HS_OK)
        r = sign_checkpoint(dir, p, key, &empty, &res, e);
    bool committed;
    if (r == HS_OK)
        r = hs_auditgit_commit(dir, "audit: log created", true, &committed, e);
    if (r == HS_OK)
        r = hs_fsync_dir(dir, e);
    free(entries);
    return r;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

/* A directory that does not exist yet: built under a temporary name next
 * to it and renamed into place, so a kill at any point leaves either no
 * log (the next command creates it) or a complete one, never a directory
 * that exists without its checkpoint. */
static hs_result create_missing(const char *dir, hs_p11 *p, const hs_auditkey *key, hs_error *e)
{
    char *base = strdup(dir), *parent = strdup(dir), *tmp = NULL;
    hs_result r = base != NULL && parent != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    for (size_t n = base != NULL ? strlen(base) : 0; n > 1 && base[n - 1] == '/'; n--)
        base[n - 1] = '\0';
    if (r == HS_OK)
        r = hs_mkdir_p(dirname(parent), 0755, e);
    if (r == HS_OK && asprintf(&tmp, "%s.init-XXXXXX", base) < 0) {
        tmp = NULL;
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    bool made = false;
    if (r == HS_OK && mkdtemp(tmp) == NULL)
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: cannot create %s: %s", dir, tmp, strerror(errno));
    else if (r == HS_OK)
        made = true;
    /* mkdtemp's 0700 would hide the log from its auditors. */
    if (made && chmod(tmp, 0755) != 0)
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: chmod %s: %s", dir, tmp, strerror(errno));
    if (r == HS_OK)
        r = create_in(tmp, p, key, e);
    bool placed = false;
    if (r == HS_OK && rename(tmp, base) == 0)
        placed = true;
    else if (r == HS_OK && errno != ENOTEMPTY && errno != EEXIST)
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: cannot rename %s into place: %s", dir, tmp,
                    strerror(errno));
    /* Otherwise another process created the log first: use that one. */
    if (r == HS_OK && placed)
        r = hs_fsync_dir(parent, e);
    if (made && !placed)
        (void)nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(base);
    free(parent);
    free(tmp);
    return r;
}

/* An existing directory may become a log only while it holds nothing of
 * one: no entry, no checkpoint, no checkpoint history beyond the size-0
 * checkpoint an interrupted `audit init` may have left. */
static hs_result check_unused(const char *dir, hs_error *e)
{
    hs_auditlog log;
    hs_result r = hs_auditlog_load(dir, &log, e);
    if (r != HS_OK)
        return r;
    size_t count = log.count;
    hs_auditlog_free(&log);
    char *latest = path_in(dir, HS_AUDIT_CHECKPOINT_FILE), *hist = path_in(dir, HS_AUDIT_CHECKPOINT_DIR);
    if (latest == NULL || hist == NULL)
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    else if (count > 0 || access(latest, F_OK) == 0)
        r = hs_fail(e, HS_E_EXISTS, "%s is already an audit log (%zu entries%s): refusing to "
                                    "create a new one over it; to start over deliberately, use "
                                    "`hsmsign audit restart --reason TEXT`",
                    dir, count, access(latest, F_OK) == 0 ? ", signed checkpoint" : ", no checkpoint");
    DIR *d = r == HS_OK ? opendir(hist) : NULL;
    for (struct dirent *de; d != NULL && r == HS_OK && (de = readdir(d)) != NULL;)
        if (de->d_name[0] != '.' && strstr(de->d_name, ".tmp.") == NULL &&
            strcmp(de->d_name, "00000000000000000000") != 0)
            r = hs_fail(e, HS_E_EXISTS, "%s/%s/%s: the directory holds the checkpoint history of "
                                        "an earlier log: refusing to create a new one over it; "
                                        "see `hsmsign audit restart`",
                        dir, HS_AUDIT_CHECKPOINT_DIR, de->d_name);
    if (d != NULL)
        closedir(d);
    free(latest);
    free(hist);
    return r;
}

hs_result hs_auditlog_init(const char *dir, hs_p11 *p, const hs_auditkey *key, hs_error *e)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? create_missing(dir, p, key, e)
                               : hs_fail(e, HS_E_AUDIT, "audit log %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return hs_fail(e, HS_E_AUDIT, "audit log %s: not a directory", dir);
    int lock;
    hs_result r = hs_audit_lock(dir, &lock, e);
    if (r != HS_OK)
        return r;
    r = check_unused(dir, e);
    if (r == HS_OK)
        r = create_in(dir, p, key, e);
    hs_audit_unlock(lock);
    return r;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int compare_size(const void *a, const void *b, void *cps)
{
    uint64_t x = ((const hs_checkpoint *)cps)[*(const size_t *)a].size,
             y = ((const hs_checkpoint *)cps)[*(const size_t *)b].size;
    return x < y ? -1 : x > y;
}

/* Each checkpoint's root against the tree of its size, all computed in
 * one pass over the leaves (in size order, whatever the files' names). */
static hs_result check_roots(const char *dir, const hs_auditlog *log, const hs_checkpoint *cps,
                             const char *const *names, size_t n, hs_error *e)
{
    size_t *order = malloc((n + 1) * sizeof *order);
    uint64_t *sizes = malloc((n + 1) * sizeof *sizes);
    uint8_t *roots = malloc((n + 1) * HS_MERKLE_HASH_LEN);
    hs_result r = order && sizes && roots ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    for (size_t i = 0; r == HS_OK && i < n; i++)
        order[i] = i;
    if (r == HS_OK)
        qsort_r(order, n, sizeof *order, compare_size, (void *)cps);
    for (size_t i = 0; r == HS_OK && i < n; i++)
        sizes[i] = cps[order[i]].size;
    if (r == HS_OK)
        r = hs_auditlog_roots(log, sizes, n, roots, e);
    for (size_t i = 0; r == HS_OK && i < n; i++) {
        r = hs_auditlog_compare_root(&cps[order[i]], roots + i * HS_MERKLE_HASH_LEN, e);
        if (r != HS_OK)
            hs_error_prefix(e, "audit log %s: %s: ", dir, names[order[i]]);
    }
    free(order);
    free(sizes);
    free(roots);
    return r;
}

/* Checks every file in DIR/checkpoints/. */
static hs_result verify_history(const char *dir, const hs_auditlog *log, EVP_PKEY *pub,
                                const hs_checkpoint *latest, hs_auditlog_report *rep, hs_error *e)
{
    char *hist = path_in(dir, HS_AUDIT_CHECKPOINT_DIR);
    if (hist == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    DIR *d = opendir(hist);
    free(hist);
    if (d == NULL)
        return errno == ENOENT ? HS_OK
                               : hs_fail(e, HS_E_IO, "audit log %s: cannot list checkpoints/: %s",
                                         dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    hs_result r = HS_OK;
    for (struct dirent *de; r == HS_OK && (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp.") != NULL)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **bigger = realloc(names, cap * sizeof *names);
            if (bigger == NULL) {
                r = hs_fail(e, HS_E_NOMEM, "out of memory");
                break;
            }
            names = bigger;
        }
        names[n] = path_in(HS_AUDIT_CHECKPOINT_DIR, de->d_name);
        if (names[n++] == NULL)
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    closedir(d);
    if (r == HS_OK && n > 1)
        qsort(names, n, sizeof *names, compare_names);
    /* The latest checkpoint's root is checked in the same pass, last. */
    hs_checkpoint *cps = r == HS_OK ? malloc((n + 1) * sizeof *cps) : NULL;
    const char **labels = r == HS_OK ? malloc((n + 1) * sizeof *labels) : NULL;
    if (r == HS_OK && (cps == NULL || labels == NULL))
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    /* Signatures and sizes first, then every root in one pass. */
    for (size_t i = 0; r == HS_OK && i < n; i++) {
        char *note;
        size_t len;
        bool found;
        r = read_note(dir, names[i], &note, &len, &found, e);
        /* Listed a moment ago: a checkpoint vanishing while it is being
         * verified is reported, not read as an empty note. */
        if (r == HS_OK && !found)
            r = hs_fail(e, HS_E_AUDIT, "checkpoint removed during verification");
        if (r == HS_OK)
            r = hs_auditlog_verify_note(note, len, pub, &cps[i], e);
        if (r == HS_OK)
            r = check_size(&cps[i], log->count, e);
        if (r != HS_OK)
            hs_error_prefix(e, "audit log %s: %s: ", dir, names[i]);
        free(note);
    }
    for (size_t i = 0; r == HS_OK && i < n; i++)
        labels[i] = names[i];
    if (r == HS_OK) {
        cps[n] = *latest;
        labels[n] = "latest checkpoint";
        r = check_roots(dir, log, cps, labels, n + 1, e);
    }
    if (r == HS_OK)
        rep->checkpoints += n;
    free(cps);
    free(labels);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return r;
}

/* The auditor's checkpoint OLD: the log must extend it. Proven with an
 * RFC 9162 consistency proof from OLD to the latest checkpoint, what a
 * verifier holding only the two checkpoints would be given. */
static hs_result verify_old(const hs_auditlog *log, const hs_checkpoint *latest,
                            const char *old_note, size_t old_len, EVP_PKEY *pub,
                            hs_auditlog_report *rep, hs_error *e)
{
    hs_checkpoint old;
    hs_result r = hs_checkpoint_parse(old_note, old_len, &old, e);
    size_t text_len;
    if (r == HS_OK)
        r = hs_note_verify(old_note, old_len, old.origin, pub, &text_len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "--checkpoint: ");
    if (strcmp(old.origin, latest->origin) != 0)
        return hs_fail(e, HS_E_VERIFY, "--checkpoint is for log '%s', this log is '%s'", old.origin,
                       latest->origin);
    if (old.size > latest->size)
        return hs_fail(e, HS_E_VERIFY, "--checkpoint covers %llu entries but the latest checkpoint "
                                       "only %llu: the log was rolled back",
                       (unsigned long long)old.size, (unsigned long long)latest->size);
    uint8_t *proof = malloc(HS_MERKLE_MAX_PROOF * HS_MERKLE_HASH_LEN);
    if (proof == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    size_t proof_len;
    r = hs_merkle_consistency_proof(log->leaves, (size_t)old.size, (size_t)latest->size, proof,
                                    &proof_len, e);
    if (r == HS_OK)
        r = hs_merkle_verify_consistency((size_t)old.size, (size_t)latest->size, old.root,
                                         latest->root, proof, proof_len, e);
    free(proof);
    if (r == HS_E_VERIFY)
        return hs_fail(e, HS_E_VERIFY, "the log is not an append-only extension of --checkpoint "
                                       "(size %llu): history was rewritten",
                       (unsigned long long)old.size);
    rep->old_checked = r == HS_OK;
    rep->old_size = old.size;
    return r;
}

/* Of the entries after the latest checkpoint, those whose operation defers
 * the checkpoint (reuse, output: record.h): a tail of only those is what a
 * re-run from the signature cache leaves, by design. The entries already
 * passed hs_auditlog_check_entries, so each parses. */
static size_t count_deferred(const hs_auditlog *log, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < log->count; i++) {
        size_t len;
        const char *line = hs_auditlog_entry(log, i, &len);
        json_t *o = json_loadb(line, len, 0, NULL);
        if (hs_audit_op_defers_checkpoint(json_string_value(json_object_get(o, "op"))))
            n++;
        json_decref(o);
    }
    return n;
}

hs_result hs_auditlog_verify(const char *dir, EVP_PKEY *pub, const char *old_note, size_t old_len,
                             hs_auditlog_report *rep, hs_error *e)
{
    memset(rep, 0, sizeof *rep);
    hs_auditlog log;
    hs_result r = hs_auditlog_load(dir, &log, e);
    if (r != HS_OK)
        return r;
    rep->entries = log.count;
    rep->torn = log.torn;
    r = hs_auditlog_check_entries(&log, e);
    char *note = NULL;
    size_t len = 0;
    bool found = false;
    hs_checkpoint latest;
    if (r == HS_OK)
        r = read_note(dir, HS_AUDIT_CHECKPOINT_FILE, &note, &len, &found, e);
    if (r == HS_OK && !found)
        r = hs_fail(e, log.count > 0 ? HS_E_VERIFY : HS_E_NOTFOUND,
                    "audit log %s has no checkpoint: nothing vouches for its %zu entries", dir,
                    log.count);
    /* Signature and size here; its root with the history's, in one pass. */
    if (r == HS_OK) {
        r = hs_auditlog_verify_note(note, len, pub, &latest, e);
        if (r == HS_OK)
            r = check_size(&latest, log.count, e);
        if (r != HS_OK)
            hs_error_prefix(e, "audit log %s: latest checkpoint: ", dir);
    }
    if (r == HS_OK) {
        rep->checkpoints++;
        rep->checked_size = latest.size;
        rep->uncovered = log.count - (size_t)latest.size;
        rep->uncovered_deferred = count_deferred(&log, (size_t)latest.size);
        r = verify_history(dir, &log, pub, &latest, rep, e);
    }
    if (r == HS_OK && old_note != NULL)
        r = verify_old(&log, &latest, old_note, old_len, pub, rep, e);
    free(note);
    hs_auditlog_free(&log);
    return r;
}
