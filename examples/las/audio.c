/* WAV in (libsndfile), resampling (libsamplerate), log-mel features (FFTW3), CMVN,
 * stacking, SpecAugment, noise. */
#include "audio.h"

#include <errno.h>
#include <fftw3.h>
#include <math.h>
#include <samplerate.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LAS_MAX_WAV_BYTES (256L << 20)

/* ---------------------------------------------------------------- WAV in */

/* Reads an opened file: the checks (WAV, channels, rate, length), mixdown, resampling. */
static int read_opened(SNDFILE *sf, const SF_INFO *info, const char *name, float **out, int64_t *n, char *err,
                       size_t errlen) {
    *out = NULL, *n = 0;
    int major = info->format & SF_FORMAT_TYPEMASK;
    if (major != SF_FORMAT_WAV && major != SF_FORMAT_WAVEX)
        return snprintf(err, errlen, "%s: not a WAV file (a RIFF/WAVE file is needed)", name), -1;
    if (info->channels < 1 || info->channels > 2)
        return snprintf(err, errlen, "%s: %d channels (1 or 2 are read; stereo is mixed down)", name, info->channels), -1;
    if (info->samplerate < LAS_MIN_RATE || info->samplerate > LAS_MAX_RATE)
        return snprintf(err, errlen, "%s: sample rate %d Hz (must be in %d..%d Hz)", name, info->samplerate, LAS_MIN_RATE,
                        LAS_MAX_RATE),
               -1;
    if (info->frames < 1) return snprintf(err, errlen, "%s: no samples (an empty recording)", name), -1;
    if (info->frames > (sf_count_t)LAS_MAX_SECONDS * info->samplerate)
        return snprintf(err, errlen, "%s: %lld samples at %d Hz is longer than %d s", name, (long long)info->frames,
                        info->samplerate, LAS_MAX_SECONDS),
               -1;
    int64_t frames = info->frames, ch = info->channels;
    float *buf = malloc((size_t)(frames * ch) * sizeof *buf);
    if (!buf) return snprintf(err, errlen, "%s: out of memory for %lld samples", name, (long long)frames), -1;
    sf_count_t got = sf_readf_float(sf, buf, frames);
    if (got < 1) {
        free(buf);
        return snprintf(err, errlen, "%s: no samples could be read (%s)", name, sf_strerror(sf)), -1;
    }
    /* A truncated data chunk gives fewer frames than the header says: keep what is there. */
    frames = got;
    if (ch == 2)
        for (int64_t i = 0; i < frames; i++) buf[i] = 0.5f * (buf[2 * i] + buf[2 * i + 1]);
    for (int64_t i = 0; i < frames; i++)
        if (!isfinite(buf[i])) {
            free(buf);
            return snprintf(err, errlen, "%s: sample %lld is not a finite number", name, (long long)i), -1;
        }
    if (info->samplerate == LAS_RATE) {
        *out = buf, *n = frames;
        return 0;
    }
    int rc = las_resample(buf, frames, info->samplerate, LAS_RATE, out, n, err, errlen);
    free(buf);
    return rc;
}

typedef struct {
    const unsigned char *data;
    sf_count_t size, pos;
} memfile;

static sf_count_t mem_len(void *u) { return ((memfile *)u)->size; }
static sf_count_t mem_tell(void *u) { return ((memfile *)u)->pos; }
static sf_count_t mem_seek(sf_count_t off, int whence, void *u) {
    memfile *m = u;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
    sf_count_t p = base + off;
    if (p < 0 || p > m->size) return -1;
    return m->pos = p;
}
static sf_count_t mem_read(void *dst, sf_count_t count, void *u) {
    memfile *m = u;
    sf_count_t k = count < m->size - m->pos ? count : m->size - m->pos;
    if (k <= 0) return 0;
    memcpy(dst, m->data + m->pos, (size_t)k);
    m->pos += k;
    return k;
}
static sf_count_t mem_write(const void *src, sf_count_t count, void *u) { return 0; }

