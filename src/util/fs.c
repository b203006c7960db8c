/* File helpers: joining paths, creating directory trees, reading a file whole and writing one atomically. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

char *fv_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

int fv_file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

int fv_mkdir_p(const char *dir)
{
    char buf[4096];
    const size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(buf))
        return fv_error(FV_EINVAL, "%s: bad directory name", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        const char save = buf[i];
        buf[i] = '\0';
        struct stat sb;
        if (mkdir(buf, 0777) < 0 && errno != EEXIST) {
            const int e = errno;
            return fv_error(-e, "%s: cannot create directory: %s", buf, strerror(e));
        }
        if (stat(buf, &sb) < 0 || !S_ISDIR(sb.st_mode))
            return fv_error(-ENOTDIR, "%s: not a directory", buf);
        buf[i] = save;
    }
    return 0;
}

int fv_read_file(const char *path, size_t max_bytes, const char *what, char **out, size_t *len)
{
    struct stat sb;
    *out = NULL;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return fv_error(FV_EINVAL, "%s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        const int e = errno;
        return fv_error(e == ENOENT ? FV_ENOENT : e == EACCES ? -EACCES : FV_EIO, "%s: cannot open: %s", path,
                        strerror(e));
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int ret;
    for (;;) {
        if (n + 1 >= cap) {
            size_t ncap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        const size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n > max_bytes) {
            ret = fv_error(FV_EINVAL, "%s: larger than %zu bytes: not %s", path, max_bytes,
                           what ? what : "a file fibvid reads");
            goto fail;
        }
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        ret = fv_error(FV_EIO, "%s: read error", path);
        goto fail;
    }
    buf[n] = '\0';
    if (what && memchr(buf, '\0', n)) {
        ret = fv_error(FV_EINVAL, "%s: binary data (NUL byte): not %s", path, what);
        goto fail;
    }
    fclose(f);
    *out = buf;
    if (len)
        *len = n;
    return 0;
fail:
    fclose(f);
    free(buf);
    return ret;
}

int fv_write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        const ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fv_write_error_code(int e)
{
    return e == ENOSPC ? -ENOSPC : e == EDQUOT ? -EDQUOT : FV_EIO;
}

int fv_fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    int ret = 0;
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* a file system that cannot sync a directory (EINVAL) has nothing more to make durable */
    if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL && errno != EROFS))
        ret = fv_error(FV_EIO, "%s: cannot sync the directory: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return ret;
}

int fv_write_file_atomic(const char *path, const void *data, size_t n)
{
    const size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    int fd = -1, ret;
    if (!tmp)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0) {
        ret = fv_error(fv_write_error_code(errno), "%s: %s", tmp, strerror(errno));
        goto done;
    }
    if (fv_write_all(fd, data, n) < 0 || fsync(fd) < 0) {
        ret = fv_error(fv_write_error_code(errno), "%s: %s", tmp, strerror(errno));
        goto done;
    }
    if (close(fd) < 0) {
        fd = -1;
        ret = fv_error(fv_write_error_code(errno), "%s: %s", tmp, strerror(errno));
        goto done;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        ret = fv_error(fv_write_error_code(errno), "%s: %s", path, strerror(errno));
        goto done;
    }
    ret = fv_fsync_dir_of(path); /* the rename itself survives a power loss only once its directory is synced */
done:
    if (ret < 0) {
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    }
    free(tmp);
    return ret;
}
