#define _GNU_SOURCE /* memmem */
/* heed_png_read_gray (viz/png_read.c): images of every colour type, bit depth and
 * interlacing written here with libpng (png_write.h) read back against values computed
 * from the samples: v / (2^depth - 1) per channel, luma 0.299 R + 0.587 G + 0.114 B, times
 * alpha. Then every bad input: NULL, a negative cap, a missing file, not a PNG, every
 * truncation of a good file, zero and over-the-cap dimensions, corrupt chunks. */
#include "check.h"
#include "heed/viz.h"
#include "png_write.h"

#include <unistd.h>

static heed_ctx *ctx;
static char dir[64];

static const char *tmp_path(const char *name) {
    static char path[8][256]; /* a few live at once */
    static int k;
    k = (k + 1) % 8;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

/* The expected gray value of pixel p of im (double). */
static double expected(const test_png *im, int64_t p) {
    int ch = test_png_channels(im->color_type);
    double max = (double)((1 << im->depth) - 1), s[4] = {0, 0, 0, 1};
    const uint16_t *v = im->samples + p * ch;
    if (im->color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color c = im->palette[v[0]];
        s[0] = c.red / 255.0, s[1] = c.green / 255.0, s[2] = c.blue / 255.0;
        s[3] = v[0] < im->n_palette_alpha ? im->palette_alpha[v[0]] / 255.0 : 1;
        return (0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2]) * s[3];
    }
    for (int c = 0; c < ch; c++) s[c] = v[c] / max;
    if (im->transparent) { /* tRNS: the one transparent colour */
        const png_color_16 *t = im->transparent;
        bool clear = ch == 1 ? v[0] == t->gray : v[0] == t->red && v[1] == t->green && v[2] == t->blue;
        if (clear) return 0;
    }
    switch (im->color_type) {
    case PNG_COLOR_TYPE_GRAY: return s[0];
    case PNG_COLOR_TYPE_GRAY_ALPHA: return s[0] * s[1];
    case PNG_COLOR_TYPE_RGB: return 0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2];
    default: return (0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2]) * s[3];
    }
}

/* Writes im, reads it back and compares every pixel to within half a float ulp of 1. */
static void round_trip(const char *name, const test_png *im) {
    const char *path = tmp_path(name);
    CHECK(test_png_save(path, im) == 0, "%s: could not write the test image", name);
    float *px = NULL;
    int64_t h = -1, w = -1;
    heed_status st = heed_png_read_gray(ctx, path, 0, &px, &h, &w);
    CHECK(st == HEED_OK, "%s: %s", name, heed_ctx_error(ctx));
    CHECK(h == im->height && w == im->width, "%s: %lld x %lld", name, (long long)h, (long long)w);
    if (st == HEED_OK && h == im->height && w == im->width) {
        double err = 0;
        for (int64_t p = 0; p < h * w; p++) err = fmax(err, check_err(px[p], expected(im, p)));
        CHECK(err <= 0x1p-24, "%s: max error %g", name, err);
    }
    free(px);
}

/* Samples 0 .. max spread over the image, different at neighbouring positions. */
static void fill(uint16_t *s, int64_t n, int depth) {
    uint32_t max = (1u << depth) - 1;
    for (int64_t i = 0; i < n; i++) s[i] = (uint16_t)((i * 40503u + (i == 0 ? 0 : 7)) % (max + 1));
    if (n > 1) s[0] = 0, s[n - 1] = (uint16_t)max;
}

