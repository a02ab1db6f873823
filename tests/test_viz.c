/* Pictures: PNG heatmaps and overlays decoded back with libpng; SVG checked for
 * well-formedness (a small XML parser) and escaped labels; atomic writes. */
#include "check.h"
#include "heed/viz.h"

#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>
#include <png.h>
#include <unistd.h>

static heed_ctx *ctx;
static char dir[64];

static const char *file_in_dir(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int files_in_dir(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* Decodes an RGB PNG; returns the pixels (caller frees) and the size, or NULL. */
static unsigned char *read_png(const char *path, int *w, int *h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return NULL;
    img.format = PNG_FORMAT_RGB;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return NULL;
    }
    *w = (int)img.width, *h = (int)img.height;
    return buf;
}

static const unsigned char *px(const unsigned char *rgb, int w, int x, int y) { return rgb + ((size_t)y * w + x) * 3; }

/* ---------------------------------------------------------------- PNG */

static void heatmap_single(void) {
    heed_graph *g = heed_graph_new(ctx);
    double w[12] = {0.1, 0.2, 0.3, 0.4, 0.0, 0.5, 0.5, 0.0, 0.8, 0.05, 0.05, 0.1};
    heed_tensor *t = heed_input_f64(g, HEED_F32, HEED_SHAPE(3, 4), w);
    const char *path = file_in_dir("single.png");
    CHECK(heed_heatmap_png(ctx, path, t, &(heed_heatmap_opts){.cell = 2}) == HEED_OK, "%s", heed_ctx_error(ctx));
    int W, H;
    unsigned char *rgb = read_png(path, &W, &H);
    CHECK(rgb && W == 8 && H == 6, "size %d x %d", W, H);
    for (int i = 0; rgb && i < 3; i++)
        for (int j = 0; j < 4; j++) {
            int want = (int)lround(255 * (float)w[i * 4 + j] / (float)0.8); /* range [0, max] */
            for (int d = 0; d < 4; d++) {
                const unsigned char *p = px(rgb, W, j * 2 + d % 2, i * 2 + d / 2);
                CHECK(abs(p[0] - want) <= 1 && p[0] == p[1] && p[1] == p[2], "cell %d,%d: %d vs %d", i, j, p[0], want);
            }
        }
    free(rgb);
    /* viridis ends, per-row scaling and a NaN */
    w[1] = NAN;
    t = heed_input_f64(g, HEED_F64, HEED_SHAPE(3, 4), w);
    CHECK(heed_heatmap_png(ctx, path, t, &(heed_heatmap_opts){.cmap = HEED_CMAP_VIRIDIS, .cell = 1, .per_row = true}) ==
              HEED_OK,
          "%s", heed_ctx_error(ctx));
    rgb = read_png(path, &W, &H);
    CHECK(rgb && W == 4 && H == 3, "size");
    if (rgb) {
        const unsigned char *nan = px(rgb, W, 1, 0), *top = px(rgb, W, 3, 0), *zero = px(rgb, W, 0, 1),
                            *top1 = px(rgb, W, 2, 1);
        CHECK(nan[0] == 255 && nan[1] == 0 && nan[2] == 0, "NaN is red");
        CHECK(top[0] == 253 && top[1] == 231 && top[2] == 37, "row max is viridis' top (%d,%d,%d)", top[0], top[1],
              top[2]);
        CHECK(zero[0] == 68 && zero[1] == 1 && zero[2] == 84, "zero is viridis' bottom");
        CHECK(top1[0] == 253, "each row reaches the top");
    }
    free(rgb);
    heed_graph_free(g);
}

static void heatmap_grid(void) {
    heed_graph *g = heed_graph_new(ctx);
    /* [B=2,H=3,2,3]: batch 1, head h, cell (i,j) = (h + 1) / 10 + i * 0.01 * j */
    double w[2 * 3 * 2 * 3];
    for (int b = 0; b < 2; b++)
        for (int h = 0; h < 3; h++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++) w[((b * 3 + h) * 2 + i) * 3 + j] = b ? (h + 1) / 10.0 + 0.01 * i * j : 0;
    heed_tensor *t = heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 3, 2, 3), w);
    const char *path = file_in_dir("grid.png");
    heed_heatmap_opts o = {.cell = 1, .grid_cols = 2, .gap = 2, .batch = 1, .lo = 0, .hi = 0.5};
    CHECK(heed_heatmap_png(ctx, path, t, &o) == HEED_OK, "%s", heed_ctx_error(ctx));
    int W, H;
    unsigned char *rgb = read_png(path, &W, &H);
    /* 2 tiles of 3 px + a gap of 2 across; 2 rows of 2 px + a gap of 2 down */
    CHECK(rgb && W == 8 && H == 6, "grid size %d x %d", W, H);
    if (rgb) {
        CHECK(px(rgb, W, 3, 0)[0] == 255 && px(rgb, W, 4, 0)[0] == 255 && px(rgb, W, 0, 2)[0] == 255, "white gaps");
        CHECK(px(rgb, W, 0, 0)[0] == lround(255 * 0.1 / 0.5), "head 0 at the top left");
        CHECK(px(rgb, W, 5, 0)[0] == lround(255 * 0.2 / 0.5), "head 1 at the top right");
        CHECK(px(rgb, W, 2, 5)[0] == lround(255 * (0.3 + 0.02) / 0.5), "head 2, query 1, key 2 at the bottom left");
        CHECK(px(rgb, W, 6, 5)[0] == 255, "empty grid slot is white");
    }
    free(rgb);
    /* 3-D input, default layout */
    t = heed_input_f64(g, HEED_F64, HEED_SHAPE(3, 2, 3), w + 18);
    CHECK(heed_heatmap_png(ctx, path, t, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    rgb = read_png(path, &W, &H);
    CHECK(rgb && W == 2 * 3 * 16 + 4 && H == 2 * 2 * 16 + 4, "auto cell 16, 2 columns: %d x %d", W, H);
    free(rgb);
    heed_graph_free(g);
}

static void overlay(void) {
    heed_graph *g = heed_graph_new(ctx);
    int64_t H = 4, W = 6;
    double img[4 * 6 * 3];
    for (int i = 0; i < 72; i++) img[i] = (i % 3) == 0 ? 1.0 : 0.2; /* reddish image */
    double w[6] = {0.1, 0.4, 0.0, 0.2, 0.25, 0.05};
    heed_tensor *image = heed_input_f64(g, HEED_F32, HEED_SHAPE(H, W, 3), img);
    heed_tensor *wt = heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 3), w);
    const char *path = file_in_dir("overlay.png");
    CHECK(heed_overlay_png(ctx, path, image, wt, &(heed_overlay_opts){.alpha = 1}) == HEED_OK, "%s",
          heed_ctx_error(ctx));
    int w_, h_;
    unsigned char *rgb = read_png(path, &w_, &h_);
    CHECK(rgb && w_ == W && h_ == H, "overlay keeps the image size");
    if (rgb) {
        /* alpha 1, gray: the upsampled weights / max. Pixel (0,0) clamps to w[0,0]; pixel
         * (1,1) sits at source (0.25, 0.25); pixel (5,3) clamps to w[1,2]. */
        double v11 = 0.75 * (0.75 * w[0] + 0.25 * w[1]) + 0.25 * (0.75 * w[3] + 0.25 * w[4]);
        CHECK(px(rgb, W, 0, 0)[0] == lround(255 * w[0] / 0.4), "corner %d", px(rgb, W, 0, 0)[0]);
        CHECK(px(rgb, W, 1, 1)[1] == lround(255 * v11 / 0.4), "bilinear %d vs %ld", px(rgb, W, 1, 1)[1],
              lround(255 * v11 / 0.4));
        CHECK(px(rgb, W, 5, 3)[2] == lround(255 * w[5] / 0.4), "far corner");
    }
    free(rgb);
    /* default alpha 0.6: blend of image and colour */
    heed_tensor *flat = heed_input_f64(g, HEED_F64, HEED_SHAPE(6), w);
    CHECK(heed_overlay_png(ctx, path, image, flat, &(heed_overlay_opts){.grid_h = 2, .grid_w = 3}) == HEED_OK, "%s",
          heed_ctx_error(ctx));
    rgb = read_png(path, &w_, &h_);
    CHECK(rgb && w_ == W && h_ == H, "default alpha: read back at the image size");
    if (rgb) {
        double c = 255 * w[0] / 0.4;
        CHECK(px(rgb, W, 0, 0)[0] == lround(0.4 * 255 + 0.6 * lround(c)), "blend red");
        CHECK(px(rgb, W, 0, 0)[1] == lround(0.4 * 255 * 0.2f + 0.6 * lround(c)), "blend green %d", px(rgb, W, 0, 0)[1]);
    }
    free(rgb);
    CHECK(heed_overlay_png(ctx, path, image, flat, &(heed_overlay_opts){.grid_h = 4, .grid_w = 3}) == HEED_ERR_SHAPE,
          "grid");
    CHECK(strstr(heed_ctx_error(ctx), "grid_h * opts.grid_w = 6") != NULL, "%s", heed_ctx_error(ctx));
    CHECK(heed_overlay_png(ctx, path, wt, wt, NULL) == HEED_ERR_SHAPE, "2-D image");
    CHECK(heed_overlay_png(ctx, path, heed_zeros(g, HEED_F32, HEED_SHAPE(4, 4, 4)), wt, NULL) == HEED_ERR_SHAPE,
          "4 channels");
    CHECK(strstr(heed_ctx_error(ctx), "image[4,4,4] must be [H,W,3]") != NULL, "%s", heed_ctx_error(ctx));
    CHECK(heed_overlay_png(ctx, path, image, wt, &(heed_overlay_opts){.alpha = 1.5}) == HEED_ERR_ARG, "alpha");
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- SVG */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

