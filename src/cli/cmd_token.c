/* hsmsign token: init (SoftHSM convenience), list, info. */
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "p11/ckr.h"
#include "p11/profile.h"
#include "util/file.h"

static const char init_help[] =
    "usage: hsmsign token init --label LABEL [--dir DIR] [--so-pin-source SRC]\n"
    "\n"
    "Initializes a token with LABEL. With --dir (SoftHSMv2), the token lives in\n"
    "DIR/tokens with its own DIR/softhsm2.conf; later commands need\n"
    "SOFTHSM2_CONF=DIR/softhsm2.conf in their environment.\n"
    "The user PIN comes from the global --pin-source (default env:HSMSIGN_PIN if\n"
    "set), the security officer PIN from --so-pin-source (default\n"
    "env:HSMSIGN_SO_PIN if set); else each is asked for on the terminal. A failure\n"
    "leaves no directory, token or config file behind.\n";

/* What `token init --dir` made, so a failure can take it all back: the
 * topmost directory it created (NULL when DIR existed), else the tokens
 * directory and the config file if they are new. A half-made token
 * directory would make the next `token init --dir` or SOFTHSM2_CONF point
 * at a token that has no PINs. */
typedef struct softhsm_dir {
    char *created_root;
    char tokens[PATH_MAX + 16];
    bool created_tokens;
    char conf[PATH_MAX + 32];
    bool created_conf;
} softhsm_dir;

/* The first directory of dir's path that does not exist yet, or NULL. */
static char *first_missing_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return NULL;
    char *top = strdup(dir);
    if (top == NULL)
        return NULL;
    for (;;) {
        char *copy = strdup(top);
        if (copy == NULL)
            return top;
        char *parent = dirname(copy);
        bool stop = strcmp(parent, top) == 0 || stat(parent, &st) == 0;
        if (!stop)
            snprintf(top, strlen(top) + 1, "%s", parent);
        free(copy);
        if (stop)
            return top;
    }
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_tree(const char *path)
{
    /* Best effort on an error path: what cannot be removed stays. */
    (void)nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void softhsm_dir_undo(softhsm_dir *d)
{
    if (d->created_root != NULL) {
        remove_tree(d->created_root);
    } else {
        if (d->created_conf)
            (void)unlink(d->conf);
        if (d->created_tokens)
            remove_tree(d->tokens);
    }
    free(d->created_root);
    memset(d, 0, sizeof *d);
}

static hs_result write_softhsm_conf(const char *dir, softhsm_dir *d, hs_error *e)
{
    struct stat st;
    char abs[PATH_MAX];
    d->created_root = first_missing_dir(dir);
    hs_result r = hs_mkdir_p(dir, 0700, e);
    if (r != HS_OK)
        return r;
    if (realpath(dir, abs) == NULL)
        return hs_fail(e, HS_E_IO, "%s: cannot resolve path", dir);
    snprintf(d->tokens, sizeof d->tokens, "%s/tokens", abs);
    d->created_tokens = stat(d->tokens, &st) != 0;
    r = hs_mkdir_p(d->tokens, 0700, e);
    if (r != HS_OK)
        return r;
    snprintf(d->conf, sizeof d->conf, "%s/softhsm2.conf", abs);
    d->created_conf = stat(d->conf, &st) != 0;
    char text[PATH_MAX + 256];
    int n = snprintf(text, sizeof text,
                     "# SoftHSMv2 configuration written by `hsmsign token init`\n"
                     "directories.tokendir = %s\n"
                     "objectstore.backend = file\n"
                     "log.level = ERROR\n"
                     "slots.removable = false\n",
                     d->tokens);
    r = hs_write_file_atomic(d->conf, text, (size_t)n, 0644, false, e);
    if (r == HS_OK && setenv("SOFTHSM2_CONF", d->conf, 1) != 0)
        r = hs_fail(e, HS_E_INTERNAL, "cannot set SOFTHSM2_CONF");
    return r;
}

/* True when a PIN prompt could be shown (a controlling terminal). */
static bool have_terminal(void)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* Reads one of the new token's PINs. With no source given, no default
 * variable set and no terminal to prompt on, the message names this PIN's
 * option and variable (the prompt's own message only knows --pin-source). */
static hs_result read_init_pin(const char *spec, const char *var, const char *option,
                               const char *what, char **pin, hs_error *e)
{
    if (spec == NULL && getenv(var) == NULL && !have_terminal())
        return hs_fail(e, HS_E_USAGE,
                       "token init needs the %s: set %s or give %s env:VAR, file:PATH or fd:N "
                       "(no terminal to prompt on)",
                       what, var, option);
    hs_pin_source src;
    hs_result r = cli_pin_source(spec, var, &src, e);
    if (r == HS_OK)
        r = hs_pin_read(&src, what, pin, e);
    return r;
}

static int token_init(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"label", required_argument, NULL, 'l'},
        {"dir", required_argument, NULL, 'd'},
        {"so-pin-source", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *label = NULL, *dir = NULL, *so_spec = NULL;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': label = optarg; break;
        case 'd': dir = optarg; break;
        case 's': so_spec = optarg; break;
        case 'h': fputs(init_help, stdout); return 0;
        default: return cli_usage("token init", "unknown option");
        }
    }
    if (label == NULL || optind != argc)
        return cli_usage("token init", "--label is required and no arguments are taken");
    hs_error e;
    hs_error_clear(&e);
    softhsm_dir made;
    memset(&made, 0, sizeof made);
    char *so_pin = NULL, *user_pin = NULL;
    hs_p11 *p = NULL;
    int rc = 0;
    /* Both PINs first: a missing one is the commonest failure, and it
     * must not leave a directory behind. */
    hs_result r = read_init_pin(so_spec, "HSMSIGN_SO_PIN", "--so-pin-source",
                                "security officer PIN for the new token", &so_pin, &e);
    if (r == HS_OK)
        r = read_init_pin(g->pin_source, "HSMSIGN_PIN", "--pin-source",
                          "user PIN for the new token", &user_pin, &e);
    if (r == HS_OK && dir != NULL)
        r = write_softhsm_conf(dir, &made, &e);
    if (r == HS_OK)
        r = hs_p11_open_args(g->module, g->module_init_args, &p, &e);
    if (r == HS_OK)
        r = hs_p11_init_token(p, label, so_pin, user_pin, &e);
    hs_pin_free(so_pin);
    hs_pin_free(user_pin);
    if (r != HS_OK) {
        /* Unload the module before removing the files it may hold open. */
        hs_p11_close(p);
        p = NULL;
        softhsm_dir_undo(&made);
        rc = cli_fail(g, &e);
        goto out;
    }
    if (g->json) {
        json_t *o = json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "label", p->label, "serial",
                              p->serial, "model", p->model);
        if (made.conf[0])
            json_object_set_new(o, "softhsm2_conf", json_string(made.conf));
        cli_print_json(o);
    } else {
        printf("initialized token '%s' (serial %s)\n", p->label, p->serial);
        if (made.conf[0])
            printf("export SOFTHSM2_CONF=%s\n", made.conf);
    }