static void colour_types(void) {
    static uint16_t s[9 * 11 * 4];
    static const struct {
        const char *name;
        int type, depth;
    } kinds[] = {
        {"gray1", PNG_COLOR_TYPE_GRAY, 1},        {"gray2", PNG_COLOR_TYPE_GRAY, 2},
        {"gray4", PNG_COLOR_TYPE_GRAY, 4},        {"gray8", PNG_COLOR_TYPE_GRAY, 8},
        {"gray16", PNG_COLOR_TYPE_GRAY, 16},      {"ga8", PNG_COLOR_TYPE_GRAY_ALPHA, 8},
        {"ga16", PNG_COLOR_TYPE_GRAY_ALPHA, 16},  {"rgb8", PNG_COLOR_TYPE_RGB, 8},
        {"rgb16", PNG_COLOR_TYPE_RGB, 16},        {"rgba8", PNG_COLOR_TYPE_RGB_ALPHA, 8},
        {"rgba16", PNG_COLOR_TYPE_RGB_ALPHA, 16},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (int interlace = 0; interlace <= 1; interlace++) {
            test_png im = {.width = 11,
                           .height = 9,
                           .color_type = kinds[k].type,
                           .depth = kinds[k].depth,
                           .interlace = interlace,
                           .samples = s};
            fill(s, 9 * 11 * test_png_channels(im.color_type), im.depth);
            char name[64];
            snprintf(name, sizeof name, "%s%s.png", kinds[k].name, interlace ? "-adam7" : "");
            round_trip(name, &im);
        }
    /* One pixel; and a 1-pixel-wide column (Adam7 passes with no columns are skipped). */
    round_trip("one.png", &(test_png){.width = 1,
                                      .height = 1,
                                      .color_type = PNG_COLOR_TYPE_GRAY,
                                      .depth = 8,
                                      .samples = (uint16_t[]){77}});
    fill(s, 6, 8);
    round_trip("column.png", &(test_png){.width = 1,
                                         .height = 6,
                                         .color_type = PNG_COLOR_TYPE_GRAY,
                                         .depth = 8,
                                         .interlace = true,
                                         .samples = s});
}

static void palettes_and_transparency(void) {
    static const png_color pal[5] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {10, 20, 250}, {255, 255, 255}};
    static const png_byte alpha[3] = {255, 128, 0}; /* entries 3, 4: opaque */
    uint16_t idx[4 * 5];
    for (int i = 0; i < 20; i++) idx[i] = (uint16_t)(i * 3 % 5);
    round_trip("palette8.png", &(test_png){.width = 5,
                                           .height = 4,
                                           .color_type = PNG_COLOR_TYPE_PALETTE,
                                           .depth = 8,
                                           .samples = idx,
                                           .palette = pal,
                                           .n_palette = 5});
    round_trip("palette8-trns.png", &(test_png){.width = 5,
                                                .height = 4,
                                                .color_type = PNG_COLOR_TYPE_PALETTE,
                                                .depth = 8,
                                                .samples = idx,
                                                .palette = pal,
                                                .n_palette = 5,
                                                .palette_alpha = alpha,
                                                .n_palette_alpha = 3});
    round_trip("palette4-trns-adam7.png", &(test_png){.width = 5,
                                                      .height = 4,
                                                      .color_type = PNG_COLOR_TYPE_PALETTE,
                                                      .depth = 4,
                                                      .interlace = true,
                                                      .samples = idx,
                                                      .palette = pal,
                                                      .n_palette = 5,
                                                      .palette_alpha = alpha,
                                                      .n_palette_alpha = 3});
    uint16_t gray[6] = {0, 3, 9, 3, 15, 1};
    round_trip("gray4-trns.png", &(test_png){.width = 3,
                                             .height = 2,
                                             .color_type = PNG_COLOR_TYPE_GRAY,
                                             .depth = 4,
                                             .samples = gray,
                                             .transparent = &(png_color_16){.gray = 3}});
    uint16_t rgb[6] = {1000, 2000, 3000, 65535, 0, 7};
    round_trip("rgb16-trns.png", &(test_png){.width = 2,
                                             .height = 1,
                                             .color_type = PNG_COLOR_TYPE_RGB,
                                             .depth = 16,
                                             .samples = rgb,
                                             .transparent = &(png_color_16){.red = 1000, .green = 2000, .blue = 3000}});
    /* Values by hand: RGB (255, 0, 0) is 0.299; gray+alpha (255, 128) is 128/255. */
    round_trip("red.png", &(test_png){.width = 1,
                                      .height = 1,
                                      .color_type = PNG_COLOR_TYPE_RGB,
                                      .depth = 8,
                                      .samples = (uint16_t[]){255, 0, 0}});
    float *px = NULL;
    int64_t h, w;
    if (heed_png_read_gray(ctx, tmp_path("red.png"), 0, &px, &h, &w) == HEED_OK) CHECK_CLOSE(px[0], 0.299, 1e-7);
    free(px);
    test_png ga = {.width = 1,
                   .height = 1,
                   .color_type = PNG_COLOR_TYPE_GRAY_ALPHA,
                   .depth = 8,
                   .samples = (uint16_t[]){255, 128}};
    test_png_save(tmp_path("ga.png"), &ga);
    px = NULL;
    if (heed_png_read_gray(ctx, tmp_path("ga.png"), 0, &px, &h, &w) == HEED_OK) CHECK_CLOSE(px[0], 128 / 255.0, 1e-7);
    CHECK(px, "ga.png: %s", heed_ctx_error(ctx));
    free(px);
}

