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

/* Configuration strings come from the test's environment or pReserved:
 * written as JSON strings with the few characters that need escaping. */
static void write_string(FILE *f, const char *name, const char *value)
{
    fprintf(f, "\"%s\":\"", name);
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputs("\",", f);
}

static void write_yubihsm(FILE *f, const struct shim_yh_counts *y)
{
    fputs("\"personality\":\"yubihsm2\",\"yubihsm\":{", f);
    write_string(f, "connector", y->connector);
    write_string(f, "config_source", y->config_source);
    write_string(f, "firmware", y->firmware);
    write_field(f, "objects_created", y->objects_created);
    write_field(f, "objects_deleted", y->objects_deleted);
    write_field(f, "objects_unwrapped", y->objects_unwrapped);
    write_field(f, "unwrapped_left", y->unwrapped_left);
    write_field(f, "storage_refused", y->storage_refused);
    fprintf(f, "\"objects_left\":%ld,\"pages_used\":%ld},", y->objects_left, y->pages_used);
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
    if (c->yubihsm)
        write_yubihsm(f, &c->yh);
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
