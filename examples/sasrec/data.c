/* SASRec datasets: the "user item" text format, the leave-one-out split and the rows the
 * trainer and the evaluator feed the model. */
#include "sasrec_data.h"
#include <heed/io.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX 2147483647LL

void sr_data_free(sr_data *d) {
    if (!d) return;
    free(d->start);
    free(d->items);
    free(d->sorted);
    *d = (sr_data){0};
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int sr_data_from_pairs(sr_data *d, const int32_t *users, const int32_t *items, int64_t n, char *err, size_t errlen) {
    int64_t n_users = 0, n_items = 0;
    for (int64_t i = 0; i < n; i++) {
        if (users[i] < 1 || items[i] < 1) {
            snprintf(err, errlen, "pair %lld: ids start from 1, got user %d item %d", (long long)i, users[i], items[i]);
            return -1;
        }
        if (users[i] > n_users) n_users = users[i];
        if (items[i] > n_items) n_items = items[i];
    }
    sr_data t = {.n_users = n_users, .n_items = n_items, .n_interactions = n};
    t.start = calloc((size_t)n_users + 2, sizeof *t.start);
    t.items = malloc((size_t)(n ? n : 1) * sizeof *t.items);
    t.sorted = malloc((size_t)(n ? n : 1) * sizeof *t.sorted);
    int64_t *fill = calloc((size_t)n_users + 2, sizeof *fill);
    if (!t.start || !t.items || !t.sorted || !fill) {
        free(fill);
        sr_data_free(&t);
        snprintf(err, errlen, "out of memory for %lld interactions of %lld users", (long long)n, (long long)n_users);
        return -1;
    }
    /* Counting sort by user, stable: each user's items keep their file (time) order. */
    for (int64_t i = 0; i < n; i++) t.start[users[i] + 1]++;
    for (int64_t u = 1; u <= n_users + 1; u++) t.start[u] += t.start[u - 1];
    for (int64_t i = 0; i < n; i++) {
        int64_t u = users[i];
        t.items[t.start[u] + fill[u]++] = items[i];
    }
    free(fill);
    for (int64_t u = 1; u <= n_users; u++) {
        int64_t m = sr_train_len(&t, u);
        memcpy(t.sorted + t.start[u], t.items + t.start[u], (size_t)m * sizeof(int32_t));
        qsort(t.sorted + t.start[u], (size_t)m, sizeof(int32_t), cmp_i32);
    }
    *d = t;
    return 0;
}

/* The line as it appears in a message: printable, at most 60 characters. */
static void quote_line(const char *s, size_t len, char *out, size_t outlen) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 60) {
            o += (size_t)snprintf(out + o, outlen - o, "...");
            break;
        }
        if (c >= 32 && c < 127) out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o < outlen ? o : outlen - 1] = 0;
}

/* Parses a positive id at *p, advancing it; false if there is none or it is out of range. */
static bool parse_id(const char **p, int64_t *v, const char **why) {
    const char *s = *p;
    if (*s < '0' || *s > '9') {
        *why = "expected a positive integer id";
        return false;
    }
    int64_t x = 0;
    while (*s >= '0' && *s <= '9') {
        x = x * 10 + (*s - '0');
        if (x > ID_MAX) {
            *why = "id larger than 2147483647";
            return false;
        }
        s++;
    }
    if (x == 0) {
        *why = "ids start from 1, got 0";
        return false;
    }
    *v = x;
    *p = s;
    return true;
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Reads one line into buf (at most cap bytes, without the '\n'). Returns its length, -1 at
 * the end of the file, or cap + 1 if the line is longer than cap (the rest of it is left
 * unread: a file without line ends, such as /dev/zero, is refused after cap bytes). */
static int64_t read_line(FILE *f, char *buf, int64_t cap) {
    int64_t n = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (n == cap) return cap + 1;
        buf[n++] = (char)c;
    }
    buf[n] = 0;
    return c == EOF && n == 0 ? -1 : n;
}

/* The largest id a file of `lines` lines may use. Every id up to the largest gets a row
 * (users: an offset; items: an embedding row and its Adam moments), so a file's ids must
 * be about as dense as its lines: "2147483647 3" alone would ask for 16 GiB. */
static int64_t id_limit(int64_t lines) { return SR_IDS_PER_LINE * lines + SR_IDS_SLACK; }