/* The call must fail with code and a message holding needle and the file's name, and
 * leave the outputs empty. */
static void expect_fail(const char *path, int64_t cap, heed_status code, const char *needle, int line) {
    float *px = (float *)&px;
    int64_t h = 5, w = 5;
    heed_status st = heed_png_read_gray(ctx, path, cap, &px, &h, &w);
    const char *msg = heed_ctx_error(ctx);
    CHECK(st == code && strstr(msg, needle) && (code == HEED_ERR_ARG || strstr(msg, path)),
          "line %d: want %s with '%s', got %s: '%s'", line, heed_status_name(code), needle, heed_status_name(st), msg);
    CHECK(!px && h == 0 && w == 0, "line %d: outputs not cleared", line);
    if (st == HEED_OK) free(px);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(data, 1, n, f), fclose(f);
}

static size_t read_bytes(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap, f) : 0;
    if (f) fclose(f);
    return n;
}

/* The CRC of a PNG chunk (ISO 3309, as the PNG specification gives it). */
static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* Sets the IHDR width and height of a PNG in buf (IHDR is the first chunk: its data at
 * bytes 16..28) and fixes its CRC. */
static void set_size(unsigned char *buf, uint32_t w, uint32_t h) {
    for (int i = 0; i < 4; i++)
        buf[16 + i] = (unsigned char)(w >> (24 - 8 * i)), buf[20 + i] = (unsigned char)(h >> (24 - 8 * i));
    uint32_t crc = crc32_of(buf + 12, 17);
    for (int i = 0; i < 4; i++) buf[29 + i] = (unsigned char)(crc >> (24 - 8 * i));
}

