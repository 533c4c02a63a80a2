#include "vectors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *test_vector_header(const char *relpath, const char *key)
{
    const char *dir = getenv("HSMSIGN_VECTORS");
    char path[4096], line[4096];
    snprintf(path, sizeof path, "%s/%s", dir != NULL ? dir : "tests/vectors", relpath);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t klen = strlen(key);
    char *value = NULL;
    while (value == NULL && fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '\n')
            break; /* end of the header */
        if (strncmp(line, key, klen) == 0 && line[klen] == ':' && line[klen + 1] == ' ') {
            line[strcspn(line, "\r\n")] = '\0';
            value = strdup(line + klen + 2);
        }
    }
    fclose(f);
    return value;
}
