/* The alphabet, manifests, corpora and their cache, and the task's data sets. */
#include "data.h"
#include <heed/extend.h>
#include <heed/io.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- alphabet */

int las_char_token(int c) {
    if (c == ' ') return 2;
    if (c == '\'') return 3;
    if (c >= 'a' && c <= 'z') return 4 + (c - 'a');
    return -1;
}

int las_token_char(int64_t tok) {
    if (tok == 2) return ' ';
    if (tok == 3) return '\'';
    if (tok >= 4 && tok < LAS_VOCAB) return 'a' + (int)(tok - 4);
    return 0;
}

int las_check_text(const char *text, char *err, size_t errlen) {
    size_t n = strlen(text);
    if (n == 0) return snprintf(err, errlen, "the transcript is empty"), -1;
    if (n > LAS_MAX_TEXT)
        return snprintf(err, errlen, "the transcript has %zu characters (at most %d)", n, LAS_MAX_TEXT), -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (las_char_token(c) < 0)
            return snprintf(err, errlen,
                            c >= 32 && c < 127
                                ? "character '%c' at column %zu is outside the alphabet (a-z, ' and space)"
                                : "byte 0x%02x at column %zu is outside the alphabet (a-z, ' and space)",
                            c, i + 1),
                   -1;
        if (c == ' ' && (i == 0 || i + 1 == n || text[i + 1] == ' '))
            return snprintf(err, errlen,
                            "a space at column %zu: words are separated by single spaces, no space at either end",
                            i + 1),
                   -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- manifests */

void las_manifest_free(las_manifest *m) {
    for (int64_t i = 0; i < m->n; i++) free(m->path[i]), free(m->text[i]);
    free(m->path);
    free(m->text);
    *m = (las_manifest){0};
}

int las_manifest_read(FILE *f, const char *name, const char *dir, las_manifest *m, char *err, size_t errlen) {
    *m = (las_manifest){0};
    char *line = malloc(LAS_MAX_LINE + 2);
    int64_t cap = 0, lineno = 0;
    if (!line) return snprintf(err, errlen, "%s: out of memory", name), -1;
    char why[256];
    for (;;) {
        size_t len = 0;
        int c = 0;
        while ((c = fgetc(f)) != EOF && c != '\n') {
            if (len > LAS_MAX_LINE) break;
            line[len++] = (char)c;
        }
        if (c == EOF && len == 0) break;
        lineno++;
        if (len > LAS_MAX_LINE) {
            snprintf(err, errlen, "%s:%lld: the line is longer than %d bytes", name, (long long)lineno, LAS_MAX_LINE);
            goto fail;
        }
        if (len && line[len - 1] == '\r') len--;
        line[len] = 0;
        if (memchr(line, 0, len)) {
            snprintf(err, errlen, "%s:%lld: a NUL byte in the line", name, (long long)lineno);
            goto fail;
        }
        if (len == 0 || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab || tab == line) {
            snprintf(err, errlen, "%s:%lld: expected PATH<TAB>TRANSCRIPT", name, (long long)lineno);
            goto fail;
        }
        *tab = 0;
        const char *text = tab + 1;
        if (las_check_text(text, why, sizeof why)) {
            snprintf(err, errlen, "%s:%lld: %s", name, (long long)lineno, why);
            goto fail;
        }
        if (m->n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(m->path, (size_t)cap * sizeof *p);
            if (p) m->path = p;
            char **t = realloc(m->text, (size_t)cap * sizeof *t);
            if (t) m->text = t;
            if (!p || !t) goto oom;
        }
        size_t plen = strlen(line) + (dir && line[0] != '/' ? strlen(dir) + 1 : 0) + 1;
        char *path = malloc(plen), *tx = strdup(text);
        if (!path || !tx) {
            free(path), free(tx);
            goto oom;
        }
        if (dir && line[0] != '/') snprintf(path, plen, "%s/%s", dir, line);
        else snprintf(path, plen, "%s", line);
        m->path[m->n] = path, m->text[m->n] = tx, m->n++;
        if (c == EOF) break;
    }
    free(line);
    if (ferror(f)) {
        las_manifest_free(m);
        return snprintf(err, errlen, "%s: read error", name), -1;
    }
    if (m->n == 0) return snprintf(err, errlen, "%s: no utterance (lines PATH<TAB>TRANSCRIPT)", name), -1;
    return 0;
oom:
    snprintf(err, errlen, "%s:%lld: out of memory", name, (long long)lineno);
fail:
    free(line);
    las_manifest_free(m);
    return -1;
}

int las_manifest_load(const char *path, las_manifest *m, char *err, size_t errlen) {
    *m = (las_manifest){0};
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) return snprintf(err, errlen, "%s: not a regular file", path), -1;
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
    const char *slash = strrchr(path, '/');
    char dir[4096] = ".";
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), slash == path ? "/" : path);
    int rc = las_manifest_read(f, path, dir, m, err, errlen);
    fclose(f);
    return rc;
}

