/* The provisioning ceremony (see provision.h). The order matters: every
 * encrypted file (PINs, shares) is on disk before a token is changed, so a
 * failure half-way never leaves a token whose PINs nobody can read. */
#include "ceremony/provision.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/log.h"
#include "audit/record.h"
#include "backup/age.h"
#include "keystore/auditkey.h"
#include "keystore/wrapkey.h"
#include "p11/admin.h"
#include "util/encoding.h"
#include "util/file.h"
#include "util/secmem.h"

/* 26 symbols of 5 bits: 130 bits, at least the 128 a PIN guarding the
 * wrap key should carry; checked against each token's ulMaxPinLen. */
#define PIN_LEN 26
#define SELF_MAX (512u << 20)

enum { PRIMARY = 0, BACKUP = 1 };
enum { SO = 0, USER = 1 };

typedef struct prov {
    const hs_ceremony_config *cfg;
    const hs_provision_options *o;
    hs_transcript *t;
    hs_token_state state[2];
    hs_p11_token_info info[2];
    hs_p11_token_details details[2];
    char *pins[2][2];     /* secure memory, [token][SO/USER] */
    uint8_t *key;         /* the wrap key, secure memory */
    hs_share *shares;     /* secure array of n */
    uint8_t audit_fp[32];
    hs_auditkey audit_key; /* the primary's, from its generation on */
    char batch[33]; /* one audit batch id for the whole ceremony */
    char steps[16][160]; /* the steps begun, the last one where a failure happened */
    size_t n_steps;
} prov;

static const char *const token_role[2] = {"primary", "backup"};

/* Tells the person, and keeps the list for an aborted record. */
static void step(prov *c, const char *what)
{
    if (c->n_steps < sizeof c->steps / sizeof c->steps[0])
        snprintf(c->steps[c->n_steps++], sizeof c->steps[0], "%s", what);
    if (c->o->step != NULL)
        c->o->step(c->o->step_ctx, what);
}

hs_result hs_ceremony_self_sha256(uint8_t out[32], hs_error *e)
{
    uint8_t *data;
    size_t len;
    hs_result r = hs_read_file("/proc/self/exe", SELF_MAX, &data, &len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "hashing the tool itself: ");
    SHA256(data, len, out);
    free(data);
    return HS_OK;
}

static hs_result hash_file(const char *path, hs_transcript_file *f, hs_error *e)
{
    uint8_t *data;
    size_t len;
    hs_result r = hs_read_file(path, SELF_MAX, &data, &len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "hashing what runs the ceremony: ");
    SHA256(data, len, f->sha256);
    free(data);
    snprintf(f->path, sizeof f->path, "%s", path);
    return HS_OK;
}

static bool listed(const hs_transcript *t, const char *path)
{
    for (size_t i = 0; i < t->n_libs; i++)
        if (strcmp(t->libs[i].path, path) == 0)
            return true;
    return false;
}

/* Every shared object mapped into this process (/proc/self/maps: the C
 * library, OpenSSL, p11-kit, the PKCS#11 module...), so attendees can
 * compare them with the published ones, not only the executable. */
static hs_result hash_libraries(hs_transcript *t, hs_error *e)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return hs_fail(e, HS_E_IO, "/proc/self/maps: %s", strerror(errno));
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char line[4600];
    hs_result r = HS_OK;
    while (r == HS_OK && fgets(line, sizeof line, f) != NULL) {
        char *path = strchr(line, '/');
        if (path == NULL)
            continue;
        path[strcspn(path, "\n")] = '\0';
        if (strstr(path, ".so") == NULL || strcmp(path, exe) == 0 || listed(t, path) ||
            strlen(path) > HS_TRANSCRIPT_PATH_MAX)
            continue;
        if (t->n_libs >= HS_TRANSCRIPT_LIBS_MAX)
            r = hs_fail(e, HS_E_INTERNAL, "more than %d shared libraries loaded",
                        HS_TRANSCRIPT_LIBS_MAX);
        else
            r = hash_file(path, &t->libs[t->n_libs++], e);
    }
    fclose(f);
    return r;
}

