/* hsmsign audit: show, verify, prove, verify-proof, key; and the
 * checkpoint signed at the end of every command that appended entries. */
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "audit/check.h"
#include "audit/git.h"
#include "audit/log.h"
#include "audit/policy.h"
#include "audit/proof.h"
#include "audit/restart.h"
#include "cli.h"
#include "signer/raw.h"
#include "util/encoding.h"
#include "util/file.h"

#define MAX_NOTE 65536

/* Called by cli_close (and by the agent after a quiet batch): the entries
 * are already durable, so a checkpoint that cannot be signed does not undo
 * the command; it is reported, and the next command's gate accepts these
 * entries as an extension of the latest checkpoint, whose own checkpoint
 * then covers them too. Entries that only record reuse or outputs defer
 * the checkpoint to the next command that uses a key in the HSM
 * (record.h, docs/audit-log.md "Deferred checkpoints"). */
void cli_audit_checkpoint(cli_ctx *ctx)
{
    if (ctx->audit == NULL || ctx->p11 == NULL || ctx->audit_key.public_key == NULL)
        return;
    const char *dir = hs_audit_dir(ctx->audit);
    if (!hs_audit_checkpoint_due(ctx->audit)) {
        if (ctx->g->verbose && hs_audit_appended(ctx->audit) > 0)
            fprintf(stderr, "audit log %s: only reuse/output entries recorded (durable); "
                            "checkpoint deferred to the next signature\n", dir);
        return;
    }
    hs_error e;
    hs_error_clear(&e);
    hs_checkpoint_result res;
    hs_result r = hs_auditlog_checkpoint(dir, ctx->p11, &ctx->audit_key, &res, &e);
    if (r != HS_OK) {
        fprintf(stderr, "hsmsign: audit log %s: no checkpoint signed (the entries are recorded): "
                        "%s\n", dir, e.msg);
        return;
    }
    hs_audit_checkpoint_done(ctx->audit);
    if (ctx->g->verbose && res.signed_new)
        fprintf(stderr, "audit log %s: checkpoint %llu signed\n", dir,
                (unsigned long long)res.cp.size);
}

/* The auditor's key: --public-key PEM (offline), else the token's. */
static int auditor_key(const cli_globals *g, const char *pem_path, EVP_PKEY **pub)
{
    hs_error e;
    hs_error_clear(&e);
    if (pem_path != NULL)
        return hs_auditkey_load_public(pem_path, pub, &e) == HS_OK ? 0 : cli_fail(g, &e);
    cli_ctx ctx;
    int rc = cli_open(g, CLI_TOKEN, &ctx);
    if (rc != 0)
        return rc;
    /* The public object is CKA_PRIVATE=false: no PIN is needed to read it. */
    hs_result r = hs_auditkey_find_public(ctx.p11, pub, &e);
    cli_close(&ctx);
    return r == HS_OK ? 0 : cli_fail(g, &e);
}

static const char show_help[] =
    "usage: hsmsign [--json] audit show\n"
    "\n"
    "Lists the audit log's entries: sequence number, time, operation, key,\n"
    "artifact and the start of the signature's SHA-256.\n";

static int audit_show(const cli_globals *g, int argc, char **argv)
{
    bool json = g->json;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(show_help, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") != 0)
            return cli_usage("audit show", "unknown argument '%s'", argv[i]);
        json = true;
    }
    hs_error e;
    hs_error_clear(&e);
    hs_auditlog log;
    if (hs_auditlog_load(g->audit_log, &log, &e) != HS_OK)
        return cli_fail(g, &e);
    json_t *all = json ? json_array() : NULL;
    if (!json)
        printf("%-6s %-20s %-15s %-16s %-12s %s\n", "SEQ", "TIME (UTC)", "OPERATION", "KEY",
               "SIG SHA-256", "ARTIFACT");
    for (size_t i = 0; i < log.count; i++) {
        size_t len;
        const char *line = hs_auditlog_entry(&log, i, &len);
        json_t *o = json_loadb(line, len, 0, NULL);
        if (json) {
            json_array_append_new(all, o != NULL ? o : json_string("(malformed entry)"));
            continue;
        }
        const char *op = json_string_value(json_object_get(o, "op"));
        const char *purpose = json_string_value(json_object_get(o, "purpose"));
        const char *sig = json_string_value(json_object_get(o, "sig_sha256"));
        const char *art = json_string_value(json_object_get(o, "artifact"));
        char opbuf[64];
        snprintf(opbuf, sizeof opbuf, "%s%s%s", op ? op : "?", purpose ? "/" : "",
                 purpose ? purpose : "");
        printf("%-6zu %-20s %-15s %-16s %-12.12s %s\n", i,
               o ? json_string_value(json_object_get(o, "time")) : "(malformed)", opbuf,
               o && json_object_get(o, "key") ? json_string_value(json_object_get(o, "key")) : "-",
               sig ? sig : "-", art ? art : "");
        json_decref(o);
    }
    hs_auditlog_free(&log);
    if (json)
        cli_print_json(all);
    return 0;
}

