/* `sign apk` and `sign batch` through the artifact cache (docs/cache.md):
 * an APK already signed with the same input, key, options and hsmsign
 * version is copied from the cache, verified, and its signatures logged as
 * reuses, instead of being rebuilt. */
#ifndef HSMSIGN_CLI_ARTCACHE_H
#define HSMSIGN_CLI_ARTCACHE_H

#include "apk/apk.h"
#include "cli.h"

typedef struct cli_artcache {
    hs_artcache *c; /* NULL: off */
    size_t hits;
} cli_artcache;

/* Opens the cache when --artifact-cache asks for it and this process holds
 * the token with a signature cache (its reuse entries come from there: an
 * agent's or a run with --signature-cache off gets none, and a warning). */
hs_result cli_artcache_open(const cli_ctx *ctx, cli_artcache *ac, hs_error *e) HS_MUST_CHECK;
void cli_artcache_close(cli_artcache *ac);

/* hs_apk_sign_file through the cache (ac->c NULL, a lineage or v4: no
 * cache). A hit writes OUT from the cache after the checks of artcache.h;
 * a miss signs and stores the result. A bad entry is dropped with a
 * warning, and the APK signed as on a miss. */
hs_result cli_artcache_sign_apk(cli_artcache *ac, hs_signer *s, const hs_apk_key *key,
                                const char *in, const char *out, const hs_apk_options *opt,
                                hs_apk_report *rep, hs_error *e) HS_MUST_CHECK;

#endif