/* Checked before any token is touched; created only once both are. */
static hs_result check_out_dir(const char *dir, hs_error *e)
{
    DIR *d = opendir(dir);
    if (d == NULL && errno == ENOENT)
        return HS_OK;
    if (d == NULL)
        return hs_fail(e, HS_E_IO, "%s: %s", dir, strerror(errno));
    struct dirent *de;
    hs_result r = HS_OK;
    while (r == HS_OK && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            r = hs_fail(e, HS_E_EXISTS,
                        "ceremony directory %s is not empty (holds '%s'): every ceremony "
                        "writes into a new directory",
                        dir, de->d_name);
    }
    closedir(d); /* after the message: de points into d */
    return r;
}

/* The ceremony generates a new audit key, and a log belongs to the key
 * that signed its checkpoints: it starts a new log, so the directory must
 * not exist yet. Checked before any token is touched. */
static hs_result check_audit_dir(const char *dir, hs_error *e)
{
    if (access(dir, F_OK) != 0 && errno == ENOENT)
        return HS_OK;
    return hs_fail(e, HS_E_EXISTS,
                   "audit log %s already exists: the ceremony makes a new audit key, which "
                   "starts a new log; give --audit-log a directory that does not exist (the "
                   "old log is kept as it is)", dir);
}

/* dir/rel into path; a path that does not fit is refused, never shortened
 * into another one. */
static hs_result out_path(const char *dir, const char *rel, char *path, size_t cap, hs_error *e)
{
    int n = snprintf(path, cap, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= cap)
        return hs_fail(e, HS_E_USAGE, "ceremony directory %s: path too long", dir);
    return HS_OK;
}

static hs_result prepare_out_dir(const char *dir, hs_error *e)
{
    char sub[4096];
    hs_result r = out_path(dir, "shares", sub, sizeof sub, e);
    if (r == HS_OK)
        r = hs_mkdir_p(sub, 0755, e);
    if (r == HS_OK)
        r = out_path(dir, "credentials", sub, sizeof sub, e);
    if (r == HS_OK)
        r = hs_mkdir_p(sub, 0755, e);
    return r;
}

/* Everything a token will be asked for, asked before anything changes:
 * the PIN length it accepts, the mechanisms, and its current SO PIN (a
 * wrong backup SO PIN must not be found after the primary is done). A
 * token not initialized yet is only found by C_InitToken: its checks come
 * right after. */
static hs_result preflight(prov *c, hs_p11 *p, int t, const char *spec, hs_error *e)
{
    hs_result r = hs_p11_select_token(p, spec, e);
    if (r == HS_OK)
        r = hs_p11_read_token_details(p, &c->details[t], e);
    if (r == HS_OK && (c->details[t].max_pin < PIN_LEN || c->details[t].min_pin > PIN_LEN))
        r = hs_fail(e, HS_E_USAGE,
                    "%s token '%s' takes PINs of %lu to %lu characters; the ceremony's PINs have "
                    "%d (130 bits)",
                    token_role[t], p->label, c->details[t].min_pin, c->details[t].max_pin,
                    PIN_LEN);
    if (r == HS_OK)
        r = hs_p11_require_mechanism(p, CKM_AES_KEY_WRAP_PAD, CKF_WRAP | CKF_UNWRAP,
                                     "the wrap key", e);
    hs_auditkey_alg alg;
    if (r == HS_OK && t == PRIMARY)
        r = hs_auditkey_choose_alg(p, c->cfg->audit_alg, &alg, e);
    if (r == HS_OK)
        r = hs_p11_check_so_pin(p, c->o->current_so_pin[t], e);
    if (r != HS_OK)
        hs_error_prefix(e, "%s token, before anything changed: ", token_role[t]);
    return r;
}