out:
    hs_p11_close(p);
    free(made.created_root);
    return rc;
}

static const char list_help[] =
    "usage: hsmsign token list\n\nLists the tokens of the module (label, serial, model).\n";

static int token_list(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(list_help, stdout);
        return 0;
    }
    if (argc != 1)
        return cli_usage("token list", "no arguments are taken");
    hs_error e;
    hs_error_clear(&e);
    hs_p11 *p;
    hs_p11_token_info *list = NULL;
    size_t n = 0;
    hs_result r = hs_p11_open_args(g->module, g->module_init_args, &p, &e);
    if (r == HS_OK)
        r = hs_p11_list_tokens(p, &list, &n, &e);
    if (r != HS_OK) {
        hs_p11_close(p);
        return cli_fail(g, &e);
    }
    json_t *arr = json_array();
    if (!g->json)
        printf("%-6s %-32s %-16s %-16s %s\n", "SLOT", "LABEL", "SERIAL", "MODEL", "STATE");
    for (size_t i = 0; i < n; i++) {
        const char *state = list[i].initialized ? "initialized" : "uninitialized";
        if (g->json)
            json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s, s:b}", "slot",
                                                 (json_int_t)list[i].slot, "label", list[i].label,
                                                 "serial", list[i].serial, "model", list[i].model,
                                                 "manufacturer", list[i].manufacturer,
                                                 "initialized", list[i].initialized));
        else
            printf("%-6lu %-32s %-16s %-16s %s\n", (unsigned long)list[i].slot, list[i].label,
                   list[i].serial, list[i].model, state);
    }
    if (g->json)
        cli_print_json(arr);
    else
        json_decref(arr);
    free(list);
    hs_p11_close(p);
    return 0;
}

static const char info_help[] =
    "usage: hsmsign token info\n"
    "\n"
    "Describes the selected token (global --token) without logging in: the module\n"
    "(C_GetInfo), the token, the profile hsmsign uses with it and why (global\n"
    "--profile overrides the choice), whether it has a wrap key and shares, and the\n"
    "mechanisms hsmsign uses with their key sizes.\n";

/* The mechanisms token info reports: wrapping, key generation, signing. */
static const CK_MECHANISM_TYPE info_mechanisms[] = {
    CKM_AES_KEY_WRAP_PAD, 0x210BUL /* CKM_AES_KEY_WRAP_KWP */, CKM_AES_KEY_WRAP,
    CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN, CKM_EC_EDWARDS_KEY_PAIR_GEN,
    CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_ECDSA, CKM_EDDSA,
};

static void flags_text(CK_FLAGS f, char *out, size_t cap)
{
    static const struct {
        CK_FLAGS flag;
        const char *name;
    } names[] = {
        {CKF_GENERATE_KEY_PAIR, "generate"}, {CKF_SIGN, "sign"}, {CKF_VERIFY, "verify"},
        {CKF_WRAP, "wrap"}, {CKF_UNWRAP, "unwrap"}, {CKF_ENCRYPT, "encrypt"},
    };
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(f & names[i].flag))
            continue;
        int n = snprintf(out + used, cap - used, "%s%s", used ? "," : "", names[i].name);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
}

