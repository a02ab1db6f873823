/* Seeing training: a progress bar (one redrawn line on a terminal, plain lines
 * elsewhere). The metrics log it pairs with is io/metrics.c. */
#include "viz_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- progress */

#define EMA_DECAY 0.9
#define BAR_WIDTH 24

struct heed_progress {
    FILE *out;
    int64_t total, every;
    char label[64];
    double interval;
    bool tty;
    double start, last_draw;
    int64_t first_step, step; /* first_step: the step count before the first update */
    bool started, drawn;      /* drawn: a tty line is on screen (needs clearing) */
    double ema;               /* sum of decay-weighted losses */
    int64_t n_loss;           /* finite losses seen */
    double last_loss;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

heed_progress *heed_progress_new(heed_ctx *ctx, const heed_progress_opts *opts) {
    static const char *fn = "heed_progress_new";
    heed_progress_opts o = opts ? *opts : (heed_progress_opts){0};
    if (o.total < 0 || o.every < 0)
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             "%s: total = %lld, every = %lld (must be >= 0; 0 = unknown, by interval)", fn,
                             (long long)o.total, (long long)o.every),
               NULL;
    if (!(o.interval >= 0) || isinf(o.interval))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: interval = %g s (must be finite and >= 0; 0 = the default)", fn,
                             o.interval),
               NULL;
    if (o.mode != HEED_PROGRESS_AUTO && o.mode != HEED_PROGRESS_TERMINAL && o.mode != HEED_PROGRESS_LINES)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: mode = %d (must be AUTO, TERMINAL or LINES)", fn, (int)o.mode),
               NULL;
    heed_progress *p = calloc(1, sizeof *p);
    if (!p) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn), NULL;
    p->out = o.out ? o.out : stderr;
    p->total = o.total;
    p->every = o.every;
    snprintf(p->label, sizeof p->label, "%s", o.label ? o.label : "");
    p->tty = o.mode == HEED_PROGRESS_TERMINAL || (o.mode == HEED_PROGRESS_AUTO && isatty(fileno(p->out)));
    p->interval = o.interval > 0 ? o.interval : p->tty ? 0.1 : 10;
    p->start = p->last_draw = now();
    p->last_loss = NAN;
    return p;
}

double heed_progress_running_loss(const heed_progress *p) {
    if (!p || p->n_loss == 0) return NAN;
    /* debiased EMA: ema / (1 - decay^n), as Adam corrects its moments */
    return p->ema / (1 - pow(EMA_DECAY, (double)p->n_loss));
}

/* h:mm:ss or m:ss */
static char *fmt_time(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "?");
        return buf;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

static void draw(heed_progress *p, bool final) {
    double elapsed = now() - p->start;
    int64_t done = p->step - p->first_step;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double loss = heed_progress_running_loss(p);
    char line[256], eta[32], el[32];
    int k = 0;
    const char *sep = p->label[0] ? " " : "";
    if (p->tty) {
        k += snprintf(line + k, sizeof line - k, "\r%s%s", p->label, sep);
        if (p->total) {
            int fill = (int)((double)BAR_WIDTH * (double)(p->step < p->total ? p->step : p->total) / (double)p->total);
            char bar[BAR_WIDTH + 3];
            bar[0] = '[';
            for (int i = 0; i < BAR_WIDTH; i++) bar[i + 1] = i < fill ? '=' : i == fill ? '>' : ' ';
            bar[BAR_WIDTH + 1] = ']';
            bar[BAR_WIDTH + 2] = 0;
            k += snprintf(line + k, sizeof line - k, "%s %lld/%lld", bar, (long long)p->step, (long long)p->total);
        } else {
            k += snprintf(line + k, sizeof line - k, "%lld", (long long)p->step);
        }
        k += snprintf(line + k, sizeof line - k, "  %.1f it/s", rate);
        if (final) k += snprintf(line + k, sizeof line - k, "  in %s", fmt_time(elapsed, el, sizeof el));
        else if (p->total && rate > 0)
            k += snprintf(line + k, sizeof line - k, "  ETA %s",
                          fmt_time((double)(p->total - p->step) / rate, eta, sizeof eta));
        if (isfinite(loss)) k += snprintf(line + k, sizeof line - k, "  loss %.4f", loss);
        fprintf(p->out, "%s\033[K%s", line, final ? "\n" : "");
        p->drawn = !final;
    } else {
        k += snprintf(line + k, sizeof line - k, "%s%s%s %lld", p->label, sep, final ? "done" : "step",
                      (long long)p->step);
        if (p->total) k += snprintf(line + k, sizeof line - k, "/%lld", (long long)p->total);
        k += snprintf(line + k, sizeof line - k, " rate %.1f it/s", rate);
        if (final) k += snprintf(line + k, sizeof line - k, " elapsed %s", fmt_time(elapsed, el, sizeof el));
        else if (p->total && rate > 0)
            k += snprintf(line + k, sizeof line - k, " eta %s",
                          fmt_time((double)(p->total - p->step) / rate, eta, sizeof eta));
        if (isfinite(loss)) k += snprintf(line + k, sizeof line - k, " loss %.4f", loss);
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->last_draw = now();
}

void heed_progress_update(heed_progress *p, int64_t step, double loss) {
    if (!p) return;
    if (!p->started) {
        p->started = true;
        p->first_step = step - 1; /* one step has run since the bar was made */
    }
    p->step = step;
    p->last_loss = loss;
    if (isfinite(loss)) {
        p->ema = EMA_DECAY * p->ema + (1 - EMA_DECAY) * loss;
        p->n_loss++;
    }
    bool due;
    if (!p->tty && p->every) due = step % p->every == 0;
    else due = now() - p->last_draw >= p->interval || (p->tty && p->total && step == p->total);
    if (due) draw(p, false);
}

void heed_progress_note(heed_progress *p, const char *fmt, ...) {
    if (!p || !fmt) return;
    if (p->tty && p->drawn) fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    if (p->tty && p->drawn) draw(p, false);
    fflush(p->out);
}

void heed_progress_free(heed_progress *p) {
    if (!p) return;
    draw(p, true);
    free(p);
}

/* ---------------------------------------------------------------- metrics log */