/* Checks both tokens before anything changes. */
static hs_result probe_tokens(prov *c, hs_error *e)
{
    hs_p11 *p;
    hs_result r = hs_p11_open_args(c->o->module, c->o->module_init_args, &p, e);
    const char *spec[2] = {c->cfg->primary, c->cfg->backup};
    for (int i = 0; r == HS_OK && i < 2; i++) {
        r = hs_p11_token_probe(p, spec[i], &c->state[i], &c->info[i], e);
        if (r != HS_OK)
            break;
        if (c->state[i] == HS_TOKEN_IN_USE && !c->o->force_reset)
            r = hs_fail(e, HS_E_EXISTS,
                        "%s token '%s' (serial %s) is not empty: its user PIN is set and it may "
                        "hold keys; refusing to provision it (--force-reset erases a SoftHSM "
                        "token)",
                        token_role[i], c->info[i].label, c->info[i].serial);
        else if (c->state[i] == HS_TOKEN_IN_USE && !hs_p11_token_is_softhsm(&c->info[i]))
            r = hs_fail(e, HS_E_USAGE,
                        "%s token '%s' is in use and is not a SoftHSM token: --force-reset "
                        "erases only SoftHSM tokens; reset it with its vendor's tool",
                        token_role[i], c->info[i].label);
        else if (c->state[i] != HS_TOKEN_ABSENT && c->o->current_so_pin[i] == NULL)
            r = hs_fail(e, HS_E_USAGE,
                        "%s token '%s' is already initialized (%s): give its current SO PIN "
                        "(--current-so-pin-source) to take it over",
                        token_role[i], c->info[i].label, hs_token_state_name(c->state[i]));
        else if (c->state[i] != HS_TOKEN_ABSENT)
            r = preflight(c, p, i, spec[i], e);
    }
    hs_p11_close(p);
    return r;
}

static hs_result make_secrets(prov *c, hs_error *e)
{
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++) {
            c->pins[t][k] = hs_secure_alloc(PIN_LEN + 1);
            if (c->pins[t][k] == NULL)
                return hs_fail(e, HS_E_NOMEM, "out of locked memory for the PINs");
            hs_result r = hs_p11_random_pin(c->pins[t][k], PIN_LEN, e);
            if (r != HS_OK)
                return r;
        }
    c->key = hs_secure_alloc(32);
    if (c->key == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of locked memory for the wrap key");
    if (RAND_priv_bytes(c->key, 32) != 1)
        return hs_fail(e, HS_E_CRYPTO, "no randomness for the wrap key");
    hs_result r = hs_wrapkey_kcv_of(c->key, c->t->kcv, e);
    uint8_t *canary = NULL;
    size_t canary_len = 0;
    if (r == HS_OK)
        r = hs_wrapkey_canary_of(c->key, &canary, &canary_len, e);
    if (r == HS_OK && canary_len > sizeof c->t->wrap_canary)
        r = hs_fail(e, HS_E_INTERNAL, "the wrap key's canary is %zu bytes", canary_len);
    if (r == HS_OK) {
        memcpy(c->t->wrap_canary, canary, canary_len);
        c->t->wrap_canary_len = canary_len;
    }
    free(canary);
    if (r == HS_OK && c->o->module_init_args != NULL) {
        /* Recorded whole or not at all: a shortened one names another setup. */
        int w = snprintf(c->t->module_init_args, sizeof c->t->module_init_args, "%s",
                         c->o->module_init_args);
        if (w < 0 || (size_t)w >= sizeof c->t->module_init_args)
            r = hs_fail(e, HS_E_USAGE, "--module-init-args is longer than the %zu bytes a "
                        "transcript records", sizeof c->t->module_init_args - 1);
    }
    const char *labels[HS_SHARE_MAX_SHARES];
    for (size_t i = 0; i < c->cfg->n_holders; i++)
        labels[i] = c->cfg->holders[i].name;
    if (r == HS_OK)
        r = hs_share_split_secret(c->key, 32, c->cfg->threshold, (unsigned)c->cfg->n_holders,
                                  labels, &c->shares, e);
    if (r == HS_OK)
        memcpy(c->t->set_id, c->shares[0].set_id, HS_SHARE_SET_ID_LEN);
    /* The docs promise locked memory: without it the key could reach swap. */
    c->t->memory_locked = hs_secure_locked(c->key) && hs_secure_locked(c->pins[0][0]) &&
                          (c->shares == NULL || hs_secure_locked(c->shares));
    if (r == HS_OK && !c->t->memory_locked && !c->o->allow_unlocked_memory)
        r = hs_fail(e, HS_E_NOMEM,
                    "memory for the wrap key and PINs cannot be locked (mlock failed: raise "
                    "RLIMIT_MEMLOCK, ulimit -l); refusing to run the ceremony "
                    "(--allow-unlocked-memory goes on and records it in the transcript)");
    return r;
}

