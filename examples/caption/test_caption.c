/* The caption example's data: the IDX reader on small hand-made files (gzip and plain) and
 * on broken ones (each error names the file and the rule), Fashion-MNIST's checks, the
 * scene composer (deterministic, boxes inside their cells, pixels where the boxes say),
 * the relations against the boxes' geometry, and the captions (all valid, all distinct,
 * as many as the grammar allows, wrong ones refused).
 *   test_caption                        the above, on files made in a temporary directory
 *   test_caption --fashion-mnist DIR    also loads the real dataset from DIR */
#include "scenes.h"
#include "tests/check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/heed-caption-XXXXXX";

static const char *path_of(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Writes bytes to name, gzip-compressed or plain; returns the path. */
static const char *write_file(const char *name, const void *data, size_t len, bool gz) {
    const char *p = path_of(name);
    if (gz) {
        gzFile f = gzopen(p, "wb");
        CHECK(f && gzwrite(f, data, (unsigned)len) == (int)len && gzclose(f) == Z_OK, "writing %s", p);
    } else {
        FILE *f = fopen(p, "wb");
        CHECK(f && fwrite(data, 1, len, f) == len && fclose(f) == 0, "writing %s", p);
    }
    return p;
}

/* An IDX header of unsigned bytes with dims d[0 .. nd) into buf; its length. */
static size_t header(uint8_t *buf, int nd, const uint32_t *d) {
    buf[0] = buf[1] = 0, buf[2] = 0x08, buf[3] = (uint8_t)nd;
    for (int i = 0; i < nd; i++)
        buf[4 + 4 * i] = (uint8_t)(d[i] >> 24), buf[5 + 4 * i] = (uint8_t)(d[i] >> 16),
                    buf[6 + 4 * i] = (uint8_t)(d[i] >> 8), buf[7 + 4 * i] = (uint8_t)d[i];
    return 4 + 4 * (size_t)nd;
}

static void idx_good_files(void) {
    uint8_t buf[64];
    size_t h = header(buf, 3, (uint32_t[]){3, 2, 2});
    for (int i = 0; i < 12; i++) buf[h + i] = (uint8_t)(17 * i + 3);
    for (int gz = 0; gz < 2; gz++) {
        const char *p = write_file(gz ? "good.gz" : "good.idx", buf, h + 12, gz);
        idx_array a;
        char err[512] = "";
        CHECK(idx_load(p, &a, err, sizeof err) == 0, "%s", err);
        CHECK(a.ndim == 3 && a.dims[0] == 3 && a.dims[1] == 2 && a.dims[2] == 2 && a.count == 12, "dims");
        for (int i = 0; a.data && i < 12; i++) CHECK(a.data[i] == (uint8_t)(17 * i + 3), "byte %d", i);
        idx_free(&a);
    }
    /* an empty array is a valid file */
    h = header(buf, 2, (uint32_t[]){0, 5});
    idx_array a;
    char err[512] = "";
    CHECK(idx_load(write_file("empty.gz", buf, h, true), &a, err, sizeof err) == 0 && a.count == 0, "empty: %s", err);
    idx_free(&a);
}

/* The file must fail with a message naming it and containing want. */
static void refused(const char *p, const char *want) {
    idx_array a = {.count = -1};
    char err[512] = "";
    CHECK(idx_load(p, &a, err, sizeof err) == -1, "%s was accepted", p);
    CHECK(strstr(err, p) && strstr(err, want), "%s: message '%s' lacks '%s'", p, err, want);
    CHECK(a.data == NULL && a.count == 0, "%s: the array is not left empty", p);
}

static void idx_bad_files(void) {
    uint8_t buf[64];
    memset(buf, 7, sizeof buf);
    size_t h = header(buf, 2, (uint32_t[]){2, 3});
    refused(write_file("short.gz", buf, 3, true), "ends after 3 bytes; an IDX file starts with 4 magic bytes");
    buf[1] = 1;
    refused(write_file("magic.gz", buf, h + 6, true),
            "not an IDX file (magic bytes 00 01 08 02; the first two must be 0)");
    buf[1] = 0, buf[2] = 0x0D;
    refused(write_file("float.gz", buf, h + 6, true), "data type 0x0d is not supported (only 0x08, unsigned bytes)");
    buf[2] = 0x08, buf[3] = 0;
    refused(write_file("nodims.gz", buf, h + 6, true), "0 dims (1 to 4 allowed)");
    buf[3] = 5;
    refused(write_file("fivedims.gz", buf, 40, true), "5 dims (1 to 4 allowed)");
    buf[3] = 2;
    refused(write_file("header.gz", buf, 9, true), "the header ends after 5 of its 8 dim bytes");
    refused(write_file("truncated.gz", buf, h + 5, true), "ends after 5 of the 6 data bytes its dims 2x3 announce");
    refused(write_file("trailing.idx", buf, h + 7, false),
            "has more bytes after the 6 data bytes its dims 2x3 announce");
    h = header(buf, 3, (uint32_t[]){65536, 256, 129});
    refused(write_file("huge.gz", buf, h + 6, true), "dims 65536x256x129 announce more than 2147483648 data bytes");
    /* a gzip stream cut short: zlib's error, not a short file */
    h = header(buf, 2, (uint32_t[]){2, 3});
    uint8_t big[4096];
    memcpy(big, buf, h);
    for (size_t i = h; i < sizeof big; i++) big[i] = (uint8_t)(i * 2654435761u >> 13);
    big[4] = 0, big[5] = 0, big[6] = 0x0f, big[7] = 0xf4, big[8] = 0, big[9] = 0, big[10] = 0,
    big[11] = 1; /* 4084 x 1 */
    const char *full = write_file("cut-full.gz", big, sizeof big, true);
    FILE *f = fopen(full, "rb");
    uint8_t gzbytes[8192];
    size_t n = f ? fread(gzbytes, 1, sizeof gzbytes, f) : 0;
    if (f) fclose(f);
    CHECK(n > 100, "the gzip file has %zu bytes", n);
    refused(write_file("cut.gz", gzbytes, n / 2, false), "unexpected end of file");
    refused(path_of("missing.gz"), "cannot open");
}

static void fashion_mnist_checks(void) {
    uint8_t img[16 + 2 * 28 * 28], lab[8 + 2];
    size_t hi = header(img, 3, (uint32_t[]){2, 28, 28}), hl = header(lab, 1, (uint32_t[]){2});
    memset(img + hi, 9, 2 * 28 * 28);
    lab[hl] = 8, lab[hl + 1] = 9;
    char err[512];
    idx_array a, b;
    fm_set s;
    const char *ip = write_file("train-images-idx3-ubyte.gz", img, hi + 2 * 28 * 28, true);
    write_file("train-labels-idx1-ubyte.gz", lab, hl + 2, true);
    CHECK(fm_load(dir, "train", &s, err, sizeof err) == 0 && s.n == 2 && s.labels[1] == 9 && s.images[5] == 9, "%s",
          err);
    fm_free(&s);
    CHECK(fm_load(dir, "t10k", &s, err, sizeof err) == -1 && strstr(err, "t10k-images-idx3-ubyte.gz: cannot open"),
          "%s", err);
    lab[hl + 1] = 10;
    const char *lp = write_file("bad-labels.gz", lab, hl + 2, true);
    CHECK(idx_load(ip, &a, err, sizeof err) == 0 && idx_load(lp, &b, err, sizeof err) == 0, "%s", err);
    CHECK(fm_from_arrays(&a, ip, &b, lp, &s, err, sizeof err) == -1 &&
              strstr(err, "bad-labels.gz: label 10 at index 1 is not a class (0..9)"),
          "%s", err);
    CHECK(a.data && b.data, "the arrays were taken on an error");
    b.dims[0] = 1;
    CHECK(fm_from_arrays(&a, ip, &b, lp, &s, err, sizeof err) == -1 && strstr(err, "labels are 1; ") &&
              strstr(err, "has 2 images, so they must be 2"),
          "%s", err);
    a.dims[2] = 27;
    CHECK(fm_from_arrays(&a, ip, &b, lp, &s, err, sizeof err) == -1 &&
              strstr(err, "images are 2x28x27; Fashion-MNIST images are Nx28x28 with N >= 1"),
          "%s", err);
    idx_free(&a), idx_free(&b);
}

/* ---------------------------------------------------------------- scenes */

/* A set of 3 images per class; image i is filled with 1 + i (never background). */
static fm_set toy_set(void) {
    fm_set s = {.n = 3 * FM_CLASSES};
    s.images = malloc((size_t)s.n * FM_SIDE * FM_SIDE);
    s.labels = malloc((size_t)s.n);
    for (int64_t i = 0; i < s.n; i++) {
        s.labels[i] = (uint8_t)((i * 7) % FM_CLASSES);
        memset(s.images + i * FM_SIDE * FM_SIDE, (int)(1 + i), FM_SIDE * FM_SIDE);
    }
    return s;
}

static void scenes_are_deterministic_and_well_placed(void) {
    fm_set set = toy_set();
    scene_source src;
    char err[256];
    CHECK(scene_source_init(&src, &set, err, sizeof err) == 0, "%s", err);
    static scene a, b;
    int with[4] = {0}, jitter_seen[SCENE_JITTER + 1] = {0};
    for (uint64_t i = 0; i < 300; i++) {
        scene_make(&src, 42, i, &a);
        scene_make(&src, 42, i, &b);
        CHECK(!memcmp(&a, &b, sizeof a), "scene %llu differs between two makes", (unsigned long long)i);
        scene_make(&src, 43, i, &b);
        CHECK(memcmp(a.pixels, b.pixels, sizeof a.pixels), "seeds 42 and 43 give the same scene %llu",
              (unsigned long long)i);
        CHECK(a.n_objects == 2 || a.n_objects == 3, "%d objects", a.n_objects);
        with[a.n_objects]++;
        int covered = 0;
        for (int k = 0; k < a.n_objects; k++) {
            const scene_object *o = &a.obj[k];
            int cx = o->cell % 3 * SCENE_CELL, cy = o->cell / 3 * SCENE_CELL;
            CHECK(o->x0 >= cx && o->y0 >= cy && o->x1 <= cx + SCENE_CELL && o->y1 <= cy + SCENE_CELL,
                  "box outside its cell");
            CHECK(o->x0 >= 0 && o->y0 >= 0 && o->x1 <= SCENE_SIDE && o->y1 <= SCENE_SIDE && o->x1 - o->x0 == FM_SIDE &&
                      o->y1 - o->y0 == FM_SIDE,
                  "box [%d,%d)x[%d,%d)", o->x0, o->x1, o->y0, o->y1);
            CHECK(set.labels[o->image] == o->cls, "object %d: image %lld is not of class %d", k, (long long)o->image,
                  o->cls);
            jitter_seen[o->x0 - cx]++;
            for (int j = 0; j < k; j++)
                CHECK(a.obj[j].cell != o->cell && a.obj[j].cls != o->cls, "repeated cell or class");
            for (int y = o->y0; y < o->y1; y++)
                for (int x = o->x0; x < o->x1; x++) covered += a.pixels[y * SCENE_SIDE + x] == (uint8_t)(1 + o->image);
        }
        int lit = 0;
        for (int p = 0; p < SCENE_SIDE * SCENE_SIDE; p++) lit += a.pixels[p] != 0;
        CHECK(covered == a.n_objects * FM_SIDE * FM_SIDE && lit == covered, "scene %llu: %d pixels in boxes, %d lit",
              (unsigned long long)i, covered, lit);
    }
    CHECK(with[2] > 100 && with[3] > 100, "2 objects %d times, 3 objects %d times", with[2], with[3]);
    for (int j = 0; j <= SCENE_JITTER; j++) CHECK(jitter_seen[j] > 0, "offset %d never drawn", j);
    scene_source_free(&src);
    fm_free(&set);
    fm_set few = toy_set(); /* no sandal left */
    for (int64_t i = 0; i < few.n; i++)
        if (few.labels[i] == 5) few.labels[i] = 6;
    CHECK(scene_source_init(&src, &few, err, sizeof err) == -1 && strstr(err, "no image of class 5 (sandal)"), "%s",
          err);
    fm_free(&few);
}

/* The relation words against the boxes: centres differ by a cell or more along an axis
 * named, and by less than a cell along an axis not named. */
static void relations_match_geometry(void) {
    int rel[3];
    for (int a = 0; a < 9; a++)
        for (int b = 0; b < 9; b++) {
            if (a == b) continue;
            int n = scene_relation(a, b, rel), dx = a % 3 - b % 3, dy = a / 3 - b / 3;
            bool above = false, below = false, left = false, right = false;
            for (int i = 0; i < n; i++)
                above |= rel[i] == TOK_ABOVE, below |= rel[i] == TOK_BELOW, left |= rel[i] == TOK_LEFT,
                    right |= rel[i] == TOK_RIGHT;
            CHECK(above == (dy < 0) && below == (dy > 0) && left == (dx < 0) && right == (dx > 0), "cells %d, %d", a,
                  b);
            CHECK(n == (dy != 0) + 2 * (dx != 0) && (dx == 0 || rel[n - 1] == TOK_OF), "cells %d, %d: %d words", a, b,
                  n);
        }
    char text[128];
    scene_relation(0, 8, rel);
    CHECK(caption_text(rel, 3, text, sizeof text) > 0 && !strcmp(text, "above left of"), "'%s'", text);
    scene_relation(5, 4, rel);
    CHECK(caption_text(rel, 2, text, sizeof text) > 0 && !strcmp(text, "right of"), "'%s'", text);
    scene_relation(1, 7, rel);
    CHECK(caption_text(rel, 1, text, sizeof text) > 0 && !strcmp(text, "above"), "'%s'", text);
}

static void captions_are_the_valid_ones(void) {
    fm_set set = toy_set();
    scene_source src;
    char err[256], text[256];
    CHECK(scene_source_init(&src, &set, err, sizeof err) == 0, "%s", err);
    static scene s;
    caption caps[SCENE_MAX_CAPTIONS];
    for (uint64_t i = 0; i < 200; i++) {
        scene_make(&src, 7, i, &s);
        int n = scene_captions(&s, caps);
        CHECK(n == (s.n_objects == 2 ? 2 : 12), "scene %llu: %d captions for %d objects", (unsigned long long)i, n,
              s.n_objects);
        for (int c = 0; c < n; c++) {
            CHECK(caption_valid(&s, caps[c].tok, caps[c].n), "scene %llu: caption %d refused", (unsigned long long)i,
                  c);
            for (int d = 0; d < c; d++)
                CHECK(caps[c].n != caps[d].n || memcmp(caps[c].tok, caps[d].tok, sizeof(int) * (size_t)caps[c].n),
                      "captions %d and %d are equal", c, d);
            /* the text round trip */
            int ids[CAPTION_MAX_TOKENS];
            CHECK(caption_text(caps[c].tok, caps[c].n, text, sizeof text) > 0, "text");
            CHECK(caption_tokenize(text, ids, CAPTION_MAX_TOKENS) == caps[c].n &&
                      !memcmp(ids, caps[c].tok, sizeof(int) * (size_t)caps[c].n),
                  "'%s' does not tokenize back", text);
        }
        /* the training references in reading order: the one order of the objects by cell
         * (rows, then columns), with either anchor of the second clause for 3 objects */
        caption tr[SCENE_MAX_CAPTIONS];
        int nt = scene_captions_in_reading_order(&s, tr);
        CHECK(nt == (s.n_objects == 2 ? 1 : 2), "scene %llu: %d reading-order references", (unsigned long long)i, nt);
        for (int c = 0; c < nt; c++) {
            int seen = 0, last_cell = -1, in_order = 1;
            for (int j = 1; j < tr[c].n; j++)
                for (int k = 0; k < s.n_objects; k++)
                    if (tr[c].tok[j] == TOK_CLASS0 + s.obj[k].cls && tr[c].tok[j - 1] == TOK_A)
                        in_order &= s.obj[k].cell > last_cell, last_cell = s.obj[k].cell, seen++;
            CHECK(in_order && seen == s.n_objects && caption_valid(&s, tr[c].tok, tr[c].n),
                  "scene %llu: reference %d is not in reading order", (unsigned long long)i, c);
        }
        /* every single-token change of a valid caption is refused: swap a word for another */
        int changed_ok = 0;
        for (int pos = 0; pos < caps[0].n; pos++)
            for (int w = TOK_A; w < VOCAB_SIZE; w++) {
                if (w == caps[0].tok[pos]) continue;
                caption m = caps[0];
                m.tok[pos] = w;
                bool listed = false;
                for (int c = 0; c < n; c++)
                    listed |= m.n == caps[c].n && !memcmp(m.tok, caps[c].tok, sizeof(int) * (size_t)m.n);
                changed_ok += caption_valid(&s, m.tok, m.n) && !listed;
            }
        CHECK(changed_ok == 0, "scene %llu: %d one-word changes are valid but not references", (unsigned long long)i,
              changed_ok);
        CHECK(!caption_valid(&s, caps[0].tok, caps[0].n - 1) && !caption_valid(&s, caps[0].tok, 0),
              "a cut caption passes");
    }
    /* a hand-checked scene: bag in cell 0, sneaker in cell 2, shirt in cell 8 */
    s = (scene){.n_objects = 3, .obj = {{.cls = 8, .cell = 0}, {.cls = 7, .cell = 2}, {.cls = 6, .cell = 8}}};
    int ids[CAPTION_MAX_TOKENS];
    const char *good = "a bag left of a sneaker and a shirt below the sneaker";
    const char *also = "a bag left of a sneaker and a shirt below right of the bag";
    const char *bad[] = {"a bag left of a sneaker and a shirt above the sneaker",
                         "a bag left of a sneaker",
                         "a bag left of a sneaker and a shirt below left of the sneaker",
                         "a bag right of a sneaker and a shirt below the sneaker",
                         "a bag left of a sneaker and a shirt below left of the bag",
                         "a bag left of a sneaker and a bag below the sneaker",
                         "a bag left of a sneaker and a shirt below the sneaker and",
                         "a bag left of a coat and a shirt below the coat",
                         "a bag left of the sneaker and a shirt below the sneaker",
                         "a bag left to a sneaker and a shirt below the sneaker"};
    int n = caption_tokenize(good, ids, CAPTION_MAX_TOKENS);
    CHECK(n == 12 && caption_valid(&s, ids, n), "'%s' refused", good);
    n = caption_tokenize(also, ids, CAPTION_MAX_TOKENS);
    CHECK(n == 14 && caption_valid(&s, ids, n), "'%s' refused", also);
    /* its reading-order references are exactly these two (bag, sneaker, shirt by cell) */
    int nt = scene_captions_in_reading_order(&s, caps);
    char t0[256] = "", t1[256] = "";
    if (nt == 2)
        caption_text(caps[0].tok, caps[0].n, t0, sizeof t0), caption_text(caps[1].tok, caps[1].n, t1, sizeof t1);
    CHECK(nt == 2 && ((!strcmp(t0, good) && !strcmp(t1, also)) || (!strcmp(t0, also) && !strcmp(t1, good))),
          "reading order: %d references, '%s', '%s'", nt, t0, t1);
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        n = caption_tokenize(bad[k], ids, CAPTION_MAX_TOKENS);
        CHECK(n > 0 && !caption_valid(&s, ids, n), "'%s' accepted", bad[k]);
    }
    CHECK(caption_tokenize("a a a a a a a a a a a a a a a a a", ids, CAPTION_MAX_TOKENS) == -1, "too long accepted");
    CHECK(caption_tokenize("  a  bag ", ids, 4) == 2 && ids[0] == TOK_A && ids[1] == TOK_CLASS0 + 8, "spaces");
    CHECK(vocab_id("to", 2) == TOK_UNK && vocab_word(VOCAB_SIZE) == NULL && !strcmp(vocab_word(TOK_CLASS0 + 9), "boot"),
          "vocab");
    scene_source_free(&src);
    fm_free(&set);
}

