/* The counts file: plain fprintf JSON, written atomically so a test never
 * reads half a file (the destructor may run while a test polls for it). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "p11shim.h"

static void write_field(FILE *f, const char *name, unsigned long value)
{
    fprintf(f, "\"%s\":%lu,", name, value);
}

static void write_counts(FILE *f, const struct shim_counts *c)
{
    fprintf(f, "{\"finalized\":%s,", c->finalized ? "true" : "false");
    write_field(f, "calls_total", c->calls_total);
    write_field(f, "sessions_opened", c->sessions_opened);
    write_field(f, "sessions_closed", c->sessions_closed);
    write_field(f, "sessions_closed_by_close_all", c->sessions_closed_by_close_all);
    write_field(f, "sessions_closed_by_finalize", c->sessions_closed_by_finalize);
    write_field(f, "sessions_expired", c->sessions_expired);
    write_field(f, "sessions_refused", c->sessions_refused);
    write_field(f, "sessions_open", c->sessions_open);
    write_field(f, "max_sessions_open", c->max_sessions_open);
    write_field(f, "logins", c->logins);
    write_field(f, "faults_injected", c->faults_injected);
    fputs("\"calls\":{", f);
    for (int i = 0; i < SHIM_FN_COUNT; i++)
        fprintf(f, "%s\"%s\":%lu", i == 0 ? "" : ",", shim_fn_name((enum shim_fn)i),
                c->calls[i]);
    fputs("}}\n", f);
}

void shim_counts_write(const char *path, const struct shim_counts *counts)
{
    char tmp[PATH_MAX + 32];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        fprintf(stderr, "hsmsign-p11shim: counts file path too long: %s\n", path);
        return;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "hsmsign-p11shim: cannot create %s: %m\n", tmp);
        return;
    }
    write_counts(f, counts);
    bool ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "hsmsign-p11shim: cannot write counts file %s: %m\n", path);
        unlink(tmp);
    }
}