static const char verify_help[] =
    "usage: hsmsign audit verify [--audit-key PEM] [--checkpoint OLD] [--git]\n"
    "\n"
    "Recomputes the Merkle tree over every entry, checks each entry's sequence\n"
    "number, and checks the latest checkpoint and every one in checkpoints/:\n"
    "signed by the audit key, and committing to a prefix of the entries.\n"
    "  --audit-key PEM   the auditor's copy of the audit public key (offline;\n"
    "                    also --public-key); default: the token's audit key,\n"
    "                    never a key stored in the log directory\n"
    "  --checkpoint OLD  a checkpoint saved earlier: proves the log is an\n"
    "                    append-only extension of it (consistency proof)\n"
    "  --git             also walk the directory's git history: every commit\n"
    "                    only appended entries and signed consistent checkpoints\n"
    "                    (with --checkpoint OLD: from the commit holding OLD on)\n"
    "Exit status 1 when anything does not hold.\n";

static int report_verify(const cli_globals *g, const hs_auditlog_report *rep, bool git,
                         const hs_auditgit_report *gr)
{
    if (g->json) {
        json_t *o = json_pack("{s:b, s:I, s:I, s:I, s:I, s:b}", "ok", 1, "entries",
                              (json_int_t)rep->entries, "checkpoint_size",
                              (json_int_t)rep->checked_size, "checkpoints",
                              (json_int_t)rep->checkpoints, "uncovered",
                              (json_int_t)rep->uncovered, "torn_last_line", rep->torn);
        json_object_set_new(o, "uncovered_deferred",
                            json_integer((json_int_t)rep->uncovered_deferred));
        if (rep->old_checked)
            json_object_set_new(o, "consistent_with_size", json_integer((json_int_t)rep->old_size));
        if (git) {
            json_object_set_new(o, "git_commits", json_integer((json_int_t)gr->commits));
            json_object_set_new(o, "git_commits_before_checkpoint",
                                json_integer((json_int_t)gr->skipped));
        }
        cli_print_json(o);
        return 0;
    }
    printf("audit log %s: %zu entries, latest checkpoint covers %llu; %zu checkpoint signatures "
           "verified\n", g->audit_log, rep->entries, (unsigned long long)rep->checked_size,
           rep->checkpoints);
    if (rep->old_checked)
        printf("  append-only extension of the checkpoint of size %llu\n",
               (unsigned long long)rep->old_size);
    if (git && gr->from_checkpoint)
        printf("  git history: %zu commits from the --checkpoint's, append-only (%zu before it "
               "not read)\n", gr->commits, gr->skipped);
    else if (git)
        printf("  git history: %zu commits, append-only\n", gr->commits);
    if (rep->uncovered > rep->uncovered_deferred)
        printf("  note: %zu entries after the latest checkpoint are not yet signed for\n",
               rep->uncovered);
    else if (rep->uncovered > 0)
        printf("  note: %zu reuse/output entries after the latest checkpoint wait for the next "
               "checkpoint (deferred: they record no new use of a key)\n",
               rep->uncovered);
    if (rep->torn)
        printf("  note: an incomplete last line (a crash before it was acknowledged) is ignored\n");
    return 0;
}