static const char *fm_dir;

static void real_fashion_mnist(void) {
    char err[512];
    fm_set s;
    const char *splits[2] = {"train", "t10k"};
    const int64_t sizes[2] = {60000, 10000};
    for (int k = 0; k < 2; k++) {
        CHECK(fm_load(fm_dir, splits[k], &s, err, sizeof err) == 0,
              "%s (scripts/setup.sh installs dataset-fashion-mnist)", err);
        CHECK(s.n == sizes[k], "%s: %lld images", splits[k], (long long)s.n);
        int64_t per[FM_CLASSES] = {0};
        for (int64_t i = 0; i < s.n; i++) per[s.labels[i]]++;
        for (int c = 0; c < FM_CLASSES; c++)
            CHECK(per[c] == sizes[k] / 10, "%s: class %d has %lld", splits[k], c, (long long)per[c]);
        fm_free(&s);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--fashion-mnist")) fm_dir = argv[2];
    else if (argc != 1) return fprintf(stderr, "usage: %s [--fashion-mnist DIR]\n", argv[0]), 2;
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    if (fm_dir) {
        RUN(real_fashion_mnist);
    } else {
        RUN(idx_good_files);
        RUN(idx_bad_files);
        RUN(fashion_mnist_checks);
        RUN(scenes_are_deterministic_and_well_placed);
        RUN(relations_match_geometry);
        RUN(captions_are_the_valid_ones);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