static void bad_input(void) {
    uint16_t s[12];
    fill(s, 12, 8);
    const char *good = tmp_path("good.png");
    test_png im = {.width = 4, .height = 3, .color_type = PNG_COLOR_TYPE_GRAY, .depth = 8, .samples = s};
    CHECK(test_png_save(good, &im) == 0, "write");
    float *px;
    int64_t h, w;
    CHECK(heed_png_read_gray(NULL, good, 0, &px, &h, &w) == HEED_ERR_ARG, "NULL ctx");
    expect_fail(NULL, 0, HEED_ERR_ARG, "must not be NULL", __LINE__);
    CHECK(heed_png_read_gray(ctx, good, 0, NULL, &h, &w) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "NULL"),
          "NULL pixels");
    CHECK(heed_png_read_gray(ctx, good, 0, &px, NULL, &w) == HEED_ERR_ARG, "NULL height");
    CHECK(heed_png_read_gray(ctx, good, 0, &px, &h, NULL) == HEED_ERR_ARG, "NULL width");
    expect_fail(good, -1, HEED_ERR_ARG, "max_pixels is -1", __LINE__);
    expect_fail(tmp_path("missing.png"), 0, HEED_ERR_IO, "cannot open", __LINE__);

    const char *bad = tmp_path("bad.png");
    write_bytes(bad, "P5\n2 2\n255\n\1\2\3\4", 15);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "is not a PNG file", __LINE__);
    write_bytes(bad, "", 0);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "is not a PNG file", __LINE__);
    write_bytes(bad, "\x89PNG\r", 5);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "is truncated", __LINE__);

    /* Every cut of the good file, from just past the signature to one byte short of it. */
    unsigned char buf[4096];
    size_t n = read_bytes(good, buf, sizeof buf);
    CHECK(n > 60 && n < sizeof buf, "good file of %zu bytes", n);
    int cut_fails = 0;
    for (size_t cut = 8; cut < n; cut++) {
        write_bytes(bad, buf, cut);
        int before = check_failures;
        expect_fail(bad, 0, HEED_ERR_FORMAT, "is truncated", __LINE__);
        if (check_failures != before && cut_fails++ == 0) fprintf(stderr, "  (cut at %zu of %zu bytes)\n", cut, n);
    }
    CHECK(cut_fails == 0, "%d cuts read", cut_fails);

    /* Dimensions: the cap (exactly at it is fine), zero, and a huge claimed size refused
     * before any decoding or allocation. */
    expect_fail(good, 11, HEED_ERR_FORMAT, "4 x 3 pixels: more than the cap of 11", __LINE__);
    px = NULL;
    CHECK(heed_png_read_gray(ctx, good, 12, &px, &h, &w) == HEED_OK && h == 3 && w == 4, "at the cap: %s",
          heed_ctx_error(ctx));
    free(px);
    unsigned char edited[4096];
    memcpy(edited, buf, n);
    set_size(edited, 0, 3);
    write_bytes(bad, edited, n);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "Image width is zero", __LINE__);
    set_size(edited, 4, 0);
    write_bytes(bad, edited, n);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "Image height is zero", __LINE__);
    set_size(edited, 100000, 100000);
    write_bytes(bad, edited, n);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "100000 x 100000 pixels: more than the cap of 67108864", __LINE__);
    set_size(edited, 4, 4); /* one row more than the data holds */
    write_bytes(bad, edited, n);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "not a readable PNG (libpng: ", __LINE__);

    /* A text chunk after IHDR that declares 1.6 GB in a file of 45 bytes is a truncated file
     * (before text chunks were skipped unread, libpng first allocated the 1.6 GB: found by
     * the fuzz target, whose memory limit is what catches that). */
    memcpy(edited, buf, 33);
    memcpy(edited + 33, "\x63\x60\x40\x02zTXtabcd", 12);
    write_bytes(bad, edited, 45);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "is truncated", __LINE__);

    /* Corrupt chunks: a bad IHDR CRC, a flipped byte inside IDAT (zlib sees it first), a bad
     * IDAT CRC (the 4 bytes before the 12-byte IEND chunk). */
    memcpy(edited, buf, n);
    edited[29] ^= 1;
    write_bytes(bad, edited, n);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "IHDR: CRC error", __LINE__);
    memcpy(edited, buf, n);
    unsigned char *idat = memmem(edited, n, "IDAT", 4);
    CHECK(idat != NULL, "IDAT found");
    if (idat) {
        idat[6] ^= 0x40;
        write_bytes(bad, edited, n);
        expect_fail(bad, 0, HEED_ERR_FORMAT, "not a readable PNG (libpng: IDAT: ", __LINE__);
    }
    memcpy(edited, buf, n);
    CHECK(!memcmp(edited + n - 8, "IEND", 4), "IEND last");
    edited[n - 13] ^= 1;
    write_bytes(bad, edited, n);
    expect_fail(bad, 0, HEED_ERR_FORMAT, "IDAT: CRC error", __LINE__);
    /* A directory: opens but cannot be read. */
    expect_fail(dir, 0, HEED_ERR_FORMAT, "is not a PNG file", __LINE__);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/heed-png-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    ctx = heed_ctx_new(NULL);
    RUN(colour_types);
    RUN(palettes_and_transparency);
    RUN(bad_input);
    heed_ctx_free(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