static int audit_verify(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"public-key", required_argument, NULL, 'p'},
        {"audit-key", required_argument, NULL, 'p'}, /* the name shares verify uses */
        {"checkpoint", required_argument, NULL, 'c'},
        {"git", no_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pem = NULL, *old_path = NULL;
    bool git = false;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pem = optarg; break;
        case 'c': old_path = optarg; break;
        case 'g': git = true; break;
        case 'h': fputs(verify_help, stdout); return 0;
        default: return cli_usage("audit verify", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage("audit verify", "no positional arguments are taken");
    hs_error e;
    hs_error_clear(&e);
    uint8_t *old = NULL;
    size_t old_len = 0;
    if (old_path != NULL && hs_read_file(old_path, MAX_NOTE, &old, &old_len, &e) != HS_OK)
        return cli_fail(g, &e);
    EVP_PKEY *pub = NULL;
    int rc = auditor_key(g, pem, &pub);
    if (rc != 0) {
        free(old);
        return rc;
    }
    hs_auditlog_report rep;
    hs_auditgit_report gr;
    memset(&gr, 0, sizeof gr);
    hs_result r = hs_auditlog_verify(g->audit_log, pub, (const char *)old, old_len, &rep, &e);
    /* OLD is trusted only once hs_auditlog_verify proved the log extends it. */
    if (r == HS_OK && git)
        r = hs_auditgit_verify(g->audit_log, pub, (const char *)old, old_len, &gr, &e);
    EVP_PKEY_free(pub);
    free(old);
    if (r != HS_OK)
        return cli_fail(g, &e);
    return report_verify(g, &rep, git, &gr);
}

/* The newest entry whose input, output or signature is the file. */
static hs_result find_entry(const hs_auditlog *log, const char *artifact, size_t *index,
                            hs_error *e)
{
    uint8_t digest[64], sha[32];
    unsigned dlen;
    uint64_t size;
    hs_result r = hs_hash_file(artifact, EVP_sha256(), digest, &dlen, sha, &size, e);
    if (r != HS_OK)
        return r;
    char hex[65];
    hs_hex_encode(sha, 32, hex);
    static const char *const fields[] = {"output_sha256", "input_sha256", "sig_sha256"};
    for (size_t i = log->count; i-- > 0;) {
        size_t len;
        const char *line = hs_auditlog_entry(log, i, &len);
        json_t *o = json_loadb(line, len, 0, NULL);
        bool hit = false;
        for (size_t f = 0; f < 3 && !hit; f++) {
            const char *v = json_string_value(json_object_get(o, fields[f]));
            hit = v != NULL && strcmp(v, hex) == 0;
        }
        json_decref(o);
        if (hit) {
            *index = i;
            return HS_OK;
        }
    }
    return hs_fail(e, HS_E_NOTFOUND, "%s (SHA-256 %s) is not the input, output or signature of "
                                     "any audit entry", artifact, hex);
}

static const char prove_help[] =
    "usage: hsmsign audit prove [--index N] [-o PROOF] [ARTIFACT]\n"
    "\n"
    "Writes an inclusion proof (c2sp.org/tlog-proof@v1) for the newest entry\n"
    "whose input, output or signature file is ARTIFACT (by SHA-256), or for\n"
    "entry N, against the latest signed checkpoint. It carries the entry and\n"
    "the checkpoint, and is checked offline by `hsmsign audit verify-proof`.\n";

static int audit_prove(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"index", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    unsigned long index = 0;
    bool by_index = false;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (!cli_parse_uint(optarg, SIZE_MAX, &index))
                return cli_usage("audit prove", "--index takes a number");
            by_index = true;
            break;
        case 'o': out = optarg; break;
        case 'h': fputs(prove_help, stdout); return 0;
        default: return cli_usage("audit prove", "unknown option");
        }
    }
    if (optind + (by_index ? 0 : 1) != argc)
        return cli_usage("audit prove", "give ARTIFACT or --index N");
    /* A proof written over the log itself would destroy what it proves. */
    int rc = out != NULL ? cli_check_output(g, out, NULL, 0) : 0;
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    hs_auditlog log;
    if (hs_auditlog_load(g->audit_log, &log, &e) != HS_OK)
        return cli_fail(g, &e);
    size_t at = index;
    uint8_t *note = NULL;
    size_t note_len = 0;
    char *proof = NULL, *cp_path = NULL;
    hs_result r = by_index ? HS_OK : find_entry(&log, argv[optind], &at, &e);
    if (r == HS_OK && asprintf(&cp_path, "%s/" HS_AUDIT_CHECKPOINT_FILE, g->audit_log) < 0)
        r = hs_fail(&e, HS_E_NOMEM, "out of memory");
    if (r == HS_OK)
        r = hs_read_file(cp_path, MAX_NOTE, &note, &note_len, &e);
    if (r == HS_OK)
        r = hs_proof_make(&log, at, (const char *)note, note_len, &proof, &e);
    if (r == HS_OK && out != NULL)
        r = hs_write_file_atomic(out, proof, strlen(proof), 0644, false, &e);
    else if (r == HS_OK)
        fputs(proof, stdout);
    free(cp_path);
    free(note);
    free(proof);
    hs_auditlog_free(&log);
    if (r != HS_OK)
        return cli_fail(g, &e);
    if (out != NULL)
        cli_note(g, "proof of entry %zu written to %s", at, out);
    return 0;
}