/* ---------------------------------------------------------------- corpora */

void las_corpus_free(las_corpus *c) {
    for (int64_t i = 0; i < c->n; i++) free(c->u[i].text), free(c->u[i].feat);
    free(c->u);
    *c = (las_corpus){0};
}

static int corpus_push(las_corpus *c, char *text, float *feat, int64_t frames) {
    if (c->n == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 256;
        las_utt *u = realloc(c->u, (size_t)cap * sizeof *u);
        if (!u) return -1;
        c->u = u, c->cap = cap;
    }
    c->u[c->n++] = (las_utt){text, frames, feat};
    return 0;
}

int las_corpus_add_audio(las_corpus *c, las_fbank *fb, const char *text, const float *x, int64_t n, char *err,
                         size_t errlen) {
    int F = las_fbank_bands(fb);
    if (c->bands && c->bands != F) return snprintf(err, errlen, "corpus of %d bands, features of %d", c->bands, F), -1;
    c->bands = F;
    int64_t T = las_fbank_frames(n);
    float *feat = malloc((size_t)(T * F) * sizeof *feat);
    char *tx = strdup(text);
    if (!feat || !tx || (las_fbank_compute(fb, x, n, feat), las_cmvn(feat, T, F), corpus_push(c, tx, feat, T))) {
        free(feat), free(tx);
        return snprintf(err, errlen, "out of memory for the features of '%s'", text), -1;
    }
    return 0;
}

int las_corpus_add_manifest(las_corpus *c, las_fbank *fb, const las_manifest *m, const char *name, char *err,
                            size_t errlen) {
    char why[1024];
    for (int64_t i = 0; i < m->n; i++) {
        float *x;
        int64_t n;
        if (las_wav_read(m->path[i], &x, &n, why, sizeof why))
            return snprintf(err, errlen, "%s: utterance %lld: %s", name, (long long)i + 1, why), -1;
        int rc = las_corpus_add_audio(c, fb, m->text[i], x, n, err, errlen);
        free(x);
        if (rc) return -1;
    }
    return 0;
}

/* The cache file: "LASCACHE1\n", the key and "\n", int64 count, int32 bands, then per
 * utterance int32 text length, the text, int64 frames, frames * bands floats. */
static const char magic[] = "LASCACHE1\n";

