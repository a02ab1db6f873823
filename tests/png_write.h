/* Writes small PNG files of any colour type, bit depth and interlacing with libpng's
 * low-level API, for the PNG reader's tests (test_png_read.c) and fuzz seeds
 * (fuzz/fuzz_png.c). */
#ifndef HEED_TEST_PNG_WRITE_H
#define HEED_TEST_PNG_WRITE_H

#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    int width, height;
    int color_type;          /* PNG_COLOR_TYPE_GRAY, _GRAY_ALPHA, _RGB, _RGB_ALPHA, _PALETTE */
    int depth;               /* bits per sample: 1, 2, 4, 8, 16 */
    bool interlace;          /* Adam7 */
    const uint16_t *samples; /* height * width * channels, row-major (palette: indices) */
    const png_color *palette;
    int n_palette;
    const png_byte *palette_alpha; /* tRNS of a palette image, n_palette_alpha entries */
    int n_palette_alpha;
    const png_color_16 *transparent; /* tRNS of a gray or RGB image: the transparent colour */
} test_png;

static int test_png_channels(int color_type) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return 1;
    }
}

/* Writes the image to f; 0 on success. */
static int test_png_write(FILE *f, const test_png *im) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int channels = test_png_channels(im->color_type);
    size_t row_bytes = (size_t)im->width * channels * (im->depth == 16 ? 2 : 1);
    png_bytep volatile data = malloc(row_bytes * im->height);
    png_bytepp volatile rows = malloc(sizeof(png_bytep) * im->height);
    if (!info || !data || !rows) {
        png_destroy_write_struct(&png, &info);
        free(data), free(rows);
        return 1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(data), free(rows);
        return 1;
    }
    for (int y = 0; y < im->height; y++) {
        rows[y] = data + row_bytes * y;
        for (int i = 0; i < im->width * channels; i++) {
            uint16_t v = im->samples[(size_t)y * im->width * channels + i];
            if (im->depth == 16) rows[y][2 * i] = (png_byte)(v >> 8), rows[y][2 * i + 1] = (png_byte)v;
            else rows[y][i] = (png_byte)v;
        }
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, im->width, im->height, im->depth, im->color_type,
                 im->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (im->palette) png_set_PLTE(png, info, im->palette, im->n_palette);
    if (im->palette_alpha) png_set_tRNS(png, info, im->palette_alpha, im->n_palette_alpha, NULL);
    if (im->transparent) png_set_tRNS(png, info, NULL, 0, im->transparent);
    png_write_info(png, info);
    if (im->depth < 8) png_set_packing(png); /* one sample a byte in, packed in the file */
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(data), free(rows);
    return 0;
}

static int test_png_save(const char *path, const test_png *im) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    int rc = test_png_write(f, im);
    return fclose(f) != 0 || rc;
}

#endif
