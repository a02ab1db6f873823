/* Scene composer, vocabulary and caption grammar (scenes.h). */
#include "scenes.h"

#include <heed/core.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int scene_source_init(scene_source *src, const fm_set *set, char *err, size_t errlen) {
    *src = (scene_source){.set = set};
    for (int64_t i = 0; i < set->n; i++) src->count[set->labels[i]]++;
    for (int c = 0; c < FM_CLASSES; c++) {
        if (!src->count[c]) {
            if (err && errlen)
                snprintf(err, errlen, "scenes: the set has no image of class %d (%s)", c, fm_class_names[c]);
            scene_source_free(src);
            return -1;
        }
        src->by_class[c] = malloc((size_t)src->count[c] * sizeof **src->by_class);
        if (!src->by_class[c]) {
            if (err && errlen) snprintf(err, errlen, "scenes: out of memory");
            scene_source_free(src);
            return -1;
        }
        src->count[c] = 0;
    }
    for (int64_t i = 0; i < set->n; i++) src->by_class[set->labels[i]][src->count[set->labels[i]]++] = i;
    return 0;
}

void scene_source_free(scene_source *src) {
    for (int c = 0; c < FM_CLASSES; c++) free(src->by_class[c]);
    *src = (scene_source){0};
}

/* The first k entries of a uniformly shuffled 0 .. n-1 (partial Fisher-Yates). */
static void draw_distinct(heed_rng *r, int n, int k, int *out) {
    int all[16];
    for (int i = 0; i < n; i++) all[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)heed_rng_below(r, (uint64_t)(n - i));
        int t = all[i];
        all[i] = all[j], all[j] = t;
        out[i] = all[i];
    }
}

void scene_make(const scene_source *src, uint64_t seed, uint64_t index, scene *out) {
    heed_rng r = heed_rng_make(seed, index);
    memset(out, 0, sizeof *out);
    out->n_objects = 2 + (int)heed_rng_below(&r, SCENE_MAX_OBJECTS - 1);
    int classes[SCENE_MAX_OBJECTS], cells[SCENE_MAX_OBJECTS];
    draw_distinct(&r, FM_CLASSES, out->n_objects, classes);
    draw_distinct(&r, SCENE_GRID * SCENE_GRID, out->n_objects, cells);
    for (int k = 0; k < out->n_objects; k++) {
        scene_object *o = &out->obj[k];
        o->cls = classes[k], o->cell = cells[k];
        o->x0 = cells[k] % SCENE_GRID * SCENE_CELL + (int)heed_rng_below(&r, SCENE_JITTER + 1);
        o->y0 = cells[k] / SCENE_GRID * SCENE_CELL + (int)heed_rng_below(&r, SCENE_JITTER + 1);
        o->x1 = o->x0 + FM_SIDE, o->y1 = o->y0 + FM_SIDE;
        o->image = src->by_class[o->cls][heed_rng_below(&r, (uint64_t)src->count[o->cls])];
        const uint8_t *img = src->set->images + o->image * FM_SIDE * FM_SIDE;
        for (int y = 0; y < FM_SIDE; y++)
            memcpy(out->pixels + (o->y0 + y) * SCENE_SIDE + o->x0, img + y * FM_SIDE, FM_SIDE);
    }
}

/* ---------------------------------------------------------------- vocabulary */

static const char *const words[TOK_CLASS0] = {"<pad>", "<start>", "<end>", "<unk>", "a",     "the",
                                              "and",   "left",    "right", "of",    "above", "below"};

const char *vocab_word(int id) {
    if (id < 0 || id >= VOCAB_SIZE) return NULL;
    return id < TOK_CLASS0 ? words[id] : fm_class_names[id - TOK_CLASS0];
}

int vocab_id(const char *word, size_t len) {
    for (int id = TOK_A; id < VOCAB_SIZE; id++) {
        const char *w = vocab_word(id);
        if (strlen(w) == len && !strncmp(w, word, len)) return id;
    }
    return TOK_UNK;
}

int caption_tokenize(const char *text, int *ids, int max) {
    int n = 0;
    for (const char *p = text; *p;) {
        while (*p == ' ') p++;
        const char *q = p;
        while (*q && *q != ' ') q++;
        if (q == p) break;
        if (n == max) return -1;
        ids[n++] = vocab_id(p, (size_t)(q - p));
        p = q;
    }
    return n;
}

int caption_text(const int *ids, int n, char *buf, size_t len) {
    size_t k = 0;
    if (len) buf[0] = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < TOK_A || ids[i] >= VOCAB_SIZE) continue;
        int w = snprintf(buf + k, len > k ? len - k : 0, "%s%s", k ? " " : "", vocab_word(ids[i]));
        if (w < 0 || k + (size_t)w >= len) return -1;
        k += (size_t)w;
    }
    return (int)k;
}

