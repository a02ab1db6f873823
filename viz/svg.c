/* SVG pictures of attention weights with token labels: a grid of coloured cells, query
 * labels down the left, key labels rotated along the top, a tooltip per cell. */
#include "viz_internal.h"

#include <math.h>

/* Label i, or its index when the array or the entry is NULL. */
static void label(FILE *f, const char *const *labels, int64_t i) {
    if (labels && labels[i]) heed__xml_text(f, labels[i]);
    else fprintf(f, "%lld", (long long)i);
}

/* Approximate drawn width of a label: code points times 0.6 em. */
static double label_width(const char *const *labels, int64_t i, int font) {
    int64_t chars = 0;
    if (labels && labels[i]) {
        for (const unsigned char *s = (const unsigned char *)labels[i]; *s; s++) chars += (*s & 0xC0) != 0x80;
    } else {
        for (int64_t v = i; chars == 0 || v > 0; v /= 10) chars++;
    }
    return 0.6 * font * (double)chars;
}

heed_status heed_attention_svg(heed_ctx *ctx, const char *path, const heed_tensor *weights,
                               const char *const *query_labels, const char *const *key_labels,
                               const heed_svg_opts *opts) {
    const char *fn = "heed_attention_svg";
    if (!ctx) return HEED_ERR_ARG;
    heed__ctx_clear(ctx);
    heed_svg_opts o = opts ? *opts : (heed_svg_opts){0};
    heed_status st = heed__viz_tensor(ctx, fn, weights, "weights", 2, 4);
    if (st != HEED_OK) return st;
    if (!heed__viz_cmap_ok(o.cmap)) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: unknown colormap %d", fn, (int)o.cmap);
    if (o.cell < 0 || o.cell > 1000 || o.font_size < 0 || o.font_size > 200)
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             "%s: cell = %d, font_size = %d (0 = default; cell <= 1000, font <= 200)", fn, o.cell,
                             o.font_size);
    int nd = weights->ndim;
    int64_t nq = weights->shape[nd - 2], nk = weights->shape[nd - 1], H = nd >= 3 ? weights->shape[nd - 3] : 1,
            B = nd == 4 ? weights->shape[0] : 1;
    if (o.head < 0 || o.head >= H || o.batch < 0 || o.batch >= B)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: batch = %lld, head = %lld out of range for weights%s", fn,
                             (long long)o.batch, (long long)o.head, HEED_S(weights));
    if (nq > 4096 || nk > 4096)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: weights%s: at most 4096 queries and keys in an SVG", fn,
                             HEED_S(weights));
    int64_t off = (o.batch * H + o.head) * nq * nk;
    int cell = o.cell ? o.cell : 24, font = o.font_size ? o.font_size : 12;
    double left = 0, top = 0;
    for (int64_t i = 0; i < nq; i++) left = fmax(left, label_width(query_labels, i, font));
    for (int64_t j = 0; j < nk; j++) top = fmax(top, label_width(key_labels, j, font));
    left = ceil(left) + 12, top = ceil(top) + 12 + (o.title ? 2 * font : 0);
    double width = left + (double)(nk * cell) + 8, height = top + (double)(nq * cell) + 8;
    double lo, hi;
    heed__viz_range(weights, off, nq * nk, o.lo, o.hi, &lo, &hi);

    heed_atomic_file vf;
    if ((st = heed_atomic_open(ctx, fn, path, &vf)) != HEED_OK) return st;
    FILE *f = vf.f;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"sans-serif\" font-size=\"%d\">\n",
            width, height, width, height, font);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (o.title) {
        fprintf(f, "<text x=\"%.0f\" y=\"%d\" font-weight=\"bold\">", left, font + 4);
        heed__xml_text(f, o.title);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "<g class=\"queries\" text-anchor=\"end\" dominant-baseline=\"middle\">\n");
    for (int64_t i = 0; i < nq; i++) {
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">", left - 6, top + (double)(i * cell) + cell / 2.0);
        label(f, query_labels, i);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</g>\n<g class=\"keys\" text-anchor=\"start\" dominant-baseline=\"middle\">\n");
    for (int64_t j = 0; j < nk; j++) {
        fprintf(f, "<text transform=\"translate(%.1f,%.0f) rotate(-90)\">", left + (double)(j * cell) + cell / 2.0,
                top - 6);
        label(f, key_labels, j);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</g>\n<g class=\"weights\">\n");
    for (int64_t i = 0; i < nq; i++)
        for (int64_t j = 0; j < nk; j++) {
            double x = heed_get(weights, off + i * nk + j), t = (x - lo) / (hi - lo);
            unsigned char c[3];
            heed__viz_color(o.cmap, isnan(x) ? x : t, c);
            fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%d\" height=\"%d\" fill=\"#%02x%02x%02x\"><title>",
                    left + (double)(j * cell), top + (double)(i * cell), cell, cell, c[0], c[1], c[2]);
            label(f, query_labels, i);
            fputs(" / ", f);
            label(f, key_labels, j);
            fprintf(f, ": %.4g</title></rect>\n", x);
            if (o.values)
                fprintf(
                    f,
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" dominant-baseline=\"middle\" font-size=\"%d\" "
                    "fill=\"%s\">%.2f</text>\n",
                    left + (double)(j * cell) + cell / 2.0, top + (double)(i * cell) + cell / 2.0,
                    font * 2 / 3 > 1 ? font * 2 / 3 : 1, !(t > 0.5) ? "white" : "black", x);
        }
    fprintf(f, "</g>\n</svg>\n");
    return heed_atomic_close(ctx, &vf, HEED_OK);
}