/* libsndfile walks every chunk a RIFF header names, and one that claims more bytes than the
 * file holds (a 1.4 GB LIST chunk in a 2 KB file, found by the fuzzer) keeps it busy for
 * many seconds. Such a chunk before the data chunk is refused here; the data chunk itself
 * may run short (libsndfile reads what is there). Not RIFF/WAVE: libsndfile decides. */
static bool riff_chunks_fit(const unsigned char *p, size_t n, char *why, size_t len) {
    if (n < 12 || memcmp(p, "RIFF", 4) || memcmp(p + 8, "WAVE", 4)) return true;
    for (size_t off = 12; off + 8 <= n;) {
        uint32_t sz = p[off + 4] | (uint32_t)p[off + 5] << 8 | (uint32_t)p[off + 6] << 16 | (uint32_t)p[off + 7] << 24;
        if (!memcmp(p + off, "data", 4)) return true;
        if (sz > n - off - 8)
            return snprintf(why, len, "chunk '%.4s' at byte %zu claims %u bytes, the file has %zu after it", (const char *)p + off,
                            off, sz, n - off - 8),
                   false;
        off += 8 + (size_t)sz + (sz & 1);
    }
    return true;
}

int las_wav_read_memory(const void *data, size_t size, const char *name, float **out, int64_t *n, char *err,
                        size_t errlen) {
    *out = NULL, *n = 0;
    char why[160];
    if (!riff_chunks_fit(data, size, why, sizeof why))
        return snprintf(err, errlen, "%s: not a readable WAV file: %s", name, why), -1;
    memfile m = {data, (sf_count_t)size, 0};
    SF_VIRTUAL_IO io = {mem_len, mem_seek, mem_read, mem_write, mem_tell};
    SF_INFO info = {0};
    SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &m);
    if (!sf) return snprintf(err, errlen, "%s: not a readable WAV file: %s", name, sf_strerror(NULL)), -1;
    int rc = read_opened(sf, &info, name, out, n, err, errlen);
    sf_close(sf);
    return rc;
}

/* The whole file through las_wav_read_memory (recordings are small), so a file and a buffer
 * get the same checks. */
int las_wav_read(const char *path, float **out, int64_t *n, char *err, size_t errlen) {
    *out = NULL, *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || size > LAS_MAX_WAV_BYTES || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return snprintf(err, errlen, "%s: not a readable WAV file: %s", path,
                        size < 0 ? "not a regular file" : "larger than the 256 MiB a recording may have"),
               -1;
    }
    unsigned char *buf = malloc(size ? (size_t)size : 1);
    bool ok = buf && fread(buf, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    int rc = ok ? las_wav_read_memory(buf, (size_t)size, path, out, n, err, errlen)
                : (snprintf(err, errlen, "%s: %s", path, buf ? "read error" : "out of memory"), -1);
    free(buf);
    return rc;
}

