/* Seeing training: the progress bar in plain-line mode (file, pipe) and terminal mode,
 * the metrics CSV, and SVG curves (well-formed XML, spikes kept when long series are
 * reduced, atomic replacement, log axes, bad input). */
#include "check.h"
#include "heed/io.h"
#include "heed/viz.h"

#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static heed_ctx *ctx;
static char dir[64];

static char *path_in(const char *name) {
    static char buf[4][320];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 320, "%s/%.255s", dir, name);
    return p;
}

static char *slurp_file(FILE *f) {
    fflush(f);
    rewind(f);
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    size_t got;
    while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) s = realloc(s, cap *= 2);
    }
    s[n] = 0;
    return s;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = slurp_file(f);
    fclose(f);
    return s;
}

static int count_char(const char *s, char c) {
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

/* ---------------------------------------------------------------- progress */

static void progress_plain_lines(void) {
    FILE *f = tmpfile();
    heed_progress *p =
        heed_progress_new(ctx, &(heed_progress_opts){.out = f, .total = 10, .every = 3, .label = "train"});
    double ema = 0;
    int n = 0;
    for (int step = 1; step <= 10; step++) {
        double loss = 10 - step;
        heed_progress_update(p, step, loss);
        ema = 0.9 * ema + 0.1 * loss, n++;
    }
    /* the debiased moving average of 9, 8, ..., 0 */
    double want = ema / (1 - pow(0.9, n));
    CHECK_CLOSE(heed_progress_running_loss(p), want, 1e-12);
    heed_progress_note(p, "epoch %d done", 1);
    heed_progress_free(p);
    char *s = slurp_file(f);
    /* a file is not a terminal: plain lines, no carriage returns or escapes */
    CHECK(!strchr(s, '\r') && !strchr(s, '\033'), "plain mode wrote control characters: %s", s);
    CHECK(count_char(s, '\n') == 5, "want 5 lines (steps 3, 6, 9, the note, the end), got:\n%s", s);
    CHECK(!strncmp(s, "train step 3/10 rate ", 21), "first line: %s", s);
    CHECK(strstr(s, "\ntrain step 6/10 rate ") && strstr(s, "\ntrain step 9/10 rate ") && strstr(s, " eta "), "%s", s);
    CHECK(strstr(s, "\nepoch 1 done\ntrain done 10/10 rate ") && strstr(s, " elapsed "), "%s", s);
    char loss_txt[32];
    snprintf(loss_txt, sizeof loss_txt, " loss %.4f\n", want);
    CHECK(strstr(s, loss_txt) != NULL, "final line lacks '%s': %s", loss_txt, s);
    free(s);
    fclose(f);
}

static void progress_pipe(void) {
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    FILE *w = fdopen(fds[1], "w");
    heed_progress *p = heed_progress_new(ctx, &(heed_progress_opts){.out = w, .every = 2}); /* unknown total */
    for (int step = 1; step <= 4; step++) heed_progress_update(p, step, NAN);
    heed_progress_free(p);
    fclose(w);
    char buf[1024];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = 0;
    CHECK(!strncmp(buf, "step 2 rate ", 12) && strstr(buf, "\nstep 4 rate ") && strstr(buf, "\ndone 4 rate "),
          "pipe output: %s", buf);
    CHECK(!strstr(buf, "loss") && !strstr(buf, "eta") && !strchr(buf, '\r'), "no loss or ETA without them: %s", buf);
}

static void progress_terminal(void) {
    FILE *f = tmpfile();
    heed_progress *p = heed_progress_new(ctx, &(heed_progress_opts){.out = f,
                                                                    .total = 10,
                                                                    .mode = HEED_PROGRESS_TERMINAL,
                                                                    .interval = 1e-9});
    for (int step = 1; step <= 5; step++) heed_progress_update(p, step, 2.0);
    heed_progress_note(p, "hello");
    for (int step = 6; step <= 10; step++) heed_progress_update(p, step, 2.0);
    heed_progress_free(p);
    char *s = slurp_file(f);
    /* half way: 12 of 24 cells filled, then the arrow head */
    CHECK(strstr(s, "\r[============>           ] 5/10  ") != NULL, "bar at 5/10 missing: %s", s);
    CHECK(strstr(s, "\r[========================] 10/10  ") != NULL, "full bar missing");
    CHECK(strstr(s, "\033[K") && strstr(s, " it/s") && strstr(s, "ETA ") && strstr(s, "loss 2.0000"), "fields");
    CHECK(strstr(s, "\r\033[Khello\n\r[") != NULL, "a note clears the bar, prints, redraws");
    size_t len = strlen(s);
    CHECK(len > 0 && s[len - 1] == '\n' && count_char(s, '\n') == 2, "the bar ends with one newline");
    CHECK(strstr(s, "  in ") != NULL, "final line shows the time taken");
    free(s);
    fclose(f);
}

static void progress_bad_options(void) {
    CHECK(!heed_progress_new(ctx, &(heed_progress_opts){.total = -1}) &&
              strstr(heed_ctx_error(ctx), "heed_progress_new: total = -1, every = 0 (must be >= 0; 0 = unknown, by "
                                          "interval)"),
          "%s", heed_ctx_error(ctx));
    CHECK(!heed_progress_new(ctx, &(heed_progress_opts){.every = -5}) &&
              strstr(heed_ctx_error(ctx), "total = 0, every = -5"),
          "%s", heed_ctx_error(ctx));
    double bad[] = {-1, NAN, INFINITY};
    for (int i = 0; i < 3; i++) {
        char want[80];
        snprintf(want, sizeof want, "heed_progress_new: interval = %g s (must be finite and >= 0", bad[i]);
        CHECK(!heed_progress_new(ctx, &(heed_progress_opts){.interval = bad[i]}) && strstr(heed_ctx_error(ctx), want),
              "%s", heed_ctx_error(ctx));
    }
    CHECK(!heed_progress_new(ctx, &(heed_progress_opts){.mode = (heed_progress_mode)7}) &&
              strstr(heed_ctx_error(ctx), "heed_progress_new: mode = 7 (must be AUTO, TERMINAL or LINES)"),
          "%s", heed_ctx_error(ctx));
    CHECK(!heed_progress_new(NULL, &(heed_progress_opts){.total = -1}), "NULL ctx: NULL, no message");
    /* a NULL bar (what a failed new gives) is a no-op everywhere */
    heed_progress_update(NULL, 1, 1.0), heed_progress_note(NULL, "x"), heed_progress_free(NULL);
    CHECK(isnan(heed_progress_running_loss(NULL)), "NULL running loss");
}

/* ---------------------------------------------------------------- metrics CSV */

static void metrics_csv(void) {
    const char *names[] = {"step", "loss", "val,acc \"top1\""};
    const char *path = path_in("m.csv");
    heed_metrics *m = heed_metrics_new(ctx, path, 3, names);
    CHECK(m != NULL, "%s", heed_ctx_error(ctx));
    CHECK(heed_metrics_add(m, (double[]){1, 0.5, NAN}) == HEED_OK, "add");
    CHECK(heed_metrics_add(m, (double[]){2, 0.1 + 0.2, INFINITY}) == HEED_OK, "add");
    CHECK(heed_metrics_add(m, (double[]){3, -1e-300, -INFINITY}) == HEED_OK, "add");
    /* each row is on disk before close */
    char *s = slurp(path);
    const char *want = "step,loss,\"val,acc \"\"top1\"\"\"\n1,0.5,nan\n2,0.30000000000000004,inf\n3,-1e-300,-inf\n";
    CHECK(s && !strcmp(s, want), "CSV:\n%s\nwant:\n%s", s, want);
    free(s);
    const double *col = NULL;
    CHECK(heed_metrics_rows(m) == 3 && heed_metrics_column(m, 1, &col) == HEED_OK && col[1] == 0.1 + 0.2, "memory");
    CHECK_CTX_FAIL(ctx, heed_metrics_column(m, 3, &col), HEED_ERR_ARG,
                   "heed_metrics_column: column 3 out of range (log has 3 columns)");
    CHECK_CTX_FAIL(ctx, heed_metrics_column(m, -1, &col), HEED_ERR_ARG, "column -1 out of range");
    CHECK_CTX_FAIL(ctx, heed_metrics_column(m, 0, NULL), HEED_ERR_ARG, "heed_metrics_column: values is NULL");
    CHECK_CTX_FAIL(ctx, heed_metrics_add(m, NULL), HEED_ERR_ARG, "heed_metrics_add: values is NULL");
    CHECK(heed_metrics_free(m) == HEED_OK, "close");
    /* memory only */
    m = heed_metrics_new(ctx, NULL, 1, names);
    for (int i = 0; i < 1000; i++) heed_metrics_add(m, (double[]){i});
    CHECK(heed_metrics_rows(m) == 1000 && heed_metrics_column(m, 0, &col) == HEED_OK && col[999] == 999, "growth");
    heed_metrics_free(m);
    /* bad input */
    CHECK(!heed_metrics_new(ctx, path_in("no/such/dir.csv"), 1, names) && strstr(heed_ctx_error(ctx), "cannot open"),
          "%s", heed_ctx_error(ctx));
    CHECK(!heed_metrics_new(ctx, NULL, 0, names) && strstr(heed_ctx_error(ctx), "0 columns"), "%s",
          heed_ctx_error(ctx));
    CHECK(!heed_metrics_new(ctx, NULL, 2, (const char *[]){"a", ""}) && strstr(heed_ctx_error(ctx), "column 1"), "%s",
          heed_ctx_error(ctx));
    CHECK(!heed_metrics_new(NULL, NULL, 1, names), "NULL ctx");
    /* a NULL log has no ctx for a message: the code only */
    CHECK(heed_metrics_add(NULL, NULL) == HEED_ERR_ARG && heed_metrics_free(NULL) == HEED_OK, "NULL");
    CHECK(heed_metrics_column(NULL, 0, &col) == HEED_ERR_ARG && heed_metrics_rows(NULL) == 0, "NULL");
    m = heed_metrics_new(ctx, NULL, 2, names);
    CHECK(heed_metrics_column(m, 1, &col) == HEED_OK && col == NULL, "no rows yet: NULL");
    heed_metrics_free(m);
}

/* ---------------------------------------------------------------- SVG */

/* A small XML well-formedness check: balanced, properly nested tags; quoted attributes;
 * no raw '<' or stray '&' in text or attribute values; one root element named root. */
static bool entity_ok(const char *s) {
    static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (int i = 0; i < 5; i++)
        if (!strncmp(s, ents[i], strlen(ents[i]))) return true;
    return false;
}

static bool xml_well_formed(const char *s, const char *root, char *why, size_t wn) {
    char stack[32][32];
    int depth = 0, roots = 0;
    if (!strncmp(s, "<?xml", 5)) {
        s = strstr(s, "?>");
        if (!s) return snprintf(why, wn, "unterminated declaration"), false;
        s += 2;
    }
    while (*s) {
        if (*s != '<') {
            if (*s == '&' && !entity_ok(s)) return snprintf(why, wn, "stray & in text: %.20s", s), false;
            if (depth == 0 && !isspace((unsigned char)*s)) return snprintf(why, wn, "text outside the root"), false;
            s++;
            continue;
        }
        s++;
        bool closing = *s == '/';
        if (closing) s++;
        char name[32];
        int k = 0;
        if (!isalpha((unsigned char)*s)) return snprintf(why, wn, "bad tag start: %.20s", s), false;
        while (isalnum((unsigned char)*s) || *s == '-' || *s == ':' || *s == '_') {
            if (k < 31) name[k++] = *s;
            s++;
        }
        name[k] = 0;
        if (closing) {
            if (depth == 0 || strcmp(stack[depth - 1], name))
                return snprintf(why, wn, "</%s> does not close", name), false;
            depth--;
            while (isspace((unsigned char)*s)) s++;
            if (*s++ != '>') return snprintf(why, wn, "</%s not closed", name), false;
            continue;
        }
        if (depth == 0 && (roots++ || strcmp(name, root))) return snprintf(why, wn, "root is <%s>", name), false;
        for (;;) {
            while (isspace((unsigned char)*s)) s++;
            if (*s == '/' && s[1] == '>') {
                s += 2;
                break;
            }
            if (*s == '>') {
                s++;
                if (depth == 32) return snprintf(why, wn, "too deep"), false;
                snprintf(stack[depth++], 32, "%s", name);
                break;
            }
            if (!isalpha((unsigned char)*s)) return snprintf(why, wn, "bad attribute in <%s>: %.20s", name, s), false;
            while (isalnum((unsigned char)*s) || *s == '-' || *s == ':' || *s == '_') s++;
            if (*s++ != '=' || *s++ != '"') return snprintf(why, wn, "unquoted attribute in <%s>", name), false;
            for (; *s != '"'; s++) {
                if (!*s || *s == '<') return snprintf(why, wn, "bad attribute value in <%s>", name), false;
                if (*s == '&' && !entity_ok(s)) return snprintf(why, wn, "stray & in attribute"), false;
            }
            s++;
        }
    }
    if (depth) return snprintf(why, wn, "<%s> never closed", stack[depth - 1]), false;
    return roots == 1 || (snprintf(why, wn, "no root"), false);
}

#define CHECK_XML(s)                                                                                                   \
    do {                                                                                                               \
        char why_[128] = "";                                                                                           \
        CHECK((s) && xml_well_formed((s), "svg", why_, sizeof why_), "SVG not well-formed: %s", why_);                 \
    } while (0)

static int leftover_temp_files(const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && strlen(e->d_name) > strlen(prefix)) n++;
    if (d) closedir(d);
    return n;
}