int sr_read(FILE *f, const char *name, sr_data *d, char *err, size_t errlen) {
    int32_t *us = NULL, *is = NULL;
    int64_t n = 0, cap = 0, lineno = 0, len;
    int64_t max_id[2] = {0, 0}, max_line[2] = {0, 0}; /* the largest user and item id, and their lines */
    char *line = malloc(SR_LINE_MAX + 1);
    int rc = -1;
    if (!line) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    while ((len = read_line(f, line, SR_LINE_MAX)) >= 0) {
        lineno++;
        if (len > SR_LINE_MAX) {
            char q[300];
            quote_line(line, SR_LINE_MAX, q, sizeof q);
            snprintf(err, errlen, "%s:%lld: line longer than %d bytes (a line is 'user item'): '%s'", name,
                     (long long)lineno, SR_LINE_MAX, q);
            goto out;
        }
        if ((size_t)len != strlen(line)) {
            char q[300];
            quote_line(line, (size_t)len, q, sizeof q);
            snprintf(err, errlen, "%s:%lld: NUL byte in line: '%s'", name, (long long)lineno, q);
            goto out;
        }
        while (len > 0 && line[len - 1] == '\r') line[--len] = 0;
        const char *p = line, *why = NULL;
        while (is_blank(*p)) p++;
        if (!*p) continue; /* blank lines are allowed */
        int64_t u, it;
        bool ok = parse_id(&p, &u, &why);
        if (ok && !is_blank(*p)) ok = false, why = *p ? "expected whitespace after the user id" : "missing item id";
        while (ok && is_blank(*p)) p++;
        if (ok && !*p) ok = false, why = "missing item id";
        ok = ok && parse_id(&p, &it, &why);
        while (ok && is_blank(*p)) p++;
        if (ok && *p) ok = false, why = "unexpected text after the item id (format: 'user item')";
        if (!ok) {
            char q[300];
            quote_line(line, (size_t)len, q, sizeof q);
            snprintf(err, errlen, "%s:%lld: %s: '%s'", name, (long long)lineno, why, q);
            goto out;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            int32_t *nu = realloc(us, (size_t)cap * sizeof *us);
            if (nu) us = nu;
            int32_t *ni = nu ? realloc(is, (size_t)cap * sizeof *is) : NULL;
            if (ni) is = ni;
            if (!nu || !ni) {
                snprintf(err, errlen, "%s:%lld: out of memory", name, (long long)lineno);
                goto out;
            }
        }
        us[n] = (int32_t)u;
        is[n] = (int32_t)it;
        n++;
        if (u > max_id[0]) max_id[0] = u, max_line[0] = lineno;
        if (it > max_id[1]) max_id[1] = it, max_line[1] = lineno;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error after line %lld: %s", name, (long long)lineno, strerror(errno));
        goto out;
    }
    if (n == 0) {
        snprintf(err, errlen, "%s: no 'user item' lines (empty file)", name);
        goto out;
    }
    for (int k = 0; k < 2; k++)
        if (max_id[k] > id_limit(n)) {
            snprintf(err, errlen,
                     "%s:%lld: %s id %lld is far beyond the file's %lld line%s (ids may go up to %d x lines + %d = "
                     "%lld): every id up to the largest takes memory, so number the ids densely from 1",
                     name, (long long)max_line[k], k ? "item" : "user", (long long)max_id[k], (long long)n,
                     n == 1 ? "" : "s", SR_IDS_PER_LINE, SR_IDS_SLACK, (long long)id_limit(n));
            goto out;
        }
    if (sr_data_from_pairs(d, us, is, n, err, errlen) == 0) rc = 0;
out:
    free(line);
    free(us);
    free(is);
    return rc;
}

