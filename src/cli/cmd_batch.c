/* `hsmsign sign batch`: the APKs a manifest lists, signed in parallel and
 * published by groups. The signing of one APK is sign apk's (cmd_apk.h). */
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_apk.h"
#include "signer/manifest.h"
#include "util/file.h"

/* sign batch: APKs signed by up to one thread per CPU, every call into
 * the signer serialised (apk_via), outputs left unpublished and published
 * by groups (publish_group): one fsync of the log for the group's entries,
 * then each tail written, each file fsynced and renamed, each directory
 * fsynced once. No output byte holding a signature, and no rename, before
 * the entries are durable. A group is bounded in outputs and memory. */
#define BATCH_MAX_THREADS 8
#define GROUP_MAX_OUTPUTS 32
#define GROUP_MAX_BYTES (8u * 1024u * 1024u)

typedef struct batch_run {
    const cli_globals *g;
    hs_signer *signer;
    cli_artcache *ac; /* on: one thread, outputs published one by one */
    const hs_apk_options *opt;
    const hs_batch_item *items;
    size_t n;
    pthread_mutex_t lock;
    size_t next, started;
    hs_result *res;
    hs_error *errs;
    hs_apk_report *reps;
    hs_apk_pending **pending; /* per item, until published */
    size_t group[GROUP_MAX_OUTPUTS], group_n, group_bytes;
} batch_run;

static void group_fail(batch_run *b, size_t i, hs_result r, const hs_error *e)
{
    b->res[i] = r;
    b->errs[i] = *e;
    hs_error_prefix(&b->errs[i], "%s: ", b->items[i].input);
}

/* The directory of each published output, fsynced once per distinct one. */
static void sync_group_dirs(batch_run *b, const size_t *group, size_t n)
{
    char *done[GROUP_MAX_OUTPUTS];
    size_t n_done = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = group[k];
        if (b->res[i] != HS_OK)
            continue;
        char *copy = strdup(hs_apk_pending_path(b->pending[i]));
        char *dir = copy ? strdup(dirname(copy)) : NULL;
        free(copy);
        hs_error e = {0};
        hs_result r = dir ? HS_OK : hs_fail(&e, HS_E_NOMEM, "out of memory");
        bool seen = false;
        for (size_t d = 0; r == HS_OK && d < n_done && !seen; d++)
            seen = strcmp(done[d], dir) == 0;
        if (r == HS_OK && !seen)
            r = hs_fsync_dir(dir, &e);
        if (r != HS_OK) {
            group_fail(b, i, r, &e);
            free(dir);
        } else if (!seen) {
            done[n_done++] = dir;
        } else {
            free(dir);
        }
    }
    while (n_done > 0)
        free(done[--n_done]);
}

/* Called with the lock held, returns with it held. Under the lock: the
 * log's fsync (every entry of the group is durable after it) and the
 * tails. Without it, so the other threads go on signing: the outputs'
 * fsyncs, renames and directory fsyncs (their items belong to this group
 * alone now). */
static void publish_group(batch_run *b)
{
    size_t group[GROUP_MAX_OUTPUTS], n = b->group_n;
    if (n == 0)
        return;
    memcpy(group, b->group, n * sizeof *group);
    b->group_n = 0;
    b->group_bytes = 0;
    hs_error e = {0};
    hs_result r = hs_signer_sync(b->signer, &e);
    for (size_t k = 0; k < n; k++) {
        hs_result rk = r == HS_OK ? hs_apk_pending_write(b->pending[group[k]], &e) : r;
        if (rk != HS_OK)
            group_fail(b, group[k], rk, &e);
    }
    pthread_mutex_unlock(&b->lock);
    for (size_t k = 0; k < n; k++) {
        size_t i = group[k];
        if (b->res[i] == HS_OK && (r = hs_apk_pending_publish(b->pending[i], &e)) != HS_OK)
            group_fail(b, i, r, &e);
    }
    sync_group_dirs(b, group, n);
    for (size_t k = 0; k < n; k++) {
        hs_apk_pending_free(b->pending[group[k]]);
        b->pending[group[k]] = NULL;
    }
    pthread_mutex_lock(&b->lock);
}