/* A minimal XML well-formedness check: balanced and matching tags, quoted attributes,
 * only the five predefined entities (or numeric ones), no raw '<' or '&' in text. Fills
 * the root element's name and its width/height attributes; counts <rect> elements. */
typedef struct {
    char root[32];
    double width, height;
    int rects, texts;
} xml_info;

static bool xml_entity_ok(const char *s) {
    static const char *ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (int i = 0; i < 5; i++)
        if (strncmp(s, ents[i], strlen(ents[i])) == 0) return true;
    if (s[1] == '#') {
        const char *p = s + 2;
        while (*p && *p != ';' && (isdigit((unsigned char)*p) || *p == 'x')) p++;
        return *p == ';' && p > s + 2;
    }
    return false;
}

static bool xml_check(const char *s, xml_info *info) {
    char stack[64][32];
    int depth = 0;
    bool seen_root = false;
    memset(info, 0, sizeof *info);
    if (strncmp(s, "<?xml", 5) == 0) s = strstr(s, "?>") + 2;
    while (*s) {
        if (*s == '&') {
            if (!xml_entity_ok(s)) return false;
            s++;
            continue;
        }
        if (*s == '>') return false; /* tolerated by XML, but we never write it raw */
        if (*s != '<') {
            if (depth == 0 && !isspace((unsigned char)*s)) return false; /* text outside the root */
            s++;
            continue;
        }
        s++;
        bool closing = *s == '/';
        if (closing) s++;
        char name[32];
        int n = 0;
        while (*s && (isalnum((unsigned char)*s) || *s == '-' || *s == ':') && n < 31) name[n++] = *s++;
        name[n] = 0;
        if (n == 0) return false;
        if (closing) {
            while (isspace((unsigned char)*s)) s++;
            if (*s != '>' || depth == 0 || strcmp(stack[depth - 1], name) != 0) return false;
            depth--, s++;
            continue;
        }
        if (depth == 0) {
            if (seen_root) return false; /* one root */
            seen_root = true;
            snprintf(info->root, sizeof info->root, "%s", name);
        }
        info->rects += strcmp(name, "rect") == 0;
        info->texts += strcmp(name, "text") == 0;
        /* attributes */
        for (;;) {
            while (isspace((unsigned char)*s)) s++;
            if (*s == '/' && s[1] == '>') {
                s += 2;
                break;
            }
            if (*s == '>') {
                if (depth == 64) return false;
                snprintf(stack[depth++], 32, "%s", name);
                s++;
                break;
            }
            char an[32];
            int k = 0;
            while (*s && (isalnum((unsigned char)*s) || *s == '-' || *s == ':') && k < 31) an[k++] = *s++;
            an[k] = 0;
            if (k == 0 || *s++ != '=') return false;
            char q = *s++;
            if (q != '"' && q != '\'') return false;
            const char *v = s;
            while (*s && *s != q) {
                if (*s == '<') return false;
                if (*s == '&' && !xml_entity_ok(s)) return false;
                s++;
            }
            if (!*s) return false;
            if (depth == 0 && strcmp(an, "width") == 0) info->width = atof(v);
            if (depth == 0 && strcmp(an, "height") == 0) info->height = atof(v);
            s++;
        }
    }
    return depth == 0 && seen_root;
}

