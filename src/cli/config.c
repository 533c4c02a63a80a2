/* The config file: `key = value` lines, '#' comments. Keys are the long
 * names of the global options (module, token, pin-source, keystore,
 * audit-log, wrap-key-label). Precedence: command line, then environment,
 * then config file, then defaults. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    if (strcmp(key, "module") == 0) return &g->module;
    if (strcmp(key, "token") == 0) return &g->token;
    if (strcmp(key, "pin-source") == 0) return &g->pin_source;
    if (strcmp(key, "keystore") == 0) return &g->keystore;
    if (strcmp(key, "audit-log") == 0) return &g->audit_log;
    if (strcmp(key, "wrap-key-label") == 0) return &g->wrap_label;
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
    if (!must_exist && access(path, F_OK) != 0)
        return HS_OK;
    hs_result r = hs_read_file(path, 65536, &text, &len, e);
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
                        "config file %s: unknown key '%s' (known: module, token, pin-source, "
                        "keystore, audit-log, wrap-key-label)",
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
        {"HSMSIGN_PIN_SOURCE", "pin-source"}, {"HSMSIGN_KEYSTORE", "keystore"},
        {"HSMSIGN_AUDIT_LOG", "audit-log"},   {"HSMSIGN_WRAP_KEY_LABEL", "wrap-key-label"},
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char **slot = slot_for(g, vars[i].key);
        const char *v = getenv(vars[i].env);
        if (*slot == NULL && v != NULL && *v != '\0')
            *slot = v;
    }
}
