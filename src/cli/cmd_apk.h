/* Internal to the APK commands: `sign apk`/`verify apk` (cmd_apk.c) and
 * `sign batch` (cmd_batch.c) sign each APK the same way. */
#ifndef HSMSIGN_CLI_CMD_APK_H
#define HSMSIGN_CLI_CMD_APK_H

#include <pthread.h>

#include "apk/apk.h"
#include "cli.h"
#include "cli_artcache.h"

/* How one APK reaches the signer: directly (sign apk), or from one of
 * sign batch's threads, every call into the signer under one lock (the
 * HSM session, the audit log and its unsynced state are shared) and the
 * output left unpublished for the group commit (defer != NULL). */
typedef struct apk_via {
    hs_signer *signer;
    pthread_mutex_t *lock; /* NULL: single-threaded */
    hs_apk_pending **defer;
} apk_via;

/* Key rotation for one APK (sign apk --lineage FILE [--old-key NAME]). */
typedef struct apk_rotation {
    const char *lineage; /* NULL: no rotation */
    const char *old_key; /* signs v1 and v2; NULL: key signs every scheme */
    int rotation_min_sdk; /* a batch entry's; -1: the options' */
    bool rotation_min_sdk_given; /* on the command line */
} apk_rotation;

/* Parses sign apk's options (also sign batch's APK options); -1: go on,
 * otherwise the exit status (help printed, or a usage error). */
int cmd_apk_parse_options(int argc, char **argv, const char *cmd, const char **key,
                          const char **out_dir, apk_rotation *rot, hs_apk_options *opt);

/* Signs one APK; on failure the message is prefixed with the input. */
hs_result cmd_apk_sign_one(const apk_via *via, cli_artcache *ac, const char *key_name,
                           const apk_rotation *rot, const char *in, const char *out,
                           const hs_apk_options *base, int min_sdk, hs_apk_report *rep,
                           hs_error *e) HS_MUST_CHECK;

/* One signed APK in the --json report. */
json_t *cmd_apk_report_json(const char *in, const char *out, const char *key,
                            const hs_apk_report *rep);

#endif
