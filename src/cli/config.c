/* The config file: `key = value` lines, '#' comments. Keys are the long
 * names of the global options (module, token, pin-source, keystore,
 * audit-log, wrap-key-label, profile), with '_' accepted for '-'. Precedence:
 * command line, then environment, then config file, then defaults.
 *
 * A config file names the PKCS#11 module hsmsign loads (code that runs
 * with the PIN at hand) and where the audit log goes, so it is never taken
 * from the working directory (a build tree anyone may have written), and
 * only from a file no other user can write (hs_read_trusted_file). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

static const char **slot_for(cli_globals *g, const char *key)
{
    char dashed[32];
    if (strlen(key) >= sizeof dashed)
        return NULL;
    /* audit_log is audit-log: the spelling other config formats use. */
    snprintf(dashed, sizeof dashed, "%s", key);
    for (char *u = strchr(dashed, '_'); u != NULL; u = strchr(u, '_'))
        *u = '-';
    key = dashed;
    if (strcmp(key, "module") == 0) return &g->module;
    if (strcmp(key, "module-init-args") == 0) return &g->module_init_args;
    if (strcmp(key, "token") == 0) return &g->token;
    if (strcmp(key, "pin-source") == 0) return &g->pin_source;
    if (strcmp(key, "keystore") == 0) return &g->keystore;
    if (strcmp(key, "audit-log") == 0) return &g->audit_log;
    if (strcmp(key, "wrap-key-label") == 0) return &g->wrap_label;
    if (strcmp(key, "profile") == 0) return &g->profile;
    if (strcmp(key, "signature-cache") == 0) return &g->signature_cache;
    if (strcmp(key, "artifact-cache") == 0) return &g->artifact_cache;
    return NULL;
}

/* The config text, which g's string slots point into for the life of the
 * process; owned here and freed at exit, after main's frame (and g) is
 * gone, so that leak checkers see it released. */
static uint8_t *config_text;

static void free_config_text(void)
{
    free(config_text);
    config_text = NULL;
}

hs_result cli_config_load(cli_globals *g, const char *path, bool must_exist, hs_error *e)
{
    uint8_t *text;
    size_t len;
    struct stat st;
    /* A file that is not there is skipped; anything else there (a FIFO, a
     * dangling link's target aside) is read, and so checked and refused. */
    if (!must_exist && stat(path, &st) != 0 && errno == ENOENT)
        return HS_OK;
    hs_result r = hs_read_trusted_file(path, 65536, &text, &len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "config file: ");
    char *save = NULL;
    unsigned line_no = 0;
    /* The strings stay referenced by g for the life of the process. */
    for (char *line = strtok_r((char *)text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        line = trim(line);
        if (*line == '\0' || *line == '#')
            continue;
        char *eq = strchr(line, '=');
        if (eq == NULL) {
            r = hs_fail(e, HS_E_USAGE, "config file %s: line %u is not `key = value`", path,
                        line_no);
            break;
        }
        *eq = '\0';
        char *key = trim(line), *value = trim(eq + 1);
        if (strcmp(key, "pin") == 0) {
            r = hs_fail(e, HS_E_USAGE,
                        "config file %s: a PIN is never stored in the config file; "
                        "use pin-source = file:PATH or env:VAR",
                        path);
            break;
        }
        const char **slot = slot_for(g, key);
        if (slot == NULL) {
            r = hs_fail(e, HS_E_USAGE,
                        "config file %s: unknown key '%s' (known: module, module-init-args, token, pin-source, "
                        "keystore, audit-log, wrap-key-label, profile, signature-cache, artifact-cache; '_' may "
                        "stand for '-')",
                        path, key);
            break;
        }
        if (*slot == NULL)
            *slot = value;
    }
    /* On failure the process only prints e->msg and exits, so the text
     * (which slots set so far point into) can go. */
    if (r != HS_OK) {
        free(text);
    } else {
        free_config_text();
        config_text = text;
        /* Only for leak checkers: if atexit fails the text lives until
         * exit anyway. */
        (void)atexit(free_config_text);
    }
    return r;
}

void cli_config_env(cli_globals *g)
{
    static const struct {
        const char *env, *key;
    } vars[] = {
        {"HSMSIGN_MODULE", "module"},         {"HSMSIGN_TOKEN", "token"},
        {"HSMSIGN_MODULE_INIT_ARGS", "module-init-args"},
        {"HSMSIGN_PIN_SOURCE", "pin-source"}, {"HSMSIGN_KEYSTORE", "keystore"},
        {"HSMSIGN_AUDIT_LOG", "audit-log"},   {"HSMSIGN_WRAP_KEY_LABEL", "wrap-key-label"},
        {"HSMSIGN_PROFILE", "profile"},
        {"HSMSIGN_SIGNATURE_CACHE", "signature-cache"},
        {"HSMSIGN_ARTIFACT_CACHE", "artifact-cache"},
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char **slot = slot_for(g, vars[i].key);
        const char *v = getenv(vars[i].env);
        if (*slot == NULL && v != NULL && *v != '\0')
            *slot = v;
    }
    const char *gap = getenv("HSMSIGN_ACCEPT_CUSTODY_GAP");
    if (gap != NULL && strcmp(gap, "1") == 0)
        g->accept_custody_gap = true;
}

/* Where the config file is looked for when neither --config nor
 * HSMSIGN_CONFIG names one: the user's, then the system's; the first that
 * exists is the only one read. $XDG_CONFIG_HOME counts only when absolute,
 * as the XDG base directory specification says. */
static hs_result load_default(cli_globals *g, hs_error *e)
{
    char user[4096];
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n = -1;
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(user, sizeof user, "%s/hsmsign/config", xdg);
    else if (home != NULL && home[0] == '/')
        n = snprintf(user, sizeof user, "%s/.config/hsmsign/config", home);
    struct stat st;
    if (n > 0 && (size_t)n < sizeof user && (stat(user, &st) == 0 || errno != ENOENT))
        return cli_config_load(g, user, true, e);
    return cli_config_load(g, CLI_CONFIG_SYSTEM, false, e);
}

hs_result cli_config_find(cli_globals *g, hs_error *e)
{
    if (g->config != NULL)
        return cli_config_load(g, g->config, true, e);
    const char *env = getenv("HSMSIGN_CONFIG");
    if (env != NULL && env[0] != '\0')
        return cli_config_load(g, env, true, e);
    return load_default(g, e);
}
