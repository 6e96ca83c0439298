/* Atomic file replacement: write a temporary file beside the target, sync it, rename it over the
 * target, sync the directory. A crash or a failed write at any point leaves either the old file
 * or the complete new one, never a torn mix (POSIX rename(2) is atomic within a file system). */
#include "io.h"

#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory part of `path` ("." when it has none), in a malloc'd string. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d;
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    d = malloc((size_t)(slash - path) + 1);
    if (d) {
        memcpy(d, path, (size_t)(slash - path));
        d[slash - path] = 0;
    }
    return d;
}

/* Makes the rename durable. Some file systems refuse fsync on a directory (EINVAL); the data
 * itself is already synced then, so that is not an error. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return;
    (void)fsync(fd);
    close(fd);
}

oc_status oc_atomic_write(const char *path, oc_write_fn fn, void *ctx)
{
    oc_status st = OC_OK;
    char *tmp = NULL, *dir = NULL;
    size_t len;
    int fd = -1;
    FILE *f = NULL;

    if (!path || !*path || !fn)
        return oc_fail(OC_ERR_ARG, "atomic write: empty path");
    len = strlen(path);
    if (path[len - 1] == '/')
        return oc_fail(OC_ERR_IO, "write '%s': is a directory", path);
    tmp = malloc(len + sizeof ".tmp.XXXXXX");
    dir = dir_of(path);
    if (!tmp || !dir) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto free_names;
    }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");

    fd = mkstemp(tmp);
    if (fd < 0) {
        st = oc_fail(OC_ERR_IO, "write '%s': cannot create a temporary file in '%s': %s", path,
                     dir, strerror(errno));
        goto free_names;
    }
    /* mkstemp makes 0600; a model file is an ordinary document */
    (void)fchmod(fd, 0644);
    f = fdopen(fd, "wb");
    if (!f) {
        st = oc_fail(OC_ERR_IO, "write '%s': %s", tmp, strerror(errno));
        close(fd);
        goto remove_tmp;
    }
    st = fn(ctx, f);
    if (st != OC_OK) {
        oc_fail_context(st, "write '%s'", path);
        goto close_tmp;
    }
    if (fflush(f) != 0 || ferror(f)) {
        st = oc_fail(OC_ERR_IO, "write '%s': %s", path, strerror(errno));
        goto close_tmp;
    }
    if (fsync(fileno(f)) != 0 && errno != EINVAL) {
        st = oc_fail(OC_ERR_IO, "write '%s': fsync: %s", path, strerror(errno));
        goto close_tmp;
    }
    if (fclose(f) != 0) {
        f = NULL;
        st = oc_fail(OC_ERR_IO, "write '%s': close: %s", path, strerror(errno));
        goto remove_tmp;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        st = oc_fail(OC_ERR_IO, "write '%s': rename from '%s': %s", path, tmp, strerror(errno));
        goto remove_tmp;
    }
    sync_dir(dir);
    goto free_names;

close_tmp:
    fclose(f);
remove_tmp:
    unlink(tmp);
free_names:
    free(tmp);
    free(dir);
    return st;
}