static const char verify_proof_help[] =
    "usage: hsmsign audit verify-proof [--public-key PEM] PROOF\n"
    "\n"
    "Checks an inclusion proof offline: the checkpoint's signature with the\n"
    "auditor's public key, then the entry's inclusion under its root. Prints\n"
    "the entry. Without --public-key, the token's audit key is used.\n";

static int audit_verify_proof(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"public-key", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pem = NULL;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pem = optarg; break;
        case 'h': fputs(verify_proof_help, stdout); return 0;
        default: return cli_usage("audit verify-proof", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage("audit verify-proof", "PROOF is required");
    hs_error e;
    hs_error_clear(&e);
    uint8_t *text;
    size_t len;
    if (hs_read_file(argv[optind], 1 << 20, &text, &len, &e) != HS_OK)
        return cli_fail(g, &e);
    EVP_PKEY *pub = NULL;
    int rc = auditor_key(g, pem, &pub);
    if (rc != 0) {
        free(text);
        return rc;
    }
    hs_proof_result res;
    hs_result r = hs_proof_verify((const char *)text, len, pub, &res, &e);
    EVP_PKEY_free(pub);
    free(text);
    if (r != HS_OK)
        return cli_fail(g, &e);
    if (g->json) {
        json_t *o = json_pack("{s:b, s:s, s:I, s:I}", "ok", 1, "origin", res.cp.origin, "index",
                              (json_int_t)res.index, "tree_size", (json_int_t)res.cp.size);
        json_object_set_new(o, "entry", json_loadb(res.entry, res.entry_len, 0, NULL));
        cli_print_json(o);
    } else {
        printf("entry %llu is included in the log '%s' of %llu entries:\n%s\n",
               (unsigned long long)res.index, res.cp.origin, (unsigned long long)res.cp.size,
               res.entry);
    }
    hs_proof_result_free(&res);
    return 0;
}

static const char init_help[] =
    "usage: hsmsign audit init\n"
    "\n"
    "Creates the audit log (--audit-log DIR): the directory and its git\n"
    "repository, an empty entries.jsonl, and a checkpoint of size 0 signed by\n"
    "the token's audit key (created, and recorded, when the token has none).\n"
    "The first command on a directory that does not exist does the same. An\n"
    "existing log is never replaced: refused (exit 9); see `audit restart`.\n";

/* The audit log's creation needs the audit key, so a token restored from
 * shares (which holds none) gets one here, recorded in the new log. */
static int audit_create(const cli_globals *g, const char *reason)
{
    cli_ctx ctx;
    int rc = cli_open(g, CLI_LOGIN, &ctx);
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    bool created = false;
    hs_audit_restart_result res;
    memset(&res, 0, sizeof res);
    hs_result r = cli_ensure_audit_key(&ctx, &created, &e);
    hs_audit_context ac = {.token_label = ctx.p11->label, .token_serial = ctx.p11->serial,
                           .batch_id = getenv("HSMSIGN_BATCH_ID"),
                           .audit_key = &ctx.audit_key, .p11 = ctx.p11};
    if (r == HS_OK)
        r = reason != NULL ? hs_auditlog_restart(g->audit_log, &ac, reason, &res, &e)
                           : hs_auditlog_init(g->audit_log, ctx.p11, &ctx.audit_key, &e);
    if (r == HS_OK && created)
        r = cli_open_audit(&ctx, &e);
    if (r == HS_OK && created)
        r = cli_record_audit_key(&ctx, &e);
    if (r != HS_OK) {
        cli_close(&ctx);
        return cli_fail(g, &e);
    }
    if (created)
        cli_note(g, "created the audit key '%s' on token '%s'", HS_AUDITKEY_LABEL, ctx.p11->label);
    if (reason == NULL)
        cli_note(g, "audit log %s created (checkpoint of size 0 signed)", g->audit_log);
    else
        cli_note(g, "audit log %s started over: the old log (%zu entries, %s) is kept in %s; "
                    "the new log records the restart as entry 0", g->audit_log, res.old_entries,
                 !res.old_checkpoint ? "no checkpoint"
                 : res.old_verified  ? "its checkpoint verifies with this audit key"
                                     : "its checkpoint does NOT verify with this audit key",
                 res.old_dir);
    cli_close(&ctx);
    return 0;
}

static int audit_init(const cli_globals *g, int argc, char **argv)
{
    int pre = cli_plain_args(argc, argv, 0, "audit init", init_help, NULL);
    if (pre >= 0)
        return pre;
    return audit_create(g, NULL);
}

static const char checkpoint_help[] =
    "usage: hsmsign audit checkpoint\n"
    "\n"
    "Signs a checkpoint for the whole log with the token's audit key when\n"
    "entries follow the latest one (and commits it to the log's git\n"
    "repository): for a tail of reuse/output entries, whose checkpoint is\n"
    "otherwise deferred to the next command that signs in the HSM. Nothing\n"
    "is signed when the latest checkpoint already covers the log.\n";

static int audit_checkpoint(const cli_globals *g, int argc, char **argv)
{
    cli_ctx ctx;
    int rc = cli_plain_open(g, argc, argv, "audit checkpoint", checkpoint_help, CLI_LOGIN, &ctx);
    if (rc >= 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    hs_checkpoint_result res;
    hs_result r = cli_open_audit(&ctx, &e);
    if (r == HS_OK)
        r = hs_auditlog_checkpoint(g->audit_log, ctx.p11, &ctx.audit_key, &res, &e);
    cli_close(&ctx);
    if (r != HS_OK)
        return cli_fail(g, &e);
    if (g->json)
        cli_print_json(json_pack("{s:b, s:I, s:b}", "ok", 1, "size", (json_int_t)res.cp.size,
                                 "signed", res.signed_new));
    else if (res.signed_new)
        printf("audit log %s: checkpoint %llu signed\n", g->audit_log,
               (unsigned long long)res.cp.size);
    else
        printf("audit log %s: the latest checkpoint (%llu) already covers the log\n",
               g->audit_log, (unsigned long long)res.cp.size);
    return 0;
}

static const char restart_help[] =
    "usage: hsmsign audit restart --reason TEXT\n"
    "\n"
    "Disaster recovery: starts the audit log over when it cannot be continued\n"
    "(its audit key was lost with a token, its files were damaged). The old\n"
    "directory is kept, renamed to DIR.before-restart-<UTC time>, never\n"
    "deleted. The new log's first entry records the event: the reason, the\n"
    "old log's entry count and the SHA-256 of its entries file, its latest\n"
    "checkpoint's size and root hash (and whether it verifies with the audit\n"
    "key); the new log's first checkpoint signs it. Creates the audit key when\n"
    "the token has none.\n";

static int audit_restart(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"reason", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *reason = NULL;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': reason = optarg; break;
        case 'h': fputs(restart_help, stdout); return 0;
        default: return cli_usage("audit restart", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage("audit restart", "no positional arguments are taken");
    if (reason == NULL || reason[0] == '\0')
        return cli_usage("audit restart", "--reason TEXT is required: it is recorded in the new log");
    return audit_create(g, reason);
}

static const char key_help[] =
    "usage: hsmsign audit key\n\nPrints the token's audit public key (PEM), the one auditors give "
    "to\n`audit verify --public-key` and `openssl`.\n";

static int audit_key(const cli_globals *g, int argc, char **argv)
{
    int rc = cli_plain_args(argc, argv, 0, "audit key", key_help, NULL);
    if (rc >= 0)
        return rc;
    EVP_PKEY *pub = NULL;
    rc = auditor_key(g, NULL, &pub);
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    char *pem;
    uint8_t fp[32];
    hs_result r = hs_auditkey_public_pem(pub, &pem, fp, &e);
    EVP_PKEY_free(pub);
    if (r != HS_OK)
        return cli_fail(g, &e);
    fputs(pem, stdout);
    free(pem);
    return 0;
}

static const char check_help[] =
    "usage: hsmsign audit check DIR|FILE\n"
    "\n"
    "Finds the signatures in the artifacts under DIR, or in FILE (*.apk: v1, v2\n"
    "and v3 signers; *.img: the vbmeta signature of AVB images, vbmeta.img and\n"
    "partition images with a footer, e.g. an unzipped target-files' IMAGES/;\n"
    "*.zip: the whole-file signature of OTA packages (signapk -w, sign ota);\n"
    "*.apex: the container's APK signers and the vbmeta signature of its\n"
    "apex_payload.img, reported as FILE.apex!apex_payload.img; raw FILE.sig\n"
    "next to FILE, SHA-256 RSA PKCS#1 v1.5 or ECDSA), keeps those made\n"
    "by a key of the key store, and reports each that has no audit log entry\n"
    "(matched by the SHA-256 of the signature): a signature made outside the\n"
    "log. Exit status 1 when there is any. Needs no token.\n";

static int audit_check(const cli_globals *g, int argc, char **argv)
{
    int pre = cli_plain_args(argc, argv, 1, "audit check", check_help, "DIR or FILE is required");
    if (pre >= 0)
        return pre;
    hs_error e;
    hs_error_clear(&e);
    hs_audit_check_report rep;
    if (hs_audit_check_dir(g->audit_log, g->keystore, argv[1], &rep, &e) != HS_OK) {
        hs_audit_check_report_free(&rep);
        return cli_fail(g, &e);
    }
    json_t *list = g->json ? json_array() : NULL;
    for (size_t i = 0; i < rep.unlogged; i++) {
        const hs_audit_finding *f = &rep.findings[i];
        char hex[65];
        hs_hex_encode(f->sig_sha256, 32, hex);
        if (list != NULL)
            json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "artifact", f->path,
                                                  "scheme", f->scheme, "key", f->key,
                                                  "sig_sha256", hex));
        else
            printf("NOT IN LOG: %s (%s signature by key '%s', SHA-256 %s)\n", f->path, f->scheme,
                   f->key, hex);
    }
    if (list != NULL)
        cli_print_json(json_pack("{s:b, s:I, s:I, s:I, s:o}", "ok", rep.unlogged == 0, "files",
                                 (json_int_t)rep.files, "signatures", (json_int_t)rep.signatures,
                                 "ours", (json_int_t)rep.ours, "unlogged", list));
    else
        printf("%zu artifacts, %zu signatures, %zu by our keys, %zu without a log entry\n",
               rep.files, rep.signatures, rep.ours, rep.unlogged);
    int rc = rep.unlogged > 0 ? 1 : 0;
    hs_audit_check_report_free(&rep);
    return rc;
}

static const char policy_help[] =
    "usage: hsmsign audit policy [--batch ID] POLICY.json\n"
    "\n"
    "Checks the log's signatures against a policy: which key may sign which\n"
    "artifacts (file-name patterns), and how many artifacts each key signs per\n"
    "release (a batch id: HSMSIGN_BATCH_ID groups a release's commands). With\n"
    "--batch, only that release. Exit status 1 on any violation. Format:\n"
    "docs/audit-log.md.\n";

static int audit_policy(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"batch", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *batch = NULL;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': batch = optarg; break;
        case 'h': fputs(policy_help, stdout); return 0;
        default: return cli_usage("audit policy", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage("audit policy", "POLICY.json is required");
    hs_error e;
    hs_error_clear(&e);
    hs_policy_report rep;
    if (hs_audit_policy_check(g->audit_log, argv[optind], batch, &rep, &e) != HS_OK) {
        hs_policy_report_free(&rep);
        return cli_fail(g, &e);
    }
    if (g->json) {
        json_t *list = json_array();
        for (size_t i = 0; i < rep.violations; i++)
            json_array_append_new(list, json_string(rep.messages[i]));
        cli_print_json(json_pack("{s:b, s:I, s:I, s:o}", "ok", rep.violations == 0, "signatures",
                                 (json_int_t)rep.signatures, "releases", (json_int_t)rep.batches,
                                 "violations", list));
    } else {
        for (size_t i = 0; i < rep.violations; i++)
            printf("VIOLATION: %s\n", rep.messages[i]);
        printf("%zu signatures, %zu release(s), %zu violations\n", rep.signatures, rep.batches,
               rep.violations);
    }
    int rc = rep.violations > 0 ? 1 : 0;
    hs_policy_report_free(&rep);
    return rc;
}

int cmd_audit(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"init", audit_init, "create the audit log (signed checkpoint of size 0)"},
        {"restart", audit_restart, "disaster recovery: start over, keeping the old log"},
        {"show", audit_show, "list the entries"},
        {"checkpoint", audit_checkpoint, "sign a checkpoint over a deferred tail now"},
        {"verify", audit_verify, "check the tree, checkpoints, git history"},
        {"prove", audit_prove, "inclusion proof for an artifact's entry"},
        {"verify-proof", audit_verify_proof, "check an inclusion proof offline"},
        {"key", audit_key, "print the audit public key"},
        {"check", audit_check, "find signatures by our keys with no log entry"},
        {"policy", audit_policy, "check signatures against a key/artifact policy"},
    };
    return cli_dispatch(g, "audit", "The tamper-evident log of every key use.", subs,
                        sizeof subs / sizeof subs[0], argc, argv);
}
