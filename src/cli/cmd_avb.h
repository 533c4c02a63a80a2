/* Internal to the `hsmsign avb` command group: the signing helper
 * subcommands live in their own file (cmd_avb_helper.c) because they
 * speak avbtool's process protocol rather than hsmsign's usual output. */
#ifndef HSMSIGN_CLI_CMD_AVB_H
#define HSMSIGN_CLI_CMD_AVB_H

#include "cli.h"

/* `avb signing-helper ALGORITHM PUBKEY_PATH`: padded block on stdin, raw
 * signature on stdout. */
int cmd_avb_signing_helper(const cli_globals *g, int argc, char **argv);
/* `avb signing-helper-with-files ALGORITHM PUBKEY_PATH FILE`: block in
 * FILE, signature written back into FILE. */
int cmd_avb_signing_helper_with_files(const cli_globals *g, int argc, char **argv);

#endif
