/* libFuzzer target for the IDX reader (idx_read, examples/caption/idx.c): any bytes, plain
 * or gzip, give an array or a clean error naming the file, never a crash, a leak,
 * undefined behaviour or an allocation the input does not justify. A parsed array is
 * checked (count = product of the dims, every byte readable), and one shaped like
 * Fashion-MNIST images goes through fm_from_arrays with matching labels. The bytes reach
 * zlib through a memory file (memfd) opened with gzdopen, as a file would. Built by
 * tests/fuzz/run.sh (clang, libFuzzer, ASan, UBSan); examples/meson.build replays the
 * seeds in the test suite. */
#define _GNU_SOURCE
#include "../sasrec/fuzz_seeds.h"
#include "idx.h"

#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* A gzip member holding src (zlib's deflate with the gzip wrapper). */
static void gzip_seed(const char *name, const void *src, size_t len) {
    unsigned char out[4096];
    z_stream z = {0};
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return;
    z.next_in = (unsigned char *)src, z.avail_in = (unsigned)len, z.next_out = out, z.avail_out = sizeof out;
    if (deflate(&z, Z_FINISH) == Z_STREAM_END) fuzz_seed(name, out, sizeof out - z.avail_out);
    deflateEnd(&z);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const char images[] = "\0\0\x08\x03\0\0\0\x02\0\0\0\x1c\0\0\0\x1c";
    unsigned char full[16 + 2 * 28 * 28];
    memcpy(full, images, 16);
    for (size_t i = 16; i < sizeof full; i++) full[i] = (unsigned char)(i * 37);
    fuzz_seed("images-2x28x28", full, sizeof full);
    gzip_seed("images-2x28x28.gz", full, sizeof full);
    FUZZ_SEED("labels", "\0\0\x08\x01\0\0\0\x03\x01\x09\x00");
    gzip_seed("labels.gz", "\0\0\x08\x01\0\0\0\x03\x01\x09\x00", 11);
    FUZZ_SEED("empty-dim", "\0\0\x08\x02\0\0\0\0\0\0\0\x05");
    FUZZ_SEED("short-data", "\0\0\x08\x02\0\0\0\x02\0\0\0\x03\x01\x02");
    FUZZ_SEED("huge-dims", "\0\0\x08\x03\xff\xff\xff\xff\xff\xff\xff\xff\0\0\0\x01");
    FUZZ_SEED("float", "\0\0\x0d\x01\0\0\0\x01\0\0\0\0");
    FUZZ_SEED("gzip-magic-only", "\x1f\x8b\x08\0\0\0\0\0");
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    int fd = memfd_create("idx", 0);
    if (fd < 0) return 0;
    if ((size && write(fd, data, size) != (ssize_t)size) || lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return 0;
    }
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return 0;
    }
    char err[512] = "";
    idx_array a = {.count = -1};
    int rc = idx_read(f, "fuzz.idx", &a, err, sizeof err);
    gzclose(f);
    if (rc != 0) {
        if (!strstr(err, "fuzz.idx: ") || a.data || a.count) abort(); /* an error names the file and fills nothing */
        return 0;
    }
    int64_t count = 1;
    for (int i = 0; i < a.ndim; i++) count *= a.dims[i];
    if (a.ndim < 1 || a.ndim > IDX_MAX_DIMS || count != a.count || count > IDX_MAX_BYTES || (count && !a.data)) abort();
    unsigned sum = 0;
    for (int64_t i = 0; i < a.count; i++) sum += a.data[i];
    if (a.ndim == 3 && a.dims[1] == FM_SIDE && a.dims[2] == FM_SIDE && a.dims[0] >= 1) {
        idx_array labels = {.ndim = 1, .dims = {a.dims[0]}, .count = a.dims[0], .data = calloc((size_t)a.dims[0], 1)};
        fm_set s;
        if (labels.data) labels.data[0] = (uint8_t)(sum % 11); /* 10: refused */
        if (labels.data && fm_from_arrays(&a, "fuzz.idx", &labels, "labels", &s, err, sizeof err) == 0) {
            if (s.n != count / (FM_SIDE * FM_SIDE) || a.data || labels.data) abort();
            fm_free(&s);
        } else if (labels.data && !strstr(err, "labels: label 10 at index 0")) {
            abort();
        }
        idx_free(&labels);
    }
    idx_free(&a);
    return 0;
}
