/* Caption example: the attention figure of one caption, an SVG with the PNG panels embedded
 * (the scene, then per word the attention upsampled over it, the word written under). */
#include "figure.h"
#include <heed/viz.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PANEL 192 /* pixels per panel side in the SVG (the 96x96 PNGs drawn at 2x) */
#define LABEL 22  /* room for the word under a panel */

/* The file at path as base64 into f; 0 or -1. */
static int base64_file(FILE *f, const char *path) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *in = fopen(path, "rb");
    if (!in) return -1;
    unsigned char b[3];
    size_t n;
    while ((n = fread(b, 1, 3, in)) > 0) {
        if (n < 3) memset(b + n, 0, 3 - n);
        char o[4] = {tab[b[0] >> 2], tab[(b[0] & 3) << 4 | b[1] >> 4], tab[(b[1] & 15) << 2 | b[2] >> 6],
                     tab[b[2] & 63]};
        if (n < 3) o[3] = '=';
        if (n < 2) o[2] = '=';
        fwrite(o, 1, 4, f);
    }
    int rc = ferror(in) ? -1 : 0;
    fclose(in);
    return rc;
}

/* Writes one panel's PNG to tmp: the scene alone (weights NULL) or with the attention. */
static heed_status panel_png(heed_graph *g, const char *tmp, const float *pixels, const float *weights, int64_t grid) {
    heed_ctx *ctx = heed_graph_ctx(g);
    if (!weights)
        return heed_heatmap_png(ctx, tmp, heed_input(g, HEED_F32, HEED_SHAPE(SCENE_SIDE, SCENE_SIDE), pixels),
                                &(heed_heatmap_opts){.cell = 1, .lo = 0, .hi = 1});
    float *rgb = malloc(SCENE_SIDE * SCENE_SIDE * 3 * sizeof *rgb);
    if (!rgb) return HEED_ERR_NOMEM;
    for (int i = 0; i < SCENE_SIDE * SCENE_SIDE; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = pixels[i];
    heed_tensor *img = heed_input(g, HEED_F32, HEED_SHAPE(SCENE_SIDE, SCENE_SIDE, 3), rgb);
    free(rgb);
    return heed_overlay_png(ctx, tmp, img, heed_input(g, HEED_F32, HEED_SHAPE(grid, grid), weights),
                            &(heed_overlay_opts){.cmap = HEED_CMAP_VIRIDIS, .alpha = 0.6}); /* [0, the row's max] */
}

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

int cap_figure_svg(heed_graph *g, const char *path, const float *pixels, const heed_hypothesis *h, int64_t grid,
                   const char *title, char *err, size_t errlen) {
    int64_t steps = h->len + h->finished, panels = 1 + (h->attention ? steps : 0);
    int64_t cols = panels < 6 ? panels : 6, rows = (panels + cols - 1) / cols;
    char tmp[4096], part[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(part, sizeof part, "%s.panel.png", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return snprintf(err, errlen, "%s: cannot write", tmp), -1;
    int W = (int)(cols * (PANEL + 8) + 8), H = (int)(rows * (PANEL + LABEL + 8) + 30);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" width=\"%d\" "
            "height=\"%d\" font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"8\" y=\"20\" font-size=\"14\">",
            W, H);
    xml_text(f, title ? title : "");
    fputs("</text>\n", f);
    int rc = 0;
    heed_graph_reset(g);
    for (int64_t p = 0; p < panels && !rc; p++) {
        const float *w = p ? h->attention + (p - 1) * h->keys : NULL;
        if (panel_png(g, part, pixels, w, grid) != HEED_OK) {
            rc = -1, snprintf(err, errlen, "%s", heed_ctx_error(heed_graph_ctx(g)));
            break;
        }
        int x = (int)(8 + p % cols * (PANEL + 8)), y = (int)(30 + p / cols * (PANEL + LABEL + 8));
        fprintf(f,
                "<image x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" style=\"image-rendering:pixelated\" "
                "xlink:href=\"data:image/png;base64,",
                x, y, PANEL, PANEL);
        if (base64_file(f, part)) rc = -1, snprintf(err, errlen, "%s: cannot read back", part);
        const char *word = !p ? "(image)" : p - 1 < h->len ? vocab_word((int)h->tokens[p - 1]) : "<end>";
        fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" font-size=\"15\" text-anchor=\"middle\">", x + PANEL / 2,
                y + PANEL + 17);
        xml_text(f, word ? word : "?");
        fputs("</text>\n", f);
    }
    heed_graph_reset(g);
    remove(part);
    fputs("</svg>\n", f);
    if (fclose(f) != 0 && !rc) rc = -1, snprintf(err, errlen, "%s: write failed", tmp);
    if (!rc && rename(tmp, path) != 0) rc = -1, snprintf(err, errlen, "%s: cannot rename into place", path);
    if (rc) remove(tmp);
    return rc;
}
