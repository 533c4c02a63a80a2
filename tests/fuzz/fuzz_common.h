/* Shared by the libFuzzer targets (tests/fuzz): every target feeds
 * untrusted bytes to one parser and only checks that it returns, without
 * a sanitizer report. Built by tests/fuzz/build.sh with clang, never by
 * the main (gcc) meson build. */
#ifndef HSMSIGN_FUZZ_COMMON_H
#define HSMSIGN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The parsers that take a path (they mmap or pread the file) get the input
 * through an anonymous in-memory file, named by its /proc/self/fd path so
 * that nothing touches the disk. Returns the fd (close it) or -1. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char path[64])
{
    int fd = memfd_create("fuzz-input", 0);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

/* A NUL-terminated copy, for parsers of text that take (text, len) but
 * whose callers always hold a C string. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s != NULL) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

#endif