static json_t *info_mechanisms_report(const cli_globals *g, hs_p11 *p)
{
    json_t *arr = json_array();
    if (!g->json)
        printf("  mechanisms:\n");
    for (size_t i = 0; i < sizeof info_mechanisms / sizeof info_mechanisms[0]; i++) {
        CK_MECHANISM_TYPE m = info_mechanisms[i];
        CK_MECHANISM_INFO mi;
        if (p->fn->C_GetMechanismInfo(p->slot, m, &mi) != CKR_OK)
            continue;
        char flags[64], name[48];
        flags_text(mi.flags, flags, sizeof flags);
        snprintf(name, sizeof name, "%s", m == 0x210BUL ? "CKM_AES_KEY_WRAP_KWP" : hs_ckm_name(m));
        if (g->json)
            json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:s}", "mechanism", name,
                                                 "min_key_size", (json_int_t)mi.ulMinKeySize,
                                                 "max_key_size", (json_int_t)mi.ulMaxKeySize,
                                                 "flags", flags));
        else
            printf("    %-28s %lu..%lu  %s\n", name, (unsigned long)mi.ulMinKeySize,
                   (unsigned long)mi.ulMaxKeySize, flags);
    }
    return arr;
}

static int token_info(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(info_help, stdout);
        return 0;
    }
    if (argc != 1)
        return cli_usage("token info", "no arguments are taken");
    hs_error e;
    hs_error_clear(&e);
    hs_p11 *p = NULL;
    hs_p11_module_info mi;
    hs_profile_choice pc;
    hs_result r = hs_p11_open_args(g->module, g->module_init_args, &p, &e);
    if (r == HS_OK)
        r = hs_p11_select_token(p, g->token, &e);
    if (r == HS_OK)
        r = hs_p11_module_info_get(p, &mi, &e);
    if (r == HS_OK)
        r = hs_profile_select(p, g->profile, &pc, &e);
    if (r != HS_OK) {
        hs_p11_close(p);
        return cli_fail(g, &e);
    }
    const hs_profile_ops *ops = hs_profile_ops_of(pc.profile);
    /* A token that can hold no audit key can sign nothing: say so here. */
    hs_auditkey_alg audit_alg;
    hs_error audit_e;
    bool audit_ok = hs_auditkey_choose_alg(p, HS_AUDITKEY_AUTO, &audit_alg, &audit_e) == HS_OK;
    char version[32], cryptoki[32];
    snprintf(version, sizeof version, "%u.%u", mi.lib_major, mi.lib_minor);
    snprintf(cryptoki, sizeof cryptoki, "%u.%u", mi.cryptoki_major, mi.cryptoki_minor);
    if (!g->json) {
        printf("token '%s' (serial %s, model %s, manufacturer %s)\n", p->label, p->serial,
               p->model, p->manufacturer);
        printf("  module:     %s by %s, version %s, PKCS#11 %s\n", mi.description,
               mi.manufacturer, version, cryptoki);
        printf("  profile:    %s (%s)%s\n", ops->name, pc.why,
                ops->implemented ? "" : "; not supported by this hsmsign yet");
        printf("  keys:       %s\n", ops->keys_summary);
        printf("  wrap key:   %s\n", ops->has_wrap_key
                                         ? "yes, backed up as shares by the ceremony "
                                           "(`hsmsign wrapkey show`)"
                                         : "none, and no shares: the resident profile keeps "
                                           "each signing key only in this token");
        printf("  audit key:  %s%s\n", audit_ok ? "possible, " : "impossible: ",
               audit_ok ? hs_auditkey_alg_name(audit_alg) : audit_e.msg);
    }
    json_t *mechs = info_mechanisms_report(g, p);
    if (g->json) {
        json_t *o = json_pack(
            "{s:b, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s}, s:s, s:s, s:b, s:b, s:b, s:b, s:o, "
            "s:o}",
            "ok", 1, "token", "label", p->label, "serial", p->serial, "model", p->model,
            "manufacturer", p->manufacturer, "module", "description", mi.description,
            "manufacturer", mi.manufacturer, "version", version, "cryptoki",
            cryptoki, "profile", ops->name, "profile_reason",
            pc.why, "profile_requested", pc.requested, "profile_supported", ops->implemented,
            "wrap_key", ops->has_wrap_key, "shares", ops->has_wrap_key, "mechanisms", mechs,
            "audit_key_impossible", audit_ok ? json_null() : json_string(audit_e.msg));
        cli_print_json(o);
    } else {
        json_decref(mechs);
    }
    hs_p11_close(p);
    return 0;
}

int cmd_token(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"init", token_init, "initialize a token (SoftHSM: in its own directory with --dir)"},
        {"list", token_list, "list the module's tokens"},
        {"info", token_info, "describe the token: module, profile, wrap key, mechanisms"},
    };
    return cli_dispatch(g, "token", "Tokens of the PKCS#11 module.", subs, 3, argc, argv);
}