int las_corpus_save(const las_corpus *c, const char *path, const char *key, char *err, size_t errlen) {
    heed_ctx *ctx = heed_ctx_new(NULL); /* holds the atomic writer's message */
    if (!ctx) return snprintf(err, errlen, "%s: out of memory", path), -1;
    heed_atomic_file af;
    heed_status st = heed_atomic_open(ctx, "las: the feature cache", path, &af);
    if (st == HEED_OK) {
        FILE *f = af.f;
        int32_t bands = c->bands;
        bool ok = fputs(magic, f) >= 0 && fputs(key, f) >= 0 && fputc('\n', f) != EOF && fwrite(&c->n, 8, 1, f) == 1 &&
                  fwrite(&bands, 4, 1, f) == 1;
        for (int64_t i = 0; ok && i < c->n; i++) {
            const las_utt *u = &c->u[i];
            int32_t len = (int32_t)strlen(u->text);
            ok = fwrite(&len, 4, 1, f) == 1 && fwrite(u->text, 1, (size_t)len, f) == (size_t)len &&
                 fwrite(&u->frames, 8, 1, f) == 1 &&
                 fwrite(u->feat, sizeof(float), (size_t)(u->frames * bands), f) == (size_t)(u->frames * bands);
        }
        if (!ok)
            st =
                heed_ctx_fail(ctx, HEED_ERR_IO, "las: the feature cache: writing %s failed: %s", path, strerror(errno));
        st = heed_atomic_close(ctx, &af, st); /* commits, or removes the temporary file */
    }
    if (st != HEED_OK) snprintf(err, errlen, "%s", heed_ctx_error(ctx));
    heed_ctx_free(ctx);
    return st == HEED_OK ? 0 : -1;
}

