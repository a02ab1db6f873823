/* The one atomic writer (include/heed/io.h): temporary file in the target's directory,
 * fsync, rename, fsync of the directory. rename(2) replaces the directory entry in one
 * step, so readers see the old file or the new one; the two fsyncs make that hold across
 * a power cut (the data before the rename, the rename itself after). */
#define _GNU_SOURCE /* mkostemp */
#include "../graph/internal.h"
#include "heed/io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

heed_status heed_atomic_open(heed_ctx *ctx, const char *who, const char *path, heed_atomic_file *af) {
    who = who ? who : "heed_atomic_open";
    if (!af) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: the atomic file is NULL", who);
    *af = (heed_atomic_file){.who = who};
    if (!path || !*path) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: path is NULL or empty", who);
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && !S_ISREG(st.st_mode))
        return heed_ctx_fail(ctx, HEED_ERR_IO,
                             "%s: %s exists and is not a regular file (a device, FIFO or directory "
                             "is never replaced)",
                             who, path);
    size_t n = strlen(path);
    af->path = strdup(path);
    af->tmp = malloc(n + 16);
    if (!af->path || !af->tmp) {
        free(af->path), free(af->tmp);
        *af = (heed_atomic_file){.who = who};
        return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", who);
    }
    snprintf(af->tmp, n + 16, "%s.tmp-XXXXXX", path);
    int fd = mkostemp(af->tmp, O_CLOEXEC);
    /* mkostemp makes it 0600: keep the mode of the file replaced, else 0644 (a saved file
     * reads like any other) */
    if (fd >= 0) fchmod(fd, exists ? (st.st_mode & 07777) : 0644);
    af->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!af->f) {
        int e = errno;
        if (fd >= 0) close(fd), unlink(af->tmp);
        free(af->path), free(af->tmp);
        *af = (heed_atomic_file){.who = who};
        return heed_ctx_fail(ctx, HEED_ERR_IO, "%s: cannot create a file next to %s: %s", who, path, strerror(e));
    }
    return HEED_OK;
}

/* fsync of path's directory, so the rename itself is durable. */
static int sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

heed_status heed_atomic_close(heed_ctx *ctx, heed_atomic_file *af, heed_status st) {
    if (!af || !af->f) return st;
    const char *who = af->who ? af->who : "heed_atomic_close";
    int e = 0;
    if (st == HEED_OK && (ferror(af->f) || fflush(af->f) != 0 || fsync(fileno(af->f)) != 0))
        e = errno ? errno : EIO,
        st = heed_ctx_fail(ctx, HEED_ERR_IO, "%s: writing %s failed: %s", who, af->path, strerror(e));
    if (fclose(af->f) != 0 && st == HEED_OK)
        st = heed_ctx_fail(ctx, HEED_ERR_IO, "%s: closing %s failed: %s", who, af->path, strerror(errno));
    af->f = NULL;
    if (st == HEED_OK && rename(af->tmp, af->path) != 0)
        st = heed_ctx_fail(ctx, HEED_ERR_IO, "%s: cannot rename the finished file to %s: %s", who, af->path,
                           strerror(errno));
    if (st == HEED_OK && sync_dir(af->path) != 0 && errno != EINVAL) /* EINVAL: the file system has no such sync */
        st = heed_ctx_fail(ctx, HEED_ERR_IO, "%s: cannot sync the directory of %s: %s", who, af->path, strerror(errno));
    if (st != HEED_OK) unlink(af->tmp); /* after a failed directory sync the new file stays: it is whole */
    free(af->tmp), free(af->path);
    af->tmp = af->path = NULL;
    return st;
}