int las_wav_write(const char *path, const float *x, int64_t n, int rate, char *err, size_t errlen) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open(tmp, SFM_WRITE, &info);
    if (!sf) return snprintf(err, errlen, "%s: cannot write: %s", tmp, sf_strerror(NULL)), -1;
    sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
    sf_count_t put = sf_writef_float(sf, x, n);
    int closed = sf_close(sf);
    if (put != n || closed != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: writing failed: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int las_resample(const float *x, int64_t n, int rate_in, int rate_out, float **out, int64_t *n_out, char *err,
                 size_t errlen) {
    double ratio = (double)rate_out / rate_in;
    int64_t cap = (int64_t)ceil((double)n * ratio) + 16;
    float *y = malloc((size_t)cap * sizeof *y);
    if (!y) return snprintf(err, errlen, "out of memory resampling %lld samples", (long long)n), -1;
    SRC_DATA d = {.data_in = x, .data_out = y, .input_frames = n, .output_frames = cap, .src_ratio = ratio};
    int rc = src_simple(&d, SRC_SINC_MEDIUM_QUALITY, 1);
    if (rc != 0) {
        free(y);
        return snprintf(err, errlen, "resampling %d -> %d Hz: %s", rate_in, rate_out, src_strerror(rc)), -1;
    }
    if (d.output_frames_gen < 1) y[0] = 0, d.output_frames_gen = 1;
    *out = y, *n_out = d.output_frames_gen;
    return 0;
}

/* ---------------------------------------------------------------- log-mel */

struct las_fbank {
    int bands, bins;
    float *window;       /* [LAS_WIN] Hamming */
    float *filters;      /* [bands, bins] triangular weights */
    float *frame;        /* [LAS_NFFT] FFT input */
    fftwf_complex *spec; /* [bins] */
    fftwf_plan plan;
};

static double hz_to_mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mel_to_hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

las_fbank *las_fbank_new(int n_mels) {
    if (n_mels != 40 && n_mels != 80) return NULL;
    las_fbank *fb = calloc(1, sizeof *fb);
    if (!fb) return NULL;
    fb->bands = n_mels, fb->bins = LAS_NFFT / 2 + 1;
    fb->window = malloc(LAS_WIN * sizeof *fb->window);
    fb->filters = calloc((size_t)(n_mels * fb->bins), sizeof *fb->filters);
    fb->frame = fftwf_malloc(LAS_NFFT * sizeof *fb->frame);
    fb->spec = fftwf_malloc((size_t)fb->bins * sizeof *fb->spec);
    if (!fb->window || !fb->filters || !fb->frame || !fb->spec) {
        las_fbank_free(fb);
        return NULL;
    }
    /* FFTW_ESTIMATE: no timing runs, so the plan (and the features) never depend on load. */
    fb->plan = fftwf_plan_dft_r2c_1d(LAS_NFFT, fb->frame, fb->spec, FFTW_ESTIMATE);
    if (!fb->plan) {
        las_fbank_free(fb);
        return NULL;
    }
    for (int i = 0; i < LAS_WIN; i++) fb->window[i] = (float)(0.54 - 0.46 * cos(2 * M_PI * i / (LAS_WIN - 1)));
    /* Filter m rises from edge m to edge m+1 and falls to edge m+2 (edges evenly spaced in
     * mel), evaluated at each bin's frequency k * rate / nfft. */
    double lo = hz_to_mel(LAS_FMIN), hi = hz_to_mel(LAS_FMAX);
    for (int m = 0; m < n_mels; m++) {
        double f0 = mel_to_hz(lo + (hi - lo) * m / (n_mels + 1)), f1 = mel_to_hz(lo + (hi - lo) * (m + 1) / (n_mels + 1)),
               f2 = mel_to_hz(lo + (hi - lo) * (m + 2) / (n_mels + 1));
        for (int k = 0; k < fb->bins; k++) {
            double f = (double)k * LAS_RATE / LAS_NFFT, w = 0;
            if (f > f0 && f <= f1) w = (f - f0) / (f1 - f0);
            else if (f > f1 && f < f2) w = (f2 - f) / (f2 - f1);
            fb->filters[m * fb->bins + k] = (float)w;
        }
    }
    return fb;
}

void las_fbank_free(las_fbank *fb) {
    if (!fb) return;
    if (fb->plan) fftwf_destroy_plan(fb->plan);
    free(fb->window);
    free(fb->filters);
    fftwf_free(fb->frame);
    fftwf_free(fb->spec);
    free(fb);
}

int las_fbank_bands(const las_fbank *fb) { return fb->bands; }

int64_t las_fbank_frames(int64_t n) { return n < LAS_WIN ? 1 : 1 + (n - LAS_WIN) / LAS_HOP; }

void las_fbank_compute(las_fbank *fb, const float *x, int64_t n, float *out) {
    int64_t T = las_fbank_frames(n);
    float power[LAS_NFFT / 2 + 1];
    for (int64_t t = 0; t < T; t++) {
        int64_t s = t * LAS_HOP;
        for (int i = 0; i < LAS_NFFT; i++) fb->frame[i] = 0;
        for (int i = 0; i < LAS_WIN && s + i < n; i++) {
            float prev = s + i > 0 ? x[s + i - 1] : 0; /* pre-emphasis y[i] = x[i] - 0.97 x[i-1] */
            fb->frame[i] = (x[s + i] - 0.97f * prev) * fb->window[i];
        }
        fftwf_execute(fb->plan);
        for (int k = 0; k < fb->bins; k++) power[k] = fb->spec[k][0] * fb->spec[k][0] + fb->spec[k][1] * fb->spec[k][1];
        for (int m = 0; m < fb->bands; m++) {
            const float *w = fb->filters + m * fb->bins;
            double e = 0;
            for (int k = 0; k < fb->bins; k++) e += (double)w[k] * power[k];
            out[t * fb->bands + m] = (float)log(e > 1e-10 ? e : 1e-10);
        }
    }
}

/* ---------------------------------------------------------------- normalisation, stacking, masks */

void las_cmvn(float *f, int64_t T, int F) {
    for (int j = 0; j < F; j++) {
        double s = 0, ss = 0;
        for (int64_t t = 0; t < T; t++) s += f[t * F + j];
        double mean = s / (double)T;
        for (int64_t t = 0; t < T; t++) ss += (f[t * F + j] - mean) * (f[t * F + j] - mean);
        double sd = sqrt(ss / (double)T);
        for (int64_t t = 0; t < T; t++) f[t * F + j] = sd > 1e-5 ? (float)((f[t * F + j] - mean) / sd) : 0.0f;
    }
}

int64_t las_stacked_frames(int64_t T, int k) { return (T + k - 1) / k; }

void las_stack(const float *f, int64_t T, int F, int k, float *out) {
    int64_t S = las_stacked_frames(T, k);
    for (int64_t s = 0; s < S; s++)
        for (int i = 0; i < k; i++) {
            int64_t t = s * k + i;
            float *dst = out + (s * k + i) * F;
            if (t < T) memcpy(dst, f + t * F, (size_t)F * sizeof *f);
            else memset(dst, 0, (size_t)F * sizeof *f);
        }
}

void las_specaugment(float *f, int64_t T, int F, heed_rng *r, const las_specaug *s) {
    double frac = s->time_fraction > 0 ? s->time_fraction : 0.2;
    for (int m = 0; m < s->freq_masks && s->max_freq > 0; m++) {
        int w = (int)heed_rng_below(r, (uint64_t)s->max_freq + 1);
        if (w > F) w = F;
        int f0 = (int)heed_rng_below(r, (uint64_t)(F - w) + 1);
        for (int64_t t = 0; t < T; t++)
            for (int j = f0; j < f0 + w; j++) f[t * F + j] = 0;
    }
    int64_t cap = (int64_t)(frac * (double)T);
    if (cap > s->max_time) cap = s->max_time;
    for (int m = 0; m < s->time_masks && cap > 0; m++) {
        int64_t w = (int64_t)heed_rng_below(r, (uint64_t)cap + 1);
        int64_t t0 = (int64_t)heed_rng_below(r, (uint64_t)(T - w) + 1);
        memset(f + t0 * F, 0, (size_t)(w * F) * sizeof *f);
    }
}

void las_add_noise(float *x, int64_t n, double snr_db, heed_rng *r) {
    double p = 0;
    for (int64_t i = 0; i < n; i++) p += (double)x[i] * x[i];
    p /= (double)(n > 0 ? n : 1);
    double sd = sqrt(p / pow(10.0, snr_db / 10.0));
    for (int64_t i = 0; i < n; i++) x[i] += (float)(sd * heed_rng_normal(r));
}
