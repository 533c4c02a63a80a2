/* hsmsign cache show|clear, and where the signature cache lives
 * (docs/cache.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Off when asked, or when there is no per-user cache directory to default
 * to (no XDG_CACHE_HOME and no HOME). */
static bool cache_off(const char *v)
{
    return strcmp(v, "off") == 0 || strcmp(v, "none") == 0 || strcmp(v, "0") == 0;
}

/* The directory `value` names, or the default $XDG_CACHE_HOME/hsmsign/SUB
 * (~/.cache/...) when value is NULL and the cache is on by default, or is
 * "on". NULL: off. */
static const char *cache_dir(const char *value, bool default_on, const char *sub, char *buf,
                             size_t cap)
{
    if (value != NULL && cache_off(value))
        return NULL;
    if (value != NULL && strcmp(value, "on") != 0)
        return value;
    if (value == NULL && !default_on)
        return NULL;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n = -1;
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(buf, cap, "%s/hsmsign/%s", xdg, sub);
    else if (home != NULL && home[0] == '/')
        n = snprintf(buf, cap, "%s/.cache/hsmsign/%s", home, sub);
    return n > 0 && (size_t)n < cap ? buf : NULL;
}

hs_result cli_open_sigcache(const cli_globals *g, hs_sigcache **out, hs_error *e)
{
    *out = NULL;
    char buf[4096];
    const char *dir = cache_dir(g->signature_cache, true, "signatures", buf, sizeof buf);
    return dir != NULL ? hs_sigcache_open(dir, out, e) : HS_OK;
}

hs_result cli_open_artcache(const cli_globals *g, hs_artcache **out, hs_error *e)
{
    *out = NULL;
    char buf[4096];
    const char *dir = cache_dir(g->artifact_cache, false, "artifacts", buf, sizeof buf);
    return dir != NULL ? hs_artcache_open(dir, out, e) : HS_OK;
}

static int cache_walk(const cli_globals *g, int argc, char **argv, bool clear)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: hsmsign cache %s\n\n%s\n", clear ? "clear" : "show",
               clear ? "Removes every entry of the signature cache. Nothing else is touched:\n"
                       "the audit log keeps the entries of the signatures."
                     : "Prints the signature cache's directory, its entries and their size\n"
                       "(`off` when the cache is turned off).");
        return 0;
    }
    if (argc > 1)
        return cli_usage(clear ? "cache clear" : "cache show", "unexpected argument '%s'", argv[1]);
    hs_error e;
    hs_error_clear(&e);
    hs_sigcache *c = NULL;
    size_t n = 0;
    uint64_t bytes = 0;
    hs_result r = cli_open_sigcache(g, &c, &e);
    if (r == HS_OK && c != NULL)
        r = clear ? hs_sigcache_clear(c, &n, &e) : hs_sigcache_count(c, &n, &bytes, &e);
    if (r != HS_OK) {
        hs_sigcache_free(c);
        return cli_fail(g, &e);
    }
    const char *dir = c != NULL ? hs_sigcache_dir(c) : NULL;
    if (g->json)
        cli_print_json(json_pack("{s:s?, s:b, s:I, s:I}", "dir", dir, "enabled", c != NULL,
                                 clear ? "removed" : "entries", (json_int_t)n, "bytes",
                                 (json_int_t)bytes));
    else if (c == NULL)
        printf("signature cache: off\n");
    else if (clear)
        printf("signature cache %s: removed %zu entries\n", dir, n);
    else
        printf("signature cache %s: %zu entries, %" PRIu64 " bytes\n", dir, n, bytes);
    hs_sigcache_free(c);
    return 0;
}

static int cache_show(const cli_globals *g, int argc, char **argv)
{
    return cache_walk(g, argc, argv, false);
}

static int cache_clear(const cli_globals *g, int argc, char **argv)
{
    return cache_walk(g, argc, argv, true);
}

int cmd_cache(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"show", cache_show, "the cache's directory, entries and size"},
        {"clear", cache_clear, "remove every cached signature"},
    };
    return cli_dispatch(g, "cache",
                        "The signature cache: signatures already made, keyed by key, algorithm\n"
                        "and digest, reused after verification with the key's public key and\n"
                        "recorded as `reuse` entries in the audit log (docs/cache.md).",
                        subs, sizeof subs / sizeof subs[0], argc, argv);
}
