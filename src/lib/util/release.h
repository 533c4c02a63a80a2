/* Freeing the file an output replaces, off the command's critical path.
 *
 * Why: rename(2) over an existing file that has no other link and that no
 * one holds open makes the file system free the old file's blocks inside
 * the rename: 15-25 ms for a 45 MB APK on ext4 (measured: `sign apk` over
 * an existing output 148 ms, to a new name 125 ms), between the signature
 * and the end of the command. Held open across the rename, the old file is
 * freed at its last close instead, which a helper thread does while the
 * command goes on (directory fsync, audit entries, checkpoint, git).
 *
 * Nothing depends on when that close happens: the old file has no name
 * any more, and a close not yet done at exit is done by the kernel then,
 * which costs what the rename would have. hs_atomic_commit (file.h) uses
 * this; the CLI calls hs_release_wait before it exits so that no thread is
 * left running. */
#ifndef HSMSIGN_UTIL_RELEASE_H
#define HSMSIGN_UTIL_RELEASE_H

/* A read-only descriptor of path when it is a regular file of at least
 * HS_RELEASE_MIN_SIZE bytes with one link (what a rename would free), else
 * -1. Never follows a symbolic link, never blocks on a FIFO; errors are
 * not errors here: the rename then frees the file as before. */
int hs_release_hold(const char *path);

/* Closes fd on a helper thread (or here, when no thread can be had). fd
 * may be -1. */
void hs_release_later(int fd);

/* Joins every helper thread: each has closed its file. */
void hs_release_wait(void);

#define HS_RELEASE_MIN_SIZE (1024 * 1024)

#endif