static void svg_labels(void) {
    heed_graph *g = heed_graph_new(ctx);
    double w[3 * 4] = {0.1, 0.2, 0.3, 0.4, 1, 0, 0, 0, 0.25, 0.25, 0.25, 0.25};
    heed_tensor *t = heed_input_f64(g, HEED_F32, HEED_SHAPE(3, 4), w);
    const char *queries[3] = {"<s>", "it's", "h\xc3\xa9llo"};
    const char *keys[4] = {"a&b", "\"q\"", "bad\xff\x01", NULL};
    const char *path = file_in_dir("labels.svg");
    heed_svg_opts o = {.cmap = HEED_CMAP_VIRIDIS, .title = "x < y & z", .values = true};
    CHECK(heed_attention_svg(ctx, path, t, queries, keys, &o) == HEED_OK, "%s", heed_ctx_error(ctx));
    char *s = slurp(path);
    CHECK(s != NULL, "read back");
    xml_info info;
    CHECK(s && xml_check(s, &info), "well-formed XML");
    if (s) {
        CHECK(strcmp(info.root, "svg") == 0, "root %s", info.root);
        CHECK(info.width > 4 * 24 && info.height > 3 * 24, "size %g x %g", info.width, info.height);
        CHECK(info.rects == 1 + 12, "a background and one rect per weight: %d", info.rects);
        CHECK(info.texts == 1 + 3 + 4 + 12, "title, labels, values: %d", info.texts);
        CHECK(strstr(s, ">&lt;s&gt;</text>") && strstr(s, ">it&apos;s</text>") && strstr(s, ">h\xc3\xa9llo</text>"),
              "query labels escaped");
        CHECK(strstr(s, ">a&amp;b</text>") && strstr(s, ">&quot;q&quot;</text>") &&
                  strstr(s, ">bad?"
                            "?</text>") &&
                  strstr(s, ">3</text>"),
              "key labels escaped, invalid bytes replaced, NULL label numbered");
        CHECK(strstr(s, ">x &lt; y &amp; z</text>") != NULL, "title escaped");
        CHECK(strstr(s, "<title>it&apos;s / a&amp;b: 1</title>") != NULL, "tooltip");
        CHECK(strstr(s, "fill=\"#fde725\"") != NULL, "the max weight has viridis' top colour");
    }
    free(s);
    /* 4-D, batch and head picked, no labels */
    double w4[2 * 2 * 2 * 2] = {0};
    w4[(1 * 2 + 1) * 4 + 2] = 1;
    t = heed_input_f64(g, HEED_F64, HEED_SHAPE(2, 2, 2, 2), w4);
    CHECK(heed_attention_svg(ctx, path, t, NULL, NULL, &(heed_svg_opts){.batch = 1, .head = 1}) == HEED_OK, "%s",
          heed_ctx_error(ctx));
    s = slurp(path);
    CHECK(s && xml_check(s, &info) && info.rects == 5, "4-D");
    CHECK(s && strstr(s, "<title>1 / 0: 1</title>"), "picked map");
    free(s);
    CHECK(heed_attention_svg(ctx, path, t, NULL, NULL, &(heed_svg_opts){.head = 2}) == HEED_ERR_ARG, "head range");
    CHECK(strstr(heed_ctx_error(ctx), "head = 2 out of range for weights[2,2,2,2]") != NULL, "%s", heed_ctx_error(ctx));
    heed_graph_free(g);
}

