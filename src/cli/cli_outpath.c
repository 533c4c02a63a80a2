/* Output paths of every command: never into the audit log or the key
 * store, never onto one of the command's inputs (util/outpath.h). */
#include "cli.h"

#include "util/outpath.h"

hs_result cli_output_ok(const cli_globals *g, const char *output, const char *const *inputs,
                        size_t n_inputs, hs_error *e)
{
    const hs_protected_dir dirs[] = {
        {g->audit_log, "audit log"},
        {g->keystore, "key store"},
    };
    hs_result r = hs_outpath_check(output, dirs, sizeof dirs / sizeof dirs[0], e);
    for (size_t i = 0; i < n_inputs && r == HS_OK; i++)
        if (inputs[i] != NULL)
            r = hs_outpath_not_input(output, inputs[i], "input", e);
    return r;
}

int cli_check_output(const cli_globals *g, const char *output, const char *const *inputs,
                     size_t n_inputs)
{
    hs_error e;
    hs_error_clear(&e);
    return cli_output_ok(g, output, inputs, n_inputs, &e) == HS_OK ? 0 : cli_fail(g, &e);
}
