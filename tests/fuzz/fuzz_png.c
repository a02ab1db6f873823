/* libFuzzer target for the PNG reader (heed_png_read_gray, viz/png_read.c): any bytes give
 * an image or a clean error naming the file, never a crash, a leak, undefined behaviour or
 * an allocation past the pixel cap. The bytes are read from a memory file (memfd) by its
 * /proc/self/fd path, as a file would be. A read image must have 1..cap pixels, all in
 * [0, 1]. Built by tests/fuzz/run.sh (clang, libFuzzer, ASan, UBSan); tests/meson.build
 * replays the seeds in the test suite.
 *
 * With HEED_FUZZ_SEEDS=<dir> set, the target first writes seeds into dir: small images of
 * every colour type, bit depths 1 to 16, interlaced or not, palettes with tRNS. */
#define _GNU_SOURCE
#include "heed/core.h"
#include "heed/viz.h"

#include "../png_write.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

enum { FUZZ_MAX_PIXELS = 1 << 16 };
static heed_ctx *ctx;

static void seed(const char *dir, const char *name, const test_png *im) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (test_png_save(path, im) != 0) fprintf(stderr, "seed %s: cannot write\n", path);
}

static void write_seeds(const char *dir) {
    mkdir(dir, 0777);
    uint16_t s[6 * 7 * 4];
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) s[i] = (uint16_t)(i * 9973u);
    static const struct {
        const char *name;
        int type, depth;
    } kinds[] = {
        {"gray1", PNG_COLOR_TYPE_GRAY, 1},        {"gray4", PNG_COLOR_TYPE_GRAY, 4},
        {"gray8", PNG_COLOR_TYPE_GRAY, 8},        {"gray16", PNG_COLOR_TYPE_GRAY, 16},
        {"ga8", PNG_COLOR_TYPE_GRAY_ALPHA, 8},    {"rgb8", PNG_COLOR_TYPE_RGB, 8},
        {"rgb16", PNG_COLOR_TYPE_RGB, 16},        {"rgba8", PNG_COLOR_TYPE_RGB_ALPHA, 8},
        {"rgba16", PNG_COLOR_TYPE_RGB_ALPHA, 16},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (int interlace = 0; interlace <= 1; interlace++) {
            uint16_t v[sizeof s / sizeof s[0]];
            uint32_t mask = (1u << kinds[k].depth) - 1;
            for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) v[i] = (uint16_t)(s[i] & mask);
            char name[64];
            snprintf(name, sizeof name, "%s%s.png", kinds[k].name, interlace ? "-adam7" : "");
            seed(dir, name,
                 &(test_png){.width = 7,
                             .height = 6,
                             .color_type = kinds[k].type,
                             .depth = kinds[k].depth,
                             .interlace = interlace,
                             .samples = v});
        }
    static const png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {10, 20, 250}};
    static const png_byte alpha[2] = {0, 128};
    uint16_t idx[6 * 7];
    for (int i = 0; i < 42; i++) idx[i] = (uint16_t)(i % 4);
    seed(dir, "palette2-trns.png",
         &(test_png){.width = 7,
                     .height = 6,
                     .color_type = PNG_COLOR_TYPE_PALETTE,
                     .depth = 2,
                     .samples = idx,
                     .palette = pal,
                     .n_palette = 4,
                     .palette_alpha = alpha,
                     .n_palette_alpha = 2});
    seed(dir, "gray8-trns.png",
         &(test_png){.width = 7,
                     .height = 6,
                     .color_type = PNG_COLOR_TYPE_GRAY,
                     .depth = 8,
                     .samples = idx,
                     .transparent = &(png_color_16){.gray = 1}});
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    ctx = heed_ctx_new(NULL);
    const char *seeds = getenv("HEED_FUZZ_SEEDS");
    if (seeds) write_seeds(seeds);
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    int fd = memfd_create("png", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    float *px = NULL;
    int64_t h = -1, w = -1;
    heed_status st = heed_png_read_gray(ctx, path, FUZZ_MAX_PIXELS, &px, &h, &w);
    close(fd);
    if (st != HEED_OK) {
        if (!strstr(heed_ctx_error(ctx), path) || px || h || w) abort(); /* names the file, fills nothing */
        return 0;
    }
    if (h < 1 || w < 1 || h * w > FUZZ_MAX_PIXELS || !px) abort();
    for (int64_t i = 0; i < h * w; i++)
        if (!(px[i] >= 0 && px[i] <= 1)) abort();
    free(px);
    return 0;
}
