/* The one atomic writer (io/atomic.c): whole files or nothing, devices never replaced. */
#include "check.h"
#include "heed/io.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static heed_ctx *ctx;
static char dir[64];

static int files_in_dir(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static void read_back(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(buf, 1, n - 1, f) : 0;
    buf[got] = 0;
    if (f) fclose(f);
}

static void writes_whole_files(void) {
    char path[128], buf[64];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    heed_atomic_file af;
    CHECK(heed_atomic_open(ctx, "test", path, &af) == HEED_OK && af.f, "%s", heed_ctx_error(ctx));
    fputs("first", af.f);
    CHECK(heed_atomic_close(ctx, &af, HEED_OK) == HEED_OK, "%s", heed_ctx_error(ctx));
    read_back(path, buf, sizeof buf);
    CHECK(strcmp(buf, "first") == 0, "read back '%s'", buf);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "mode %o", st.st_mode & 0777);
    /* a writer that fails keeps the old file and leaves no temporary behind */
    CHECK(heed_atomic_open(ctx, "test", path, &af) == HEED_OK, "%s", heed_ctx_error(ctx));
    fputs("second, half-writt", af.f);
    CHECK(heed_atomic_close(ctx, &af, HEED_ERR_IO) == HEED_ERR_IO, "the failure is passed through");
    read_back(path, buf, sizeof buf);
    CHECK(strcmp(buf, "first") == 0 && files_in_dir() == 1, "after a failed write: '%s', %d files", buf,
          files_in_dir());
    CHECK(heed_atomic_close(ctx, &af, HEED_OK) == HEED_OK, "closing twice is harmless");
    unlink(path);
}

static void refuses_what_it_must_not_replace(void) {
    heed_atomic_file af;
    struct stat before, after;
    CHECK(stat("/dev/null", &before) == 0, "stat /dev/null");
    CHECK(heed_atomic_open(ctx, "test", "/dev/null", &af) == HEED_ERR_IO && !af.f, "a device was opened");
    CHECK(strstr(heed_ctx_error(ctx), "test: /dev/null exists and is not a regular file"), "%s", heed_ctx_error(ctx));
    CHECK(stat("/dev/null", &after) == 0 && S_ISCHR(after.st_mode) && after.st_rdev == before.st_rdev,
          "/dev/null changed");
    CHECK(heed_atomic_open(ctx, "test", dir, &af) == HEED_ERR_IO, "a directory was opened");
    char path[128];
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK(mkfifo(path, 0600) == 0, "mkfifo");
    CHECK(heed_atomic_open(ctx, "test", path, &af) == HEED_ERR_IO, "a FIFO was opened");
    unlink(path);
    CHECK(heed_atomic_open(ctx, "test", "/nonexistent-dir/x", &af) == HEED_ERR_IO, "a missing directory");
    CHECK(strstr(heed_ctx_error(ctx), "test: cannot create a file next to /nonexistent-dir/x"), "%s",
          heed_ctx_error(ctx));
    CHECK(heed_atomic_open(ctx, "test", "", &af) == HEED_ERR_ARG &&
              heed_atomic_open(ctx, "test", NULL, &af) == HEED_ERR_ARG,
          "empty or NULL path");
    CHECK(heed_atomic_open(ctx, "test", "x", NULL) == HEED_ERR_ARG, "NULL file");
    CHECK(files_in_dir() == 0, "%d files left", files_in_dir());
}

int main(void) {
    ctx = heed_ctx_new(NULL);
    snprintf(dir, sizeof dir, "/tmp/heed-test-io-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(writes_whole_files);
    RUN(refuses_what_it_must_not_replace);
    rmdir(dir);
    heed_ctx_free(ctx);
    return check_summary();
}