/* The smallest y coordinate (highest point on screen) in the first <path d="...">. */
static double path_min_y(const char *svg, int *points) {
    const char *d = strstr(svg, "<path");
    d = d ? strstr(d, " d=\"") : NULL;
    double ymin = INFINITY;
    *points = 0;
    if (!d) return ymin;
    for (d += 4; *d && *d != '"';) {
        if (*d == 'M' || *d == 'L') {
            char *end;
            strtod(d + 1, &end);
            double y = strtod(end, &end);
            ymin = isnan(y) || isnan(ymin) ? NAN : fmin(ymin, y); /* a NaN coordinate must fail the check */
            (*points)++;
            d = end;
        } else {
            d++;
        }
    }
    return ymin;
}

static void svg_curves(void) {
    /* from a metrics log, names with XML specials escaped */
    const char *names[] = {"step", "train <loss> & more", "val"};
    heed_metrics *m = heed_metrics_new(ctx, path_in("log.csv"), 3, names);
    for (int i = 1; i <= 50; i++) heed_metrics_add(m, (double[]){i * 10, 3.0 / i, i % 10 ? NAN : 2.0 / i});
    const char *svg_path = path_in("curve.svg");
    heed_plot_opts po = {.title = "loss \"curve\"", .xlabel = "step", .ylabel = "loss"};
    CHECK(heed_metrics_plot_svg(m, svg_path, 0, (int[]){1, 2}, 2, &po) == HEED_OK, "%s", heed_ctx_error(ctx));
    char *s = slurp(svg_path);
    CHECK_XML(s);
    CHECK(s && strstr(s, "train &lt;loss&gt; &amp; more") && strstr(s, "loss &quot;curve&quot;"), "escaped names");
    CHECK(s && count_char(s, 'M') >= 2, "two paths");
    struct stat st;
    CHECK(stat(svg_path, &st) == 0 && (st.st_mode & 0777) == 0644, "mode %o", st.st_mode & 0777);
    free(s);
    /* replacing it leaves the new plot and no temporary files */
    CHECK(heed_metrics_plot_svg(m, svg_path, -1, (int[]){2}, 1, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    s = slurp(svg_path);
    CHECK_XML(s);
    CHECK(s && !strstr(s, "train &lt;loss"), "the old plot was replaced");
    CHECK(leftover_temp_files("curve.svg") == 0, "temporary files left behind");
    free(s);
    CHECK_CTX_FAIL(ctx, heed_metrics_plot_svg(m, svg_path, 3, (int[]){1}, 1, NULL), HEED_ERR_ARG,
                   "heed_metrics_plot_svg: x column 3, 1 y columns (log has 3 columns; 1..64 series)");
    CHECK_CTX_FAIL(ctx, heed_metrics_plot_svg(m, svg_path, 0, (int[]){7}, 1, NULL), HEED_ERR_ARG,
                   "heed_metrics_plot_svg: y column 7 out of range (log has 3 columns)");
    CHECK(heed_metrics_plot_svg(NULL, svg_path, 0, (int[]){1}, 1, NULL) == HEED_ERR_ARG, "NULL log: the code only");
    heed_metrics_free(m);

    /* a long series keeps its single spike; the file stays small */
    int64_t n = 100000;
    double *y = calloc((size_t)n, sizeof *y);
    y[54321] = 1;
    heed_series ser = {.name = "spiky", .y = y, .n = n};
    const char *big = path_in("big.svg");
    CHECK(heed_plot_svg(ctx, big, &ser, 1, NULL) == HEED_OK, "%s", heed_ctx_error(ctx));
    s = slurp(big);
    CHECK_XML(s);
    int points = 0;
    double top = s ? path_min_y(s, &points) : 0;
    /* y range 0..1 fills the plot area, whose top edge is at 16 px without a title */
    CHECK(fabs(top - 16) < 0.01, "the spike's top is at y = %.2f, want 16", top);
    CHECK(points < 4 * 720 && points > 600, "%d points written for %lld", points, (long long)n);
    CHECK(s && strlen(s) < 200000, "file size %zu", s ? strlen(s) : 0);
    free(s);
    free(y);

    /* log axis: ticks at powers of ten, non-positive values skipped */
    double ly[6] = {1e-3, 1e-2, 0, 1e-1, -5, 1e2};
    double lx[6] = {0, 1, 2, 3, 4, 5};
    heed_series ls = {.name = NULL, .x = lx, .y = ly, .n = 6};
    CHECK(heed_plot_svg(ctx, path_in("log.svg"), &ls, 1,
                        &(heed_plot_opts){.log_y = true, .width = 400, .height = 300}) == HEED_OK,
          "%s", heed_ctx_error(ctx));
    s = slurp(path_in("log.svg"));
    CHECK_XML(s);
    CHECK(s && strstr(s, ">0.001</text>") && strstr(s, ">100</text>") && strstr(s, "width=\"400\""), "log ticks");
    CHECK(s && !strstr(s, "nan") && !strstr(s, "inf"), "no non-finite coordinates");
    free(s);

    /* a series with no finite point still makes a valid empty plot */
    double nan1[2] = {NAN, INFINITY};
    CHECK(heed_plot_svg(ctx, path_in("empty.svg"), &(heed_series){.y = nan1, .n = 2}, 1, NULL) == HEED_OK, "empty");
    s = slurp(path_in("empty.svg"));
    CHECK_XML(s);
    free(s);
}

static void svg_bad_input(void) {
    double y[2] = {1, 2};
    heed_series s = {.y = y, .n = 2};
    CHECK(heed_plot_svg(NULL, path_in("x.svg"), &s, 1, NULL) == HEED_ERR_ARG, "NULL ctx");
    CHECK(heed_plot_svg(ctx, NULL, &s, 1, NULL) == HEED_ERR_ARG && strstr(heed_ctx_error(ctx), "path"), "NULL path");
    CHECK(heed_plot_svg(ctx, path_in("x.svg"), NULL, 1, NULL) == HEED_ERR_ARG, "NULL series");
    CHECK(heed_plot_svg(ctx, path_in("x.svg"), &s, 0, NULL) == HEED_ERR_ARG, "no series");
    CHECK(heed_plot_svg(ctx, path_in("x.svg"), &(heed_series){.y = NULL, .n = 3}, 1, NULL) == HEED_ERR_ARG &&
              strstr(heed_ctx_error(ctx), "series 0"),
          "%s", heed_ctx_error(ctx));
    CHECK(heed_plot_svg(ctx, path_in("x.svg"), &(heed_series){.y = y, .n = -1}, 1, NULL) == HEED_ERR_ARG, "negative n");
    CHECK(heed_plot_svg(ctx, path_in("x.svg"), &s, 1, &(heed_plot_opts){.width = 50}) == HEED_ERR_ARG, "tiny width");
    CHECK(heed_plot_svg(ctx, path_in("none/x.svg"), &s, 1, NULL) == HEED_ERR_IO &&
              strstr(heed_ctx_error(ctx), "none/x.svg"),
          "%s", heed_ctx_error(ctx));
    CHECK(access(path_in("x.svg"), F_OK) != 0, "nothing written on bad input");
}

static void cleanup(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') unlink(path_in(e->d_name));
    if (d) closedir(d);
    rmdir(dir);
}

int main(void) {
    ctx = heed_ctx_new(NULL);
    snprintf(dir, sizeof dir, "/tmp/heed_progress_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(progress_plain_lines);
    RUN(progress_pipe);
    RUN(progress_terminal);
    RUN(progress_bad_options);
    RUN(metrics_csv);
    RUN(svg_curves);
    RUN(svg_bad_input);
    cleanup();
    heed_ctx_free(ctx);
    return check_summary();
}