int las_corpus_load(las_corpus *c, const char *path, const char *key, char *err, size_t errlen) {
    *c = (las_corpus){0};
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    char head[1024];
    size_t klen = strlen(key);
    bool same = fread(head, 1, sizeof magic - 1, f) == sizeof magic - 1 && !memcmp(head, magic, sizeof magic - 1) &&
                klen + 1 < sizeof head && fread(head, 1, klen + 1, f) == klen + 1 && !memcmp(head, key, klen) &&
                head[klen] == '\n';
    if (!same) {
        fclose(f);
        return 1;
    }
    int64_t n = 0;
    int32_t bands = 0;
    bool ok = fread(&n, 8, 1, f) == 1 && fread(&bands, 4, 1, f) == 1 && n >= 0 && n <= 10000000 &&
              (bands == 40 || bands == 80);
    c->bands = bands;
    char text[LAS_MAX_TEXT + 1], why[256];
    for (int64_t i = 0; ok && i < n; i++) {
        int32_t len = 0;
        int64_t frames = 0;
        ok = fread(&len, 4, 1, f) == 1 && len >= 1 && len <= LAS_MAX_TEXT &&
             fread(text, 1, (size_t)len, f) == (size_t)len;
        if (ok) text[len] = 0;
        ok = ok && !las_check_text(text, why, sizeof why) && fread(&frames, 8, 1, f) == 1 && frames >= 1 &&
             frames <= (int64_t)LAS_MAX_SECONDS * 100 + 1;
        float *feat = ok ? malloc((size_t)(frames * bands) * sizeof *feat) : NULL;
        char *tx = ok ? strdup(text) : NULL;
        ok = feat && tx && fread(feat, sizeof(float), (size_t)(frames * bands), f) == (size_t)(frames * bands) &&
             !corpus_push(c, tx, feat, frames);
        if (!ok) free(feat), free(tx);
    }
    ok = ok && fgetc(f) == EOF;
    fclose(f);
    if (!ok) {
        las_corpus_free(c);
        return snprintf(err, errlen, "%s: the cache file is corrupt or truncated: remove it to regenerate", path), -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the task's data sets */

static const char *const digit_words[10] = {"zero", "one", "two",   "three", "four",
                                            "five", "six", "seven", "eight", "nine"};
static const char *const train_speakers[3] = {"jackson", "nicolas", "theo"};

const char *las_set_name(las_set s) {
    static const char *const names[] = {"train", "a-espeak-heldout", "b-flite", "c-fsdd-test", "d-yweweler"};
    return s < LAS_N_SETS ? names[s] : "?";
}

void las_random_digits(heed_rng *r, char *text, size_t len, int *digits, int *n_digits) {
    int n = 1 + (int)heed_rng_below(r, 7);
    size_t at = 0;
    text[0] = 0;
    for (int i = 0; i < n; i++) {
        digits[i] = (int)heed_rng_below(r, 10);
        at += (size_t)snprintf(text + at, len - at, "%s%s", i ? " " : "", digit_words[digits[i]]);
    }
    *n_digits = n;
}

/* x[n] with lead and trail samples of silence around it (a new buffer). */
static float *pad_silence(const float *x, int64_t n, int64_t lead, int64_t trail, int64_t *n_out) {
    float *y = calloc((size_t)(lead + n + trail), sizeof *y);
    if (!y) return NULL;
    memcpy(y + lead, x, (size_t)n * sizeof *x);
    *n_out = lead + n + trail;
    return y;
}

/* One FSDD speaker's recordings of takes lo..hi, per digit. */
typedef struct {
    float *x[10][50];
    int64_t n[10][50];
} fsdd_speaker;

static void fsdd_free(fsdd_speaker *s) {
    for (int d = 0; d < 10; d++)
        for (int k = 0; k < 50; k++) free(s->x[d][k]);
}

static int fsdd_load(const char *dir, const char *speaker, int lo, int hi, fsdd_speaker *s, char *err, size_t errlen) {
    *s = (fsdd_speaker){0};
    char path[4096];
    for (int d = 0; d < 10; d++)
        for (int k = lo; k <= hi; k++) {
            snprintf(path, sizeof path, "%s/%d_%s_%d.wav", dir, d, speaker, k);
            if (las_wav_read(path, &s->x[d][k], &s->n[d][k], err, errlen)) {
                fsdd_free(s);
                return -1;
            }
        }
    return 0;
}

/* A connected-digit utterance from one speaker's takes lo..hi: recordings joined with
 * 30-150 ms gaps, 50-250 ms of silence before and after. perturb (training only): each
 * recording's speed and pitch scaled by a factor in [0.85, 1.15] (resampled as if
 * recorded at 8 kHz x factor), and white noise at 30-50 dB SNR on the whole. */
static int fsdd_utterance(const fsdd_speaker *s, int lo, int hi, bool perturb, heed_rng *r, char *text, float **out,
                          int64_t *n_out) {
    int digits[7], nd;
    las_random_digits(r, text, LAS_MAX_TEXT, digits, &nd);
    float *part[7] = {0};
    int64_t len[7], total = (int64_t)(0.25 * LAS_RATE) * 2;
    char err[256];
    int rc = -1;
    for (int i = 0; i < nd; i++) {
        int take = lo + (int)heed_rng_below(r, (uint64_t)(hi - lo + 1));
        const float *x = s->x[digits[i]][take];
        len[i] = s->n[digits[i]][take];
        int rate = perturb ? (int)lround(LAS_RATE * (0.85 + 0.3 * heed_rng_uniform(r))) : LAS_RATE;
        if (rate != LAS_RATE ? las_resample(x, len[i], rate, LAS_RATE, &part[i], &len[i], err, sizeof err) != 0
                             : !(part[i] = malloc((size_t)len[i] * sizeof *part[i])))
            goto out;
        if (rate == LAS_RATE) memcpy(part[i], x, (size_t)len[i] * sizeof *x);
        total += len[i] + (int64_t)(0.15 * LAS_RATE);
    }
    float *y = calloc((size_t)total, sizeof *y);
    if (!y) goto out;
    int64_t at = (int64_t)((0.05 + 0.2 * heed_rng_uniform(r)) * LAS_RATE);
    for (int i = 0; i < nd; i++) {
        if (i) at += (int64_t)((0.03 + 0.12 * heed_rng_uniform(r)) * LAS_RATE);
        memcpy(y + at, part[i], (size_t)len[i] * sizeof *y);
        at += len[i];
    }
    at += (int64_t)((0.05 + 0.2 * heed_rng_uniform(r)) * LAS_RATE);
    *out = y, *n_out = at < total ? at : total;
    if (perturb) las_add_noise(y, *n_out, 30 + 20 * heed_rng_uniform(r), r);
    rc = 0;
out:
    for (int i = 0; i < nd; i++) free(part[i]);
    return rc;
}

typedef struct {
    const las_data_config *cfg;
    las_fbank *fb;
    las_corpus *c;
    char **variants;
    int n_variants;
    char *err;
    size_t errlen;
} gen_ctx;

/* Appends x (freed here) with 0-300 ms of silence before and after and white noise at
 * 15-40 dB SNR: the conditions of the synthetic sets. */
static int add_padded(gen_ctx *g, heed_rng *r, const char *text, float *x, int64_t nx) {
    int64_t ny;
    float *y = pad_silence(x, nx, (int64_t)(0.3 * LAS_RATE * heed_rng_uniform(r)),
                           (int64_t)(0.3 * LAS_RATE * heed_rng_uniform(r)), &ny);
    free(x);
    if (!y) return snprintf(g->err, g->errlen, "out of memory"), -1;
    las_add_noise(y, ny, 15 + 25 * heed_rng_uniform(r), r);
    int rc = las_corpus_add_audio(g->c, g->fb, text, y, ny, g->err, g->errlen);
    free(y);
    return rc;
}

/* n espeak-ng utterances, voice variants held out (heldout) or not, from stream `stream`. */
static int gen_espeak(gen_ctx *g, int64_t n, bool heldout, uint64_t stream) {
    int pool[256], np = 0;
    for (int v = 0; v < g->n_variants && np < 256; v++)
        if ((v % LAS_HELDOUT_EVERY == 5) == heldout) pool[np++] = v;
    if (np == 0) return snprintf(g->err, g->errlen, "espeak-ng: no voice variant for this set"), -1;
    for (int64_t i = 0; i < n; i++) {
        heed_rng r = heed_rng_make(g->cfg->seed, stream * 1000000 + (uint64_t)i);
        char text[LAS_MAX_TEXT + 1], voice[256];
        int digits[7], nd;
        las_random_digits(&r, text, sizeof text, digits, &nd);
        const char *accent = las_espeak_accents[heed_rng_below(&r, (uint64_t)las_n_espeak_accents)];
        snprintf(voice, sizeof voice, "%s+%s", accent, g->variants[pool[heed_rng_below(&r, (uint64_t)np)]]);
        int wpm = 110 + (int)heed_rng_below(&r, 91), pitch = 20 + (int)heed_rng_below(&r, 61),
            gap = (int)heed_rng_below(&r, 4);
        float *x;
        int64_t nx;
        if (las_espeak(voice, text, wpm, pitch, gap, &x, &nx, g->err, g->errlen) || add_padded(g, &r, text, x, nx))
            return -1;
    }
    return 0;
}

static int gen_flite(gen_ctx *g, int64_t n, uint64_t stream) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/flite-%ld.wav", g->cfg->cache_dir, (long)getpid());
    for (int64_t i = 0; i < n; i++) {
        heed_rng r = heed_rng_make(g->cfg->seed, stream * 1000000 + (uint64_t)i);
        char text[LAS_MAX_TEXT + 1];
        int digits[7], nd;
        las_random_digits(&r, text, sizeof text, digits, &nd);
        const char *voice = las_flite_voices[heed_rng_below(&r, (uint64_t)las_n_flite_voices)];
        double stretch = 0.8 + 0.45 * heed_rng_uniform(&r), f0 = 80 + 100 * heed_rng_uniform(&r);
        float *x;
        int64_t nx;
        if (las_flite(voice, text, stretch, f0, tmp, &x, &nx, g->err, g->errlen) || add_padded(g, &r, text, x, nx))
            return -1;
    }
    return 0;
}

/* n connected-digit utterances spread evenly over the speakers, takes lo..hi. */
static int gen_fsdd(gen_ctx *g, const char *const *speakers, int n_speakers, int lo, int hi, bool perturb, int64_t n,
                    uint64_t stream) {
    for (int sp = 0; sp < n_speakers; sp++) {
        fsdd_speaker s;
        if (fsdd_load(g->cfg->fsdd_dir, speakers[sp], lo, hi, &s, g->err, g->errlen)) return -1;
        for (int64_t i = sp; i < n; i += n_speakers) {
            heed_rng r = heed_rng_make(g->cfg->seed, stream * 1000000 + (uint64_t)i);
            char text[LAS_MAX_TEXT + 1];
            float *y;
            int64_t ny;
            if (fsdd_utterance(&s, lo, hi, perturb && i % 2 == 1, &r, text, &y, &ny)) { /* half stay clean */
                fsdd_free(&s);
                return snprintf(g->err, g->errlen, "out of memory"), -1;
            }
            int rc = las_corpus_add_audio(g->c, g->fb, text, y, ny, g->err, g->errlen);
            free(y);
            if (rc) {
                fsdd_free(&s);
                return -1;
            }
        }
        fsdd_free(&s);
    }
    return 0;
}

static int generate(const las_data_config *cfg, las_set s, las_corpus *c, char *err, size_t errlen) {
    gen_ctx g = {.cfg = cfg, .c = c, .err = err, .errlen = errlen};
    g.fb = las_fbank_new(cfg->bands);
    if (!g.fb) return snprintf(err, errlen, "cannot make a filterbank of %d bands (40 or 80)", cfg->bands), -1;
    int rc = 0;
    if (s == LAS_SET_TRAIN || s == LAS_SET_A) rc = las_espeak_variants(&g.variants, &g.n_variants, err, errlen);
    const char *yw[1] = {"yweweler"};
    if (!rc) switch (s) {
        case LAS_SET_TRAIN:
            rc = gen_espeak(&g, cfg->train_synth, false, 1) ||
                 gen_fsdd(&g, train_speakers, 3, 5, 49, true, cfg->train_fsdd, 2);
            break;
        case LAS_SET_A: rc = gen_espeak(&g, cfg->test_size, true, 3); break;
        case LAS_SET_B: rc = gen_flite(&g, cfg->test_size, 4); break;
        case LAS_SET_C: rc = gen_fsdd(&g, train_speakers, 3, 0, 4, false, cfg->test_size, 5); break;
        case LAS_SET_D: rc = gen_fsdd(&g, yw, 1, 0, 49, false, cfg->test_size, 6); break;
        default: rc = -1;
        }
    for (int i = 0; i < g.n_variants; i++) free(g.variants[i]);
    free(g.variants);
    las_fbank_free(g.fb);
    if (rc) las_corpus_free(c);
    return rc ? -1 : 0;
}

int las_mkdir_p(const char *path) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return errno = ENAMETOOLONG, -1;
    for (char *s = p + 1;; s++) {
        bool end = *s == 0;
        if (*s != '/' && !end) continue;
        *s = 0;
        struct stat sb;
        if (mkdir(p, 0777) != 0 && (errno != EEXIST || stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
            if (errno == EEXIST) errno = ENOTDIR;
            return -1;
        }
        if (end) return 0;
        *s = '/';
    }
}

int las_data_get(const las_data_config *cfg, las_set s, las_corpus *c, char *err, size_t errlen) {
    *c = (las_corpus){0};
    char key[512], path[4096];
    int64_t n = s == LAS_SET_TRAIN ? cfg->train_synth + cfg->train_fsdd : cfg->test_size;
    snprintf(key, sizeof key, "v3 set=%s seed=%llu bands=%d n=%lld synth=%lld fsdd=%lld", las_set_name(s),
             (unsigned long long)cfg->seed, cfg->bands, (long long)n, (long long)cfg->train_synth,
             (long long)cfg->train_fsdd);
    snprintf(path, sizeof path, "%s/%s-%d-%llu-%lld.feat", cfg->cache_dir, las_set_name(s), cfg->bands,
             (unsigned long long)cfg->seed, (long long)n);
    int rc = las_corpus_load(c, path, key, err, errlen);
    if (rc <= 0) return rc;
    if (las_mkdir_p(cfg->cache_dir) != 0)
        return snprintf(err, errlen, "--cache %s: %s", cfg->cache_dir, strerror(errno)), -1;
    if (!cfg->quiet)
        fprintf(stderr, "data: generating %s (%lld utterances) into %s\n", las_set_name(s), (long long)n, path);
    if (generate(cfg, s, c, err, errlen)) return -1;
    return las_corpus_save(c, path, key, err, errlen);
}