int sr_load(const char *path, sr_data *d, char *err, size_t errlen) {
    if (!path || !d) {
        snprintf(err, errlen, "sr_load: path or dataset is NULL");
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = sr_read(f, path, d, err, errlen);
    fclose(f);
    return rc;
}

/* Through heed's atomic writer: a failed save never leaves a partial file. (A context of
 * its own only carries the writer's message.) */
int sr_save(const char *path, const sr_data *d, char *err, size_t errlen) {
    heed_ctx *ctx = heed_ctx_new(NULL);
    if (!ctx) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    heed_atomic_file af;
    heed_status st = heed_atomic_open(ctx, "sasrec --save-data", path, &af);
    for (int64_t u = 1; st == HEED_OK && u <= d->n_users; u++)
        for (int64_t i = d->start[u]; i < d->start[u + 1]; i++) fprintf(af.f, "%lld %d\n", (long long)u, d->items[i]);
    st = heed_atomic_close(ctx, &af, st);
    if (st != HEED_OK) snprintf(err, errlen, "%s", heed_ctx_error(ctx));
    heed_ctx_free(ctx);
    return st == HEED_OK ? 0 : -1;
}

bool sr_seen_in_train(const sr_data *d, int64_t u, int32_t item) {
    const int32_t *s = d->sorted + d->start[u];
    int64_t lo = 0, hi = sr_train_len(d, u);
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (s[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    return lo < sr_train_len(d, u) && s[lo] == item;
}

bool sr_seen(const sr_data *d, int64_t u, int32_t item) {
    return sr_seen_in_train(d, u, item) ||
           (sr_len(d, u) >= 3 && (item == sr_valid_item(d, u) || item == sr_test_item(d, u)));
}

/* Distinct items among user u's training items (sorted, so repeats are adjacent). */
static int64_t distinct_in_train(const sr_data *d, int64_t u) {
    const int32_t *s = d->sorted + d->start[u];
    int64_t m = sr_train_len(d, u), k = 0;
    for (int64_t i = 0; i < m; i++) k += i == 0 || s[i] != s[i - 1];
    return k;
}

int64_t sr_unseen_in_train(const sr_data *d, int64_t u) { return d->n_items - distinct_in_train(d, u); }

int64_t sr_unseen(const sr_data *d, int64_t u) {
    int64_t k = distinct_in_train(d, u);
    if (sr_len(d, u) >= 3) {
        int32_t v = sr_valid_item(d, u), t = sr_test_item(d, u);
        k += !sr_seen_in_train(d, u, v);
        k += t != v && !sr_seen_in_train(d, u, t);
    }
    return d->n_items - k;
}

int32_t sr_nth_unseen(const sr_data *d, int64_t u, bool train_only, int64_t k) {
    for (int32_t it = 1; it <= d->n_items; it++)
        if (!(train_only ? sr_seen_in_train(d, u, it) : sr_seen(d, u, it)) && k-- == 0) return it;
    return 0;
}

sr_stats sr_data_stats(const sr_data *d) {
    sr_stats s = {0};
    int64_t users = 0;
    unsigned char *seen = calloc((size_t)d->n_items + 1, 1);
    for (int64_t i = 0; seen && i < d->n_interactions; i++) {
        s.active_items += !seen[d->items[i]];
        seen[d->items[i]] = 1;
    }
    free(seen);
    for (int64_t u = 1; u <= d->n_users; u++) {
        int64_t n = sr_len(d, u);
        if (n) users++;
        if (sr_train_len(d, u) >= 2) s.users_with_train++;
        if (n >= 3) s.users_with_test++;
        if (n > s.max_len) s.max_len = n;
    }
    s.mean_len = users ? (double)d->n_interactions / (double)users : 0;
    s.active_users = users;
    return s;
}

/* ---------------------------------------------------------------- rows */

/* A random item in 1..n_items the user has not trained on. Rejection sampling; after many
 * rejections (a user who trained on nearly every item) an exact draw among the rest. A
 * user who trained on every item has no negative: any item (the trainer refuses them). */
static int64_t negative(const sr_data *d, int64_t u, heed_rng *r) {
    int64_t it = 0;
    for (int tries = 0; tries < 1000; tries++) {
        it = 1 + (int64_t)heed_rng_below(r, (uint64_t)d->n_items);
        if (!sr_seen_in_train(d, u, (int32_t)it)) return it;
    }
    int64_t rest = sr_unseen_in_train(d, u);
    return rest > 0 ? sr_nth_unseen(d, u, true, (int64_t)heed_rng_below(r, (uint64_t)rest)) : it;
}

void sr_train_row(const sr_data *d, int64_t u, int64_t maxlen, heed_rng *r, int64_t *seq, int64_t *pos, int64_t *neg) {
    memset(seq, 0, (size_t)maxlen * sizeof *seq);
    memset(pos, 0, (size_t)maxlen * sizeof *pos);
    memset(neg, 0, (size_t)maxlen * sizeof *neg);
    const int32_t *s = sr_seq(d, u);
    int64_t m = sr_train_len(d, u), idx = maxlen - 1;
    if (m < 1) return;
    int64_t next = s[m - 1];
    for (int64_t i = m - 2; i >= 0 && idx >= 0; i--, idx--) {
        seq[idx] = s[i];
        pos[idx] = next;
        neg[idx] = negative(d, u, r);
        next = s[i];
    }
}

void sr_eval_row(const sr_data *d, int64_t u, int64_t maxlen, bool test, int64_t *seq) {
    memset(seq, 0, (size_t)maxlen * sizeof *seq);
    const int32_t *s = sr_seq(d, u);
    int64_t m = sr_train_len(d, u), idx = maxlen - 1;
    if (test && sr_len(d, u) >= 3 && idx >= 0) seq[idx--] = sr_valid_item(d, u);
    for (int64_t i = m - 1; i >= 0 && idx >= 0; i--) seq[idx--] = s[i];
}
