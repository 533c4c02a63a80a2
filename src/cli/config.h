#ifndef HSMSIGN_CLI_CONFIG_H
#define HSMSIGN_CLI_CONFIG_H

#include "cli.h"

/* Fills the globals not set yet from the environment. */
void cli_config_env(cli_globals *g);
/* Fills the globals not set yet from a config file. */
hs_result cli_config_load(cli_globals *g, const char *path, bool must_exist, hs_error *e);

#endif
