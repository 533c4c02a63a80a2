/* Whole-file reads and crash-safe writes.
 *
 * Every output hsmsign produces goes through hs_atomic_*: the bytes are
 * written to a temporary file in the destination's directory, fsynced,
 * renamed over the destination and the directory fsynced, so a crash
 * leaves either the old file or the complete new one, never a mix, and a
 * failure leaves no temporary file behind. The temporary file is
 * "<path>.tmp.XXXXXX", flock'ed by its writer for its whole life; one left
 * by a killed writer (unlocked) is removed by the next hs_atomic_open of the
 * same path (see stale_tmp.h). */
#ifndef HSMSIGN_UTIL_FILE_H
#define HSMSIGN_UTIL_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/result.h"

/* Reads a whole file of at most max_len bytes. *out is malloc'd, with a
 * NUL after the last byte (not counted in *out_len) so text formats can be
 * parsed in place. */
hs_result hs_read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                       hs_error *e) HS_MUST_CHECK;

typedef struct hs_atomic_file {
    int fd;
    char *path;     /* destination */
    char *tmp_path; /* temporary file beside it */
} hs_atomic_file;

/* Removes stale temporary files of path, then creates and locks the
 * temporary file; mode is the final file's permission bits. */
hs_result hs_atomic_open(hs_atomic_file *af, const char *path, mode_t mode,
                         hs_error *e) HS_MUST_CHECK;
hs_result hs_atomic_write_all(hs_atomic_file *af, const void *data, size_t len,
                              hs_error *e) HS_MUST_CHECK;
/* fsync, rename into place, fsync the directory. With no_replace, fails
 * (HS_E_EXISTS) rather than replace an existing destination. */
hs_result hs_atomic_commit(hs_atomic_file *af, bool no_replace, hs_error *e) HS_MUST_CHECK;
/* fsync and rename into place, leaving the directory's fsync to the
 * caller (hs_fsync_dir), who publishes many files into one directory
 * (sign batch) and fsyncs it once after the last rename. af->path stays
 * set until hs_atomic_abort. */
hs_result hs_atomic_commit_no_dir_sync(hs_atomic_file *af, hs_error *e) HS_MUST_CHECK;
/* Removes the temporary file; safe to call after commit or on a zeroed
 * struct, so error paths can call it unconditionally. */
void hs_atomic_abort(hs_atomic_file *af);

/* open + write_all + commit in one call. */
hs_result hs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                               bool no_replace, hs_error *e) HS_MUST_CHECK;

/* The drop-in contract of `hsmsign signapk`, `payload-signer` and
 * `avb signing-helper-with-files`: callers (releasetools, avbtool) hold
 * OUT open and read the result through that handle, so an existing OUT
 * gets the bytes in its own inode: space reserved, overwritten from
 * offset 0, truncated to len, fsynced. Nothing is changed when OUT cannot
 * be opened for writing or is not a regular file. A missing OUT is
 * created with hs_write_file_atomic (mode). *in_place tells which. */
hs_result hs_write_file_in_place(const char *path, const void *data, size_t len, mode_t mode,
                                 bool *in_place, hs_error *e) HS_MUST_CHECK;

/* write(2) until done, retrying EINTR and short writes. */
hs_result hs_write_fd_all(int fd, const void *data, size_t len, const char *what,
                          hs_error *e) HS_MUST_CHECK;

/* fsync a directory so a rename or a new file in it is durable. */
hs_result hs_fsync_dir(const char *dir, hs_error *e) HS_MUST_CHECK;

/* mkdir -p with the given mode for directories it creates. */
hs_result hs_mkdir_p(const char *dir, mode_t mode, hs_error *e) HS_MUST_CHECK;

/* True when both paths name the same existing file (same device+inode). */
bool hs_same_file(const char *a, const char *b);


/* Like hs_read_file, but into hs_secure_alloc memory (free with
 * hs_secure_free(*out, *out_len + 1)): for files that hold secrets, such as
 * a .pk8 being imported. */
hs_result hs_read_secret_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                              hs_error *e) HS_MUST_CHECK;

/* Like hs_read_file, for files that decide what hsmsign loads and where it
 * writes (the config file): refused (HS_E_USAGE, naming the file and the
 * reason) unless it is a regular file (symbolic links are followed; a FIFO
 * is refused without blocking), owned by the real user or root and not
 * writable by group or others, and the same holds for its directory and
 * for the directory of the link's final target. */
hs_result hs_read_trusted_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                               hs_error *e) HS_MUST_CHECK;
#endif
