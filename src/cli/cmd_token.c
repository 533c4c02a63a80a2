/* hsmsign token: init (SoftHSM convenience), list. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/file.h"

static const char init_help[] =
    "usage: hsmsign token init --label LABEL [--dir DIR] [--so-pin-source SRC]\n"
    "\n"
    "Initializes a token with LABEL. With --dir (SoftHSMv2), the token lives in\n"
    "DIR/tokens with its own DIR/softhsm2.conf; later commands need\n"
    "SOFTHSM2_CONF=DIR/softhsm2.conf in their environment.\n"
    "The user PIN comes from the global --pin-source (default env:HSMSIGN_PIN),\n"
    "the security officer PIN from --so-pin-source (default env:HSMSIGN_SO_PIN).\n";

static hs_result write_softhsm_conf(const char *dir, char *conf_path, size_t cap, hs_error *e)
{
    hs_result r = hs_mkdir_p(dir, 0700, e);
    char abs[PATH_MAX], tokens[PATH_MAX + 16];
    if (r != HS_OK)
        return r;
    if (realpath(dir, abs) == NULL)
        return hs_fail(e, HS_E_IO, "%s: cannot resolve path", dir);
    snprintf(tokens, sizeof tokens, "%s/tokens", abs);
    r = hs_mkdir_p(tokens, 0700, e);
    if (r != HS_OK)
        return r;
    snprintf(conf_path, cap, "%s/softhsm2.conf", abs);
    char text[PATH_MAX + 256];
    int n = snprintf(text, sizeof text,
                     "# SoftHSMv2 configuration written by `hsmsign token init`\n"
                     "directories.tokendir = %s\n"
                     "objectstore.backend = file\n"
                     "log.level = ERROR\n"
                     "slots.removable = false\n",
                     tokens);
    r = hs_write_file_atomic(conf_path, text, (size_t)n, 0644, false, e);
    if (r == HS_OK && setenv("SOFTHSM2_CONF", conf_path, 1) != 0)
        r = hs_fail(e, HS_E_INTERNAL, "cannot set SOFTHSM2_CONF");
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
    char conf[PATH_MAX + 32] = "";
    hs_pin_source so_src, user_src;
    char *so_pin = NULL, *user_pin = NULL;
    hs_p11 *p = NULL;
    hs_result r = HS_OK;
    if (dir != NULL)
        r = write_softhsm_conf(dir, conf, sizeof conf, &e);
    if (r == HS_OK)
        r = cli_pin_source(so_spec, "HSMSIGN_SO_PIN", &so_src, &e);
    if (r == HS_OK)
        r = cli_pin_source(g->pin_source, "HSMSIGN_PIN", &user_src, &e);
    if (r == HS_OK)
        r = hs_pin_read(&so_src, "security officer PIN for the new token", &so_pin, &e);
    if (r == HS_OK)
        r = hs_pin_read(&user_src, "user PIN for the new token", &user_pin, &e);
    if (r == HS_OK)
        r = hs_p11_open(g->module, &p, &e);
    if (r == HS_OK)
        r = hs_p11_init_token(p, label, so_pin, user_pin, &e);
    hs_pin_free(so_pin);
    hs_pin_free(user_pin);
    if (r != HS_OK) {
        hs_p11_close(p);
        return cli_fail(g, &e);
    }
    if (g->json) {
        json_t *o = json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "label", p->label, "serial",
                              p->serial, "model", p->model);
        if (conf[0])
            json_object_set_new(o, "softhsm2_conf", json_string(conf));
        cli_print_json(o);
    } else {
        printf("initialized token '%s' (serial %s)\n", p->label, p->serial);
        if (conf[0])
            printf("export SOFTHSM2_CONF=%s\n", conf);
    }
    hs_p11_close(p);
    return 0;
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
    hs_result r = hs_p11_open(g->module, &p, &e);
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

int cmd_token(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"init", token_init, "initialize a token (SoftHSM: in its own directory with --dir)"},
        {"list", token_list, "list the module's tokens"},
    };
    return cli_dispatch(g, "token", "Tokens of the PKCS#11 module.", subs, 2, argc, argv);
}