static void *batch_worker(void *arg)
{
    batch_run *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->lock);
        size_t i = b->next++;
        if (i < b->n)
            cli_progress(b->g, ++b->started, b->n, b->items[i].input);
        pthread_mutex_unlock(&b->lock);
        if (i >= b->n)
            break;
        const hs_batch_item *it = &b->items[i];
        apk_rotation rot = {it->lineage, it->old_key, it->rotation_min_sdk, false};
        hs_apk_pending *p = NULL;
        apk_via via = {b->signer, &b->lock, b->ac->c != NULL ? NULL : &p};
        b->res[i] = cmd_apk_sign_one(&via, b->ac, it->key, &rot, it->input, it->output, b->opt,
                                     it->min_sdk, &b->reps[i], &b->errs[i]);
        if (p == NULL)
            continue; /* failed, or committed on its own (v4) */
        pthread_mutex_lock(&b->lock);
        b->pending[i] = p;
        b->group[b->group_n++] = i;
        b->group_bytes += hs_apk_pending_size(p);
        if (b->group_n == GROUP_MAX_OUTPUTS || b->group_bytes >= GROUP_MAX_BYTES)
            publish_group(b);
        pthread_mutex_unlock(&b->lock);
    }
    return NULL;
}

static unsigned batch_threads(size_t n)
{
    cpu_set_t set;
    unsigned cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
    if (cpus > BATCH_MAX_THREADS)
        cpus = BATCH_MAX_THREADS;
    return n < cpus ? (unsigned)n : cpus > 0 ? cpus : 1;
}

static int run_batch(batch_run *b)
{
    b->res = calloc(b->n, sizeof *b->res);
    b->errs = calloc(b->n, sizeof *b->errs);
    b->reps = calloc(b->n, sizeof *b->reps);
    b->pending = calloc(b->n, sizeof *b->pending);
    if (b->res == NULL || b->errs == NULL || b->reps == NULL || b->pending == NULL) {
        fprintf(stderr, "hsmsign: out of memory\n");
        return 10;
    }
    pthread_mutex_init(&b->lock, NULL);
    pthread_t tids[BATCH_MAX_THREADS];
    unsigned want = b->ac->c != NULL ? 1 : batch_threads(b->n), started = 0;
    /* The calling thread works too: a batch runs even if no thread starts. */
    while (started + 1 < want && pthread_create(&tids[started], NULL, batch_worker, b) == 0)
        started++;
    batch_worker(b);
    while (started > 0)
        pthread_join(tids[--started], NULL);
    pthread_mutex_lock(&b->lock);
    publish_group(b);
    pthread_mutex_unlock(&b->lock);
    pthread_mutex_destroy(&b->lock);
    cli_progress_end(b->g);
    return 0;
}

static void batch_run_free(batch_run *b)
{
    for (size_t i = 0; b->pending != NULL && i < b->n; i++)
        hs_apk_pending_free(b->pending[i]);
    free(b->pending);
    free(b->res);
    free(b->errs);
    free(b->reps);
}

static const char batch_help[] =
    "usage: hsmsign sign batch MANIFEST.json [--verify] [APK options]\n"
    "\n"
    "Signs every APK the manifest lists in one process: one login, one unwrap\n"
    "per distinct key, one HSM operation per scheme per APK. A failing APK is\n"
    "reported and does not stop or damage the others; the exit status is then\n"
    "non-zero. APKs are signed in parallel (one thread per CPU it may use) and\n"
    "published by groups, each group's audit entries made durable by one fsync.\n"
    "MANIFEST: [{\"input\": \"a.apk\", \"output\": \"out/a.apk\",\n"
    "\"key\": \"platform\", \"min_sdk\": 21}, ...]; relative paths are relative to\n"
    "the manifest's directory. Before anything is signed, the manifest is refused\n"
    "when two entries write the same file once paths are resolved (a and ./a),\n"
    "when an output is an entry's input, or when an output lies in the audit\n"
    "log or the key store. --verify re-checks each output with hsmsign's verifier and\n"
    "removes an output that does not verify. APK options as for `sign apk`\n"
    "(--v1-signing, --v2-signing, --v3-signing, --v4-signing, --alignment-preserved).\n"
    "Key rotation per entry: \"lineage\": \"FILE\" and optionally \"old_key\": \"NAME\"\n"
    "and \"rotation_min_sdk\": N or \"apksigner31\", as sign apk's --lineage, --old-key\n"
    "and --rotation-min-sdk-version (which sets the default for every entry).\n";