/* ---------------------------------------------------------------- grammar */

int scene_relation(int cell_a, int cell_b, int rel[3]) {
    int ra = cell_a / SCENE_GRID, ca = cell_a % SCENE_GRID, rb = cell_b / SCENE_GRID, cb = cell_b % SCENE_GRID, n = 0;
    if (ra != rb) rel[n++] = ra < rb ? TOK_ABOVE : TOK_BELOW;
    if (ca != cb) rel[n++] = ca < cb ? TOK_LEFT : TOK_RIGHT, rel[n++] = TOK_OF;
    return n;
}

/* c += "a"/"the" name REL "a" name: one clause. */
static void clause(caption *c, const scene_object *x, const scene_object *y, int second_article) {
    c->tok[c->n++] = TOK_A;
    c->tok[c->n++] = TOK_CLASS0 + x->cls;
    c->n += scene_relation(x->cell, y->cell, c->tok + c->n);
    c->tok[c->n++] = second_article;
    c->tok[c->n++] = TOK_CLASS0 + y->cls;
}

int scene_captions(const scene *s, caption *out) {
    int count = 0;
    for (int i = 0; i < s->n_objects; i++)
        for (int j = 0; j < s->n_objects; j++) {
            if (i == j) continue;
            if (s->n_objects == 2) {
                out[count] = (caption){0};
                clause(&out[count++], &s->obj[i], &s->obj[j], TOK_A);
                continue;
            }
            int k = 3 - i - j; /* the third object, placed against i, then against j */
            for (int anchor = 0; anchor < 2; anchor++) {
                caption *c = &out[count++];
                *c = (caption){0};
                clause(c, &s->obj[i], &s->obj[j], TOK_A);
                c->tok[c->n++] = TOK_AND;
                clause(c, &s->obj[k], &s->obj[anchor ? j : i], TOK_THE);
            }
        }
    return count;
}

/* The object of class token t in s, or -1. */
static int object_of(const scene *s, int t) {
    for (int k = 0; k < s->n_objects; k++)
        if (t == TOK_CLASS0 + s->obj[k].cls) return k;
    return -1;
}

/* Parses "a" name REL article2 name at tok[*pos]: true when well formed, both names are
 * objects of s, the first is new (not in named[]) and the second another one, and the
 * relation holds. Marks both named. (The second name is then new in the first clause and
 * named before in the second, as "a" and "the" say: only the first is new there.) */
static bool parse_clause(const scene *s, const int *tok, int n, int *pos, int article2, bool named[]) {
    int p = *pos;
    if (p + 2 > n || tok[p] != TOK_A) return false;
    int x = object_of(s, tok[p + 1]);
    if (x < 0 || named[x]) return false;
    named[x] = true;
    p += 2;
    int rel[3], m = 0;
    while (p < n && m < 3 && tok[p] != TOK_A && tok[p] != TOK_THE) rel[m++] = tok[p++];
    if (p + 2 > n || tok[p] != article2) return false;
    int y = object_of(s, tok[p + 1]);
    if (y < 0 || y == x) return false;
    named[y] = true;
    int want[3], wn = scene_relation(s->obj[x].cell, s->obj[y].cell, want);
    if (wn != m || memcmp(want, rel, (size_t)m * sizeof *rel)) return false;
    *pos = p + 2;
    return true;
}

bool caption_valid(const scene *s, const int *tok, int n) {
    bool named[SCENE_MAX_OBJECTS] = {false};
    int pos = 0;
    if (!parse_clause(s, tok, n, &pos, TOK_A, named)) return false;
    if (s->n_objects == 3) {
        if (pos >= n || tok[pos++] != TOK_AND || !parse_clause(s, tok, n, &pos, TOK_THE, named)) return false;
    }
    for (int k = 0; k < s->n_objects; k++)
        if (!named[k]) return false;
    return pos == n;
}

int scene_captions_in_reading_order(const scene *s, caption *out) {
    int n = scene_captions(s, out), kept = 0;
    for (int c = 0; c < n; c++) {
        bool in_order = true; /* each object's first naming ("a X"; "the X" names one again) */
        for (int j = 1, last = -1; j < out[c].n; j++)
            for (int k = 0; k < s->n_objects; k++)
                if (out[c].tok[j - 1] == TOK_A && out[c].tok[j] == TOK_CLASS0 + s->obj[k].cls)
                    in_order &= s->obj[k].cell > last, last = s->obj[k].cell;
        if (in_order) out[kept++] = out[c];
    }
    return kept;
}
