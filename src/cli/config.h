#ifndef HSMSIGN_CLI_CONFIG_H
#define HSMSIGN_CLI_CONFIG_H

#include "cli.h"

/* Fills the globals not set yet from the environment. */
void cli_config_env(cli_globals *g);
/* Fills the globals not set yet from one config file (refused unless no
 * other user can write it: hs_read_trusted_file). */
hs_result cli_config_load(cli_globals *g, const char *path, bool must_exist, hs_error *e);

#define CLI_CONFIG_SYSTEM "/etc/hsmsign/config"

/* Finds and loads the config file: --config, else $HSMSIGN_CONFIG (both
 * must exist), else the first that exists of $XDG_CONFIG_HOME/hsmsign/config
 * (~/.config/hsmsign/config) and /etc/hsmsign/config. Never the working
 * directory. */
hs_result cli_config_find(cli_globals *g, hs_error *e) HS_MUST_CHECK;

#endif