/* ---------------------------------------------------------------- errors, atomic writes */

static void errors_leave_nothing(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *t = heed_full(g, HEED_F32, HEED_SHAPE(2, 2), 0.5);
    const char *path = file_in_dir("keep.png");
    CHECK(heed_heatmap_png(ctx, path, t, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    char *before = slurp(path);
    int n_files = files_in_dir();
    /* each failing call leaves the old file as it was and no temporary files */
    CHECK(heed_heatmap_png(ctx, path, NULL, NULL) == HEED_ERR_ARG, "NULL");
    CHECK(strstr(heed_ctx_error(ctx), "heed_heatmap_png: weights is NULL") != NULL, "%s", heed_ctx_error(ctx));
    CHECK(heed_heatmap_png(ctx, path, t, &(heed_heatmap_opts){.cmap = (heed_colormap)7}) == HEED_ERR_ARG, "cmap");
    CHECK(heed_heatmap_png(ctx, path, t, &(heed_heatmap_opts){.cell = -1}) == HEED_ERR_ARG, "cell");
    CHECK(heed_heatmap_png(ctx, path, heed_zeros(g, HEED_F32, HEED_SHAPE(5, 5)), &(heed_heatmap_opts){.cell = 4096}) ==
              HEED_ERR_ARG,
          "too large");
    CHECK(strstr(heed_ctx_error(ctx), "too large") != NULL, "%s", heed_ctx_error(ctx));
    CHECK(heed_heatmap_png(ctx, path, heed_zeros(g, HEED_F32, HEED_SHAPE(3)), NULL) == HEED_ERR_SHAPE, "1-D");
    CHECK(heed_heatmap_png(ctx, path, heed_zeros(g, HEED_F32, HEED_SHAPE(0, 3)), NULL) == HEED_ERR_SHAPE, "empty");
    CHECK(heed_heatmap_png(ctx, path, heed_zeros(g, HEED_F32, HEED_SHAPE(2, 2, 2, 2)),
                           &(heed_heatmap_opts){.batch = 2}) == HEED_ERR_ARG,
          "batch");
    heed_graph_reset(g);
    CHECK(heed_heatmap_png(ctx, path, t, NULL) == HEED_ERR_STATE, "dead tensor");
    t = heed_full(g, HEED_F32, HEED_SHAPE(2, 2), 0.5);
    CHECK(heed_heatmap_png(ctx, "", t, NULL) == HEED_ERR_ARG, "empty path");
    CHECK(heed_heatmap_png(ctx, file_in_dir("no/such/dir.png"), t, NULL) == HEED_ERR_IO, "missing directory");
    CHECK(strstr(heed_ctx_error(ctx), "cannot create") != NULL, "%s", heed_ctx_error(ctx));
    CHECK(heed_attention_svg(ctx, file_in_dir("no/such/dir.svg"), t, NULL, NULL, NULL) == HEED_ERR_IO, "svg io");
    CHECK(heed_heatmap_png(NULL, path, t, NULL) == HEED_ERR_ARG, "NULL ctx");
    char *after = slurp(path);
    CHECK(before && after && strcmp(before, after) == 0, "old file untouched");
    CHECK(files_in_dir() == n_files, "no temporary files left: %d vs %d", files_in_dir(), n_files);
    /* the path is a directory: rename fails, the temporary file is removed */
    CHECK(mkdir(file_in_dir("adir"), 0755) == 0, "mkdir");
    n_files = files_in_dir();
    CHECK(heed_heatmap_png(ctx, file_in_dir("adir"), t, NULL) == HEED_ERR_IO, "rename onto a directory");
    CHECK(files_in_dir() == n_files, "temporary file removed");
    rmdir(file_in_dir("adir"));
    free(before), free(after);
    heed_graph_free(g);
}

static void cleanup(void) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') unlink(file_in_dir(e->d_name));
    if (d) closedir(d);
    rmdir(dir);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 1});
    snprintf(dir, sizeof dir, "/tmp/heed-viz-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(heatmap_single);
    RUN(heatmap_grid);
    RUN(overlay);
    RUN(svg_labels);
    RUN(errors_leave_nothing);
    cleanup();
    heed_ctx_free(ctx);
    return check_summary();
}