int cli_sign_batch(const cli_globals *g, int argc, char **argv)
{
    bool verify = false;
    /* --verify is ours; the rest are the APK options. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--verify") == 0) {
            verify = true;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof *argv);
            argc--;
            i--;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(batch_help, stdout);
            return 0;
        }
    }
    const char *key = NULL, *out_dir = NULL;
    hs_apk_options opt;
    apk_rotation rot;
    int rc = cmd_apk_parse_options(argc, argv, "sign batch", &key, &out_dir, &rot, &opt);
    if (rc >= 0)
        return rc;
    if (key != NULL || out_dir != NULL || rot.lineage != NULL || rot.old_key != NULL ||
        optind + 1 != argc)
        return cli_usage("sign batch", "give one MANIFEST (keys and outputs come from it)");
    hs_error e;
    hs_error_clear(&e);
    hs_batch_item *items;
    size_t n;
    if (hs_batch_manifest_load(argv[optind], &items, &n, &e) != HS_OK)
        return cli_fail(g, &e);
    /* Every output is checked before anything is signed (inputs were
     * checked against outputs by the manifest loader). */
    for (size_t i = 0; i < n; i++) {
        if (cli_output_ok(g, items[i].output, NULL, 0, &e) != HS_OK) {
            hs_error_prefix(&e, "manifest %s: entry %zu (key '%s'): ", argv[optind], i + 1,
                            items[i].key);
            hs_batch_items_free(items, n);
            return cli_fail(g, &e);
        }
    }
    cli_ctx ctx;
    rc = cli_open(g, CLI_SIGNER | CLI_AGENT, &ctx);
    if (rc != 0) {
        hs_batch_items_free(items, n);
        return rc;
    }
    cli_artcache ac;
    if (cli_artcache_open(&ctx, &ac, &e) != HS_OK) {
        cli_close(&ctx);
        hs_batch_items_free(items, n);
        return cli_fail(g, &e);
    }
    batch_run b = {.g = g, .signer = ctx.signer, .ac = &ac, .opt = &opt, .items = items, .n = n};
    rc = run_batch(&b);
    if (rc != 0) {
        cli_artcache_close(&ac);
        cli_close(&ctx);
        hs_batch_items_free(items, n);
        return rc;
    }
    json_t *results = json_array();
    size_t failed = 0;
    int first_code = 0;
    for (size_t i = 0; i < n; i++) {
        hs_result r = b.res[i];
        hs_error *ie = &b.errs[i];
        if (r == HS_OK && verify) {
            hs_apk_verify_report vr;
            r = hs_apk_verify_file(items[i].output, &vr, ie);
            hs_apk_verify_report_free(&vr);
            if (r != HS_OK) {
                /* The message must not claim a removal that did not happen. */
                if (remove(items[i].output) == 0 || errno == ENOENT)
                    hs_error_prefix(ie, "%s: self-check failed, output removed: ", items[i].output);
                else
                    hs_error_prefix(ie, "%s: self-check failed, and the output could not be "
                                        "removed (%s): ", items[i].output, strerror(errno));
            }
        }
        if (r == HS_OK) {
            json_array_append_new(results, cmd_apk_report_json(items[i].input, items[i].output,
                                                                items[i].key, &b.reps[i]));
        } else {
            failed++;
            if (first_code == 0)
                first_code = hs_result_exit_code(r);
            fprintf(stderr, "hsmsign: %s\n", ie->msg);
            json_array_append_new(results, json_pack("{s:s, s:s, s:s, s:b, s:s}", "input", items[i].input,
                                                     "output", items[i].output, "key", items[i].key,
                                                     "ok", 0, "error", ie->msg));
        }
    }
    batch_run_free(&b);
    cli_progress_end(g);
    hs_signer_stats st = hs_signer_get_stats(ctx.signer);
    size_t hits = ac.hits;
    cli_artcache_close(&ac);
    cli_close(&ctx);
    if (g->json)
        cli_print_json(json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "ok", failed == 0,
                                 "signed", (json_int_t)(n - failed), "failed", (json_int_t)failed,
                                 "unwraps", (json_int_t)st.unwraps, "hsm_signatures",
                                 (json_int_t)(st.signatures - st.reused), "reused",
                                 (json_int_t)st.reused, "artifact_cache_hits", (json_int_t)hits,
                                 "apks", results));
    else {
        json_decref(results);
        printf("%zu signed, %zu failed; %u unwraps, %u HSM signatures, %u reused from the "
               "signature cache\n", n - failed, failed, st.unwraps, st.signatures - st.reused,
               st.reused);
    }
    hs_batch_items_free(items, n);
    return first_code;
}
