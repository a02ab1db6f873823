/* Reading a PNG as gray floats (heed_png_read_gray, include/heed/viz.h), through libpng's
 * low-level API so that every colour type and bit depth gives its stored values exactly:
 * libpng expands palettes, low bit depths and tRNS to 16-bit gray/RGB with or without alpha,
 * and each pixel becomes
 *   Y = 0.299 R + 0.587 G + 0.114 B   (ITU-R BT.601 luma, as PIL's convert('L')),
 *   v = Y a                           (alpha composited over black),
 * scaled by 1/65535 (8-bit v is v * 257 after the expansion, so v/255 exactly). No gamma
 * correction: the stored (encoded) values are what a model sees.
 *
 * Memory is bounded by the pixel cap: one 16-bit row and the H*W floats. Interlaced images
 * are read pass by pass without libpng's interlace handling (which needs the whole image in
 * memory): each pass's rows land at their Adam7 positions. libpng reports errors through
 * a callback that longjmps back here with the message. */
#include "viz_internal.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* The default cap on H*W when max_pixels is 0: 2^26 pixels (256 MiB of floats). */
#define PNG_READ_DEFAULT_MAX_PIXELS (INT64_C(1) << 26)

typedef struct {
    char message[256], warning[256]; /* the error, and the last warning before it */
} png_read_error;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_read_error *e = png_get_error_ptr(png);
    snprintf(e->message, sizeof e->message, "%s", msg);
    png_longjmp(png, 1);
}

/* Kept for the error message ("Invalid IHDR data" comes after "Image width is zero in IHDR"). */
static void on_png_warning(png_structp png, png_const_charp msg) {
    png_read_error *e = png_get_error_ptr(png);
    snprintf(e->warning, sizeof e->warning, "%s", msg);
}

/* One pixel of a 16-bit big-endian row with `channels` samples (G, GA, RGB, RGBA). */
static float gray_of(const unsigned char *p, int channels) {
    double s[4];
    for (int c = 0; c < channels; c++) s[c] = (double)(p[2 * c] << 8 | p[2 * c + 1]) / 65535;
    double y = channels >= 3 ? 0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2] : s[0];
    if (channels == 2 || channels == 4) y *= s[channels - 1];
    return (float)y;
}

/* Decodes f (past its 8-byte signature) into *pixels; the message names path. */
static heed_status decode(heed_ctx *ctx, const char *fn, const char *path, FILE *f, int64_t cap, float **pixels,
                          int64_t *height, int64_t *width) {
    png_read_error err = {"", ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: no memory for libpng reading %s", fn, path);
    }
    /* Written after setjmp and read after a longjmp: volatile. */
    unsigned char *volatile row = NULL;
    float *volatile out = NULL;
    volatile heed_status st = HEED_ERR_FORMAT;
    if (setjmp(png_jmpbuf(png))) {
        char why[600];
        snprintf(why, sizeof why, "libpng: %s%s%s%s", *err.message ? err.message : "unknown error",
                 *err.warning ? ", after the warning '" : "", err.warning, *err.warning ? "'" : "");
        if (feof(f)) st = heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s is truncated (%s)", fn, path, why);
        else st = heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s is not a readable PNG (%s)", fn, path, why);
        goto out;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    /* Only the chunks that make the pixels are read (IHDR, PLTE, tRNS, IDAT, IEND); every
     * other chunk (text, ICC profiles, ...) is skipped unread. libpng would otherwise first
     * allocate the length a text chunk declares: 1.6 GB for a 48-byte file (found by the
     * fuzz target). The malloc cap bounds whatever else libpng buffers per chunk. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_AS_DEFAULT, (png_const_bytep) "tRNS", 1);
    png_set_chunk_malloc_max(png, 1 << 20);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w == 0 || h == 0 || (int64_t)w * h > cap) { /* libpng refuses 0 itself; kept for clarity */
        st = heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s is %u x %u pixels: more than the cap of %lld (max_pixels)", fn,
                           path, (unsigned)w, (unsigned)h, (long long)cap);
        goto out;
    }
    bool interlaced = png_get_interlace_type(png, info) == PNG_INTERLACE_ADAM7;
    png_set_expand(png);    /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
    png_set_expand_16(png); /* every sample to 16 bits */
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    if (png_get_bit_depth(png, info) != 16 || channels < 1 || channels > 4) png_error(png, "unexpected layout");
    row = malloc(png_get_rowbytes(png, info));
    out = malloc((size_t)w * h * sizeof *out);
    if (!row || !out) {
        st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: no memory for a %u x %u image (%s)", fn, (unsigned)w, (unsigned)h,
                           path);
        goto out;
    }
    for (int pass = 0; pass < (interlaced ? 7 : 1); pass++) {
        png_uint_32 rows = interlaced ? PNG_PASS_ROWS(h, pass) : h, cols = interlaced ? PNG_PASS_COLS(w, pass) : w;
        if (rows == 0 || cols == 0) continue; /* libpng skips empty passes too */
        for (png_uint_32 r = 0; r < rows; r++) {
            png_read_row(png, row, NULL);
            png_uint_32 y = interlaced ? PNG_ROW_FROM_PASS_ROW(r, pass) : r;
            for (png_uint_32 i = 0; i < cols; i++) {
                png_uint_32 x = interlaced ? PNG_COL_FROM_PASS_COL(i, pass) : i;
                out[(size_t)y * w + x] = gray_of(row + (size_t)i * 2 * channels, channels);
            }
        }
    }
    png_read_end(png, NULL); /* the chunks after the image, up to IEND (a cut file fails here) */
    *pixels = out, *height = h, *width = w;
    out = NULL;
    st = HEED_OK;
out:
    png_destroy_read_struct(&png, &info, NULL);
    free(row);
    free(out);
    return st;
}

heed_status heed_png_read_gray(heed_ctx *ctx, const char *path, int64_t max_pixels, float **pixels, int64_t *height,
                               int64_t *width) {
    const char *fn = "heed_png_read_gray";
    if (!ctx) return HEED_ERR_ARG;
    if (pixels) *pixels = NULL;
    if (height) *height = 0;
    if (width) *width = 0;
    if (!path || !pixels || !height || !width)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: path, pixels, height and width must not be NULL", fn);
    if (max_pixels < 0)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: max_pixels is %lld (0: the default cap)", fn,
                             (long long)max_pixels);
    int64_t cap = max_pixels ? max_pixels : PNG_READ_DEFAULT_MAX_PIXELS;

    FILE *f = fopen(path, "rb");
    if (!f) return heed_ctx_fail(ctx, HEED_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    unsigned char sig[8];
    size_t got = fread(sig, 1, sizeof sig, f);
    if (got < sizeof sig || png_sig_cmp(sig, 0, sizeof sig)) {
        fclose(f);
        if (got < sizeof sig && !png_sig_cmp(sig, 0, got))
            return heed_ctx_fail(ctx, HEED_ERR_FORMAT,
                                 "%s: %s is truncated (%zu bytes, shorter than the PNG signature)", fn, path, got);
        return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s is not a PNG file (no PNG signature)", fn, path);
    }

    heed_status st = decode(ctx, fn, path, f, cap, pixels, height, width);
    fclose(f);
    return st;
}