/* Encrypts plain to recipients and writes DIR/rel, recording its hash. */
static hs_result write_encrypted(const prov *c, const char *const *recipients, size_t n,
                                 const uint8_t *plain, size_t plain_len, const char *rel,
                                 hs_transcript_file *f, hs_error *e)
{
    uint8_t *enc;
    size_t enc_len;
    hs_result r = hs_age_encrypt(recipients, n, plain, plain_len, false, &enc, &enc_len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "encrypting %s: ", rel);
    char path[4096];
    r = out_path(c->o->out_dir, rel, path, sizeof path, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(path, enc, enc_len, 0644, true, e);
    SHA256(enc, enc_len, f->sha256);
    snprintf(f->path, sizeof f->path, "%s", rel);
    free(enc);
    return r;
}

/* A file name from a holder's name: letters, digits, '.', '-', '_'. */
static void file_safe(const char *name, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; name[i] != '\0' && o + 1 < cap && o < 40; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
        out[o++] = (char)(ok ? ch : '_'); /* ?: computes in int */
    }
    out[o] = '\0';
}

static hs_result write_shares(prov *c, hs_error *e)
{
    char *text = hs_secure_alloc(HS_SHARE_TEXT_MAX);
    if (text == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of locked memory");
    hs_result r = HS_OK;
    for (size_t i = 0; r == HS_OK && i < c->cfg->n_holders; i++) {
        const hs_ceremony_holder *h = &c->cfg->holders[i];
        hs_transcript_holder *th = &c->t->holders[i];
        snprintf(th->name, sizeof th->name, "%s", h->name);
        snprintf(th->recipient, sizeof th->recipient, "%s", h->recipient);
        th->x = c->shares[i].x;
        if (RAND_priv_bytes(th->salt, sizeof th->salt) != 1)
            r = hs_fail(e, HS_E_CRYPTO, "no randomness for a share commitment");
        hs_share_commitment(&c->shares[i], th->salt, th->commitment);
        char safe[48], rel[128];
        file_safe(h->name, safe, sizeof safe);
        snprintf(rel, sizeof rel, "shares/%02zu-%s.share.age", i + 1, safe);
        size_t len;
        const char *rcpt[1] = {h->recipient};
        if (r == HS_OK)
            r = hs_share_serialize(&c->shares[i], text, HS_SHARE_TEXT_MAX, &len, e);
        if (r == HS_OK)
            r = write_encrypted(c, rcpt, 1, (const uint8_t *)text, len, rel, &th->file, e);
    }
    hs_secure_free(text, HS_SHARE_TEXT_MAX);
    c->t->n_holders = c->cfg->n_holders;
    c->t->threshold = c->cfg->threshold;
    return r;
}

static hs_result write_credentials(prov *c, hs_error *e)
{
    static const char *const cred[2] = {"so-pin", "user-pin"};
    char *line = hs_secure_alloc(PIN_LEN + 2);
    if (line == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of locked memory");
    hs_result r = HS_OK;
    for (int t = 0; r == HS_OK && t < 2; t++) {
        for (int k = 0; r == HS_OK && k < 2; k++) {
            hs_transcript_credential *tc = &c->t->credentials[t * 2 + k];
            hs_ceremony_role role = k == SO ? HS_ROLE_ADMIN : HS_ROLE_OPERATOR;
            const hs_ceremony_recipients *rc = &c->cfg->roles[role];
            const char *rcpt[HS_CEREMONY_ROLE_MAX];
            for (size_t i = 0; i < rc->n; i++)
                rcpt[i] = rc->r[i];
            snprintf(tc->token, sizeof tc->token, "%s", token_role[t]);
            snprintf(tc->credential, sizeof tc->credential, "%s", cred[k]);
            tc->role = role;
            char rel[64];
            snprintf(rel, sizeof rel, "credentials/%s-%s.age", token_role[t], cred[k]);
            /* A trailing newline, so `--pin-source file:` and `$(age -d ...)` both work. */
            int n = snprintf(line, PIN_LEN + 2, "%s\n", c->pins[t][k]);
            r = write_encrypted(c, rcpt, rc->n, (const uint8_t *)line, (size_t)n, rel, &tc->file, e);
        }
    }
    hs_secure_free(line, PIN_LEN + 2);
    return r;
}

/* Every entry of the ceremony is checked and signed for with the primary's
 * audit key. signing is the primary's session, which creates the log when
 * the directory does not exist yet; NULL for the backup token's entries
 * (the log exists by then). */
static hs_result record(const prov *c, hs_p11 *p, const hs_auditkey *key, hs_p11 *signing,
                        const hs_audit_entry *en, hs_error *e)
{
    hs_audit *a = NULL;
    hs_audit_context ac = {.token_label = p->label, .token_serial = p->serial,
                           .batch_id = c->batch, .audit_key = key, .p11 = signing};
    hs_result r = hs_audit_open(c->o->audit_dir, &ac, &a, e);
    if (r == HS_OK)
        r = hs_audit_append(a, en, NULL, e);
    hs_audit_close(a);
    return r;
}

static hs_result make_audit_key(prov *c, hs_p11 *p, hs_error *e)
{
    hs_auditkey *k = &c->audit_key;
    hs_result r = hs_auditkey_generate(p, c->cfg->audit_alg, k, e);
    if (r != HS_OK)
        return r;
    char *pem = NULL;
    r = hs_auditkey_public_pem(k->public_key, &pem, c->audit_fp, e);
    snprintf(c->t->audit_alg, sizeof c->t->audit_alg, "%s", hs_auditkey_alg_name(k->alg));
    if (r != HS_OK)
        return r;
    c->t->audit_pem = pem;
    memcpy(c->t->audit_fingerprint, c->audit_fp, 32);
    snprintf(c->t->audit_label, sizeof c->t->audit_label, "%s", HS_AUDITKEY_LABEL);
    char path[4096];
    r = out_path(c->o->out_dir, HS_CEREMONY_AUDIT_PEM, path, sizeof path, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(path, pem, strlen(pem), 0644, true, e);
    SHA256((const uint8_t *)pem, strlen(pem), c->t->audit_pem_file.sha256);
    snprintf(c->t->audit_pem_file.path, sizeof c->t->audit_pem_file.path, "%s",
             HS_CEREMONY_AUDIT_PEM);
    hs_audit_entry en = {.operation = "generate", .purpose = "ceremony-audit-key",
                         .key_name = HS_AUDITKEY_LABEL, .key_fingerprint = c->audit_fp,
                         .algorithm = c->t->audit_alg};
    if (r == HS_OK)
        r = record(c, p, k, p, &en, e);
    return r;
}

/* After the token is done: logged in as the new user, then as the new SO,
 * it holds exactly the wrap key (and on the primary the audit key pair),
 * nothing a previous holder could have left. */
static hs_result prove_token(prov *c, int t, const char *spec, hs_error *e)
{
    step(c, t == PRIMARY ? "primary token: checking it holds only what the ceremony made"
                         : "backup token: checking it holds only what the ceremony made");
    const char *labels[2] = {c->cfg->wrap_label, HS_AUDITKEY_LABEL};
    hs_p11 *p;
    hs_result r = hs_p11_open_args(c->o->module, c->o->module_init_args, &p, e);
    if (r == HS_OK)
        r = hs_p11_select_token(p, spec, e);
    if (r == HS_OK)
        r = hs_p11_prove_contents(p, c->pins[t][SO], c->pins[t][USER], labels,
                                  t == PRIMARY ? 2 : 1, t == PRIMARY ? 3 : 1, e);
    hs_p11_close(p);
    return r;
}

/* One token: PINs, wrap key, and on the primary the audit key. */
static hs_result provision_token(prov *c, int t, hs_error *e)
{
    const char *spec = t == PRIMARY ? c->cfg->primary : c->cfg->backup;
    char msg[160];
    snprintf(msg, sizeof msg, "%s token '%s': setting fresh SO and user PINs", token_role[t],
             c->info[t].label);
    step(c, msg);
    hs_p11 *p;
    hs_result r = hs_p11_open_args(c->o->module, c->o->module_init_args, &p, e);
    if (r == HS_OK)
        r = hs_p11_take_over_token(p, spec, c->state[t], c->o->current_so_pin[t],
                                   c->pins[t][SO], c->pins[t][USER], c->o->force_reset, e);
    if (r == HS_OK)
        r = hs_p11_read_token_details(p, &c->details[t], e);
    if (r == HS_OK)
        r = hs_p11_login_with_pin(p, c->pins[t][USER], e);
    /* The audit key first: the log is created with, and checked by, it
     * before the ceremony's first entry. */
    if (r == HS_OK && t == PRIMARY) {
        step(c, "primary token: generating the audit key");
        r = make_audit_key(c, p, e);
    }
    if (r == HS_OK) {
        snprintf(msg, sizeof msg, "%s token '%s' (serial %s): importing the wrap key",
                 token_role[t], p->label, p->serial);
        step(c, msg);
        hs_wrapkey wk;
        r = hs_wrapkey_import(p, c->cfg->wrap_label, c->key, &wk, e);
        if (r == HS_OK && !hs_ct_equal(wk.kcv, c->t->kcv, HS_SHARE_KCV_LEN))
            r = hs_fail(e, HS_E_VERIFY, "token '%s': the imported wrap key's check value differs",
                        p->label);
    }
    if (r == HS_OK) {
        hs_transcript_token *tt = &c->t->tokens[t];
        snprintf(tt->role, sizeof tt->role, "%s", token_role[t]);
        memcpy(tt->label, p->label, sizeof tt->label);
        memcpy(tt->serial, p->serial, sizeof tt->serial);
        memcpy(tt->model, p->model, sizeof tt->model);
        memcpy(tt->manufacturer, p->manufacturer, sizeof tt->manufacturer);
        memcpy(tt->firmware, c->details[t].firmware, sizeof tt->firmware);
        memcpy(tt->hardware, c->details[t].hardware, sizeof tt->hardware);
        hs_audit_entry en = {.operation = "wrapkey-import", .purpose = "ceremony-provision",
                             .key_name = c->cfg->wrap_label, .algorithm = "aes-256"};
        r = record(c, p, &c->audit_key, t == PRIMARY ? p : NULL, &en, e);
    }
    hs_p11_close(p);
    if (r == HS_OK)
        r = prove_token(c, t, spec, e);
    if (r != HS_OK)
        hs_error_prefix(e, "%s token: ", token_role[t]);
    return r;
}

static hs_result write_signed(const prov *c, hs_p11 *p, const hs_auditkey *k, const char *name,
                              const char *text, hs_error *e)
{
    char path[4096]; /* before signing: no signature is made for a file never written */
    hs_result r = out_path(c->o->out_dir, name, path, sizeof path, e);
    if (r != HS_OK)
        return r;
    uint8_t *sig;
    size_t sig_len;
    size_t len = strlen(text);
    r = hs_auditkey_sign(p, k, (const uint8_t *)text, len, &sig, &sig_len, e);
    if (r != HS_OK)
        return r;
    uint8_t tbs[32], sh[32];
    SHA256((const uint8_t *)text, len, tbs);
    SHA256(sig, sig_len, sh);
    hs_audit_entry en = {.operation = "sign", .purpose = "ceremony-transcript",
                         .key_name = HS_AUDITKEY_LABEL, .key_fingerprint = c->audit_fp,
                         .algorithm = hs_auditkey_alg_name(k->alg), .tbs_sha256 = tbs,
                         .sig_sha256 = sh, .artifact = name};
    /* Recorded before the signature is released, as for every signature. */
    r = record(c, p, k, p, &en, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(path, text, len, 0644, true, e);
    if (r == HS_OK) {
        char sig_path[4200];
        snprintf(sig_path, sizeof sig_path, "%s.sig", path);
        r = hs_write_file_atomic(sig_path, sig, sig_len, 0644, true, e);
    }
    free(sig);
    return r;
}

/* Once the primary's audit key exists, the aborted record is signed by it
 * and recorded in the audit log like the transcript would have been. */
static hs_result sign_aborted(prov *c, const char *json, hs_error *e)
{
    if (c->t->audit_pem == NULL)
        return hs_fail(e, HS_E_NOTFOUND, "no audit key yet");
    hs_p11 *p = NULL;
    hs_auditkey k = {0};
    hs_result r = hs_p11_open_args(c->o->module, c->o->module_init_args, &p, e);
    if (r == HS_OK)
        r = hs_p11_select_token(p, c->cfg->primary, e);
    if (r == HS_OK)
        r = hs_p11_login_with_pin(p, c->pins[PRIMARY][USER], e);
    if (r == HS_OK)
        r = hs_auditkey_find(p, &k, e);
    if (r == HS_OK)
        r = write_signed(c, p, &k, HS_CEREMONY_TRANSCRIPT_JSON, json, e);
    hs_auditkey_clear(&k);
    hs_p11_close(p);
    return r;
}

/* A ceremony that fails once its directory exists leaves, in place of
 * the transcript, a record saying what was done and that its share set is
 * void: restore and `shares verify` refuse it by name (docs/ceremony.md,
 * "If a ceremony fails"). Signed when the audit key exists (and the token
 * still answers); otherwise written alone: it only forbids, so it needs no
 * trust to be obeyed. */
static void write_aborted(prov *c, const hs_error *why)
{
    hs_error e;
    hs_error_clear(&e);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    (void)strftime(c->t->date, sizeof c->t->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(c->t->name, sizeof c->t->name, "%s", c->cfg->name);
    const char *done[16];
    size_t n = c->n_steps > 0 ? c->n_steps - 1 : 0;
    for (size_t i = 0; i < n; i++)
        done[i] = c->steps[i];
    char *json = NULL, path[4096];
    const char *failed_at = c->n_steps > 0 ? c->steps[c->n_steps - 1] : "?";
    hs_result r = hs_transcript_aborted_json(c->t, done, n, failed_at, why->msg, &json, &e);
    if (r == HS_OK)
        r = out_path(c->o->out_dir, HS_CEREMONY_TRANSCRIPT_JSON, path, sizeof path, &e);
    bool is_signed = r == HS_OK && sign_aborted(c, json, &e) == HS_OK;
    /* Replaces a transcript written before the failure: the set is void. */
    if (r == HS_OK && !is_signed)
        r = hs_write_file_atomic(path, json, strlen(json), 0644, false, &e);
    free(json);
    if (r == HS_OK)
        step(c, is_signed ? "ABORTED: the record in transcript.json (signed by the audit key) "
                            "voids this share set"
                          : "ABORTED: the record in transcript.json voids this share set");
    else
        step(c, "ABORTED, and the aborted record could not be written: the shares are void");
}

static hs_result write_transcript(prov *c, hs_error *e)
{
    step(c, "writing the transcript, signed by the audit key");
    hs_transcript *t = c->t;
    snprintf(t->name, sizeof t->name, "%s", c->cfg->name);
    snprintf(t->tool_version, sizeof t->tool_version, "%s", HSMSIGN_VERSION);
    snprintf(t->wrap_label, sizeof t->wrap_label, "%s", c->cfg->wrap_label);
    snprintf(t->profile, sizeof t->profile, "%s", c->o->profile != NULL ? c->o->profile : "wrapped");
    memcpy(t->roles, c->cfg->roles, sizeof t->roles);
    t->holders_may_hold_roles = c->cfg->holders_may_hold_roles;
    t->version = HS_TRANSCRIPT_VERSION;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    /* Cannot fail: the result is about 20 bytes, the field larger. */
    (void)strftime(t->date, sizeof t->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *json = NULL, *text = NULL;
    hs_p11 *p = NULL;
    hs_auditkey k = {0};
    hs_result r = hs_ceremony_self_sha256(t->tool_sha256, e);
    /* The module is loaded first, so that it is among the libraries. */
    if (r == HS_OK)
        r = hs_p11_open_args(c->o->module, c->o->module_init_args, &p, e);
    if (r == HS_OK)
        r = hash_file(p->module_path, &t->module, e);
    if (r == HS_OK)
        r = hash_libraries(t, e);
    if (r == HS_OK)
        r = hs_transcript_to_json(t, &json, e);
    if (r == HS_OK)
        r = hs_transcript_to_text(t, &text, e);
    if (r == HS_OK)
        r = hs_p11_select_token(p, t->tokens[PRIMARY].label, e);
    if (r == HS_OK)
        r = hs_p11_login_with_pin(p, c->pins[PRIMARY][USER], e);
    if (r == HS_OK)
        r = hs_auditkey_find(p, &k, e);
    if (r == HS_OK)
        r = write_signed(c, p, &k, HS_CEREMONY_TRANSCRIPT_JSON, json, e);
    if (r == HS_OK)
        r = write_signed(c, p, &k, HS_CEREMONY_TRANSCRIPT_TEXT, text, e);
    hs_checkpoint_result cp;
    if (r == HS_OK)
        r = hs_auditlog_checkpoint(c->o->audit_dir, p, &k, &cp, e);
    hs_auditkey_clear(&k);
    hs_p11_close(p);
    free(json);
    free(text);
    return r;
}

static void wipe_all(prov *c)
{
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++)
            if (c->pins[t][k] != NULL)
                hs_secure_free(c->pins[t][k], PIN_LEN + 1);
    if (c->key != NULL)
        hs_secure_free(c->key, 32);
    if (c->shares != NULL)
        hs_share_free_array(c->shares, c->cfg->n_holders);
    c->key = NULL;
    c->shares = NULL;
    memset(c->pins, 0, sizeof c->pins);
    hs_auditkey_clear(&c->audit_key);
}

hs_result hs_ceremony_provision(const hs_ceremony_config *cfg, const hs_provision_options *o,
                                hs_transcript **out, hs_error *e)
{
    *out = NULL;
    prov c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    c.o = o;
    c.t = calloc(1, sizeof *c.t);
    if (c.t == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    if (o->out_dir == NULL || o->audit_dir == NULL) {
        free(c.t);
        return hs_fail(e, HS_E_INTERNAL, "provisioning needs a ceremony and an audit directory");
    }
    uint8_t batch[16];
    if (RAND_bytes(batch, sizeof batch) != 1) {
        free(c.t);
        return hs_fail(e, HS_E_CRYPTO, "no randomness");
    }
    hs_hex_encode(batch, sizeof batch, c.batch);
    step(&c, "checking that both tokens are blank");
    hs_result r = check_out_dir(o->out_dir, e);
    if (r == HS_OK)
        r = probe_tokens(&c, e);
    if (r == HS_OK)
        r = check_audit_dir(o->audit_dir, e);
    if (r == HS_OK) {
        step(&c, "generating PINs and the wrap key in locked memory, splitting it");
        r = make_secrets(&c, e);
    }
    /* From here on a failure leaves files (and maybe changed tokens). */
    bool started = r == HS_OK;
    if (r == HS_OK)
        r = prepare_out_dir(o->out_dir, e);
    if (r == HS_OK) {
        step(&c, "encrypting the shares and the PINs to their holders");
        r = write_shares(&c, e);
    }
    if (r == HS_OK)
        r = write_credentials(&c, e);
    /* The shares are written: the wrap key is needed only for the imports. */
    hs_share_free_array(c.shares, cfg->n_holders);
    c.shares = NULL;
    for (int t = PRIMARY; r == HS_OK && t <= BACKUP; t++)
        r = provision_token(&c, t, e);
    hs_secure_free(c.key, 32);
    c.key = NULL;
    if (r == HS_OK)
        r = write_transcript(&c, e);
    if (r != HS_OK && started)
        write_aborted(&c, e); /* before the wipe: it may sign with the primary's PIN */
    wipe_all(&c);
    if (r != HS_OK) {
        hs_transcript_free(c.t);
        return r;
    }
    *out = c.t;
    return HS_OK;
}
