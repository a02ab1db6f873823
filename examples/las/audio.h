/* LAS example: audio in and features out. WAV files through libsndfile (mono, or stereo
 * mixed down), resampled through libsamplerate to one internal rate of 8 kHz, and log-mel
 * filterbanks through FFTW3 band-limited below 4 kHz, so 8 kHz recordings and 22 kHz
 * synthesis look alike. Per-utterance mean/variance normalisation, frame stacking and
 * SpecAugment masks work on the [frames, bands] arrays. */
#ifndef LAS_AUDIO_H
#define LAS_AUDIO_H

#include <heed/core.h>

#include <stddef.h>
#include <stdint.h>

#define LAS_RATE 8000     /* every signal is resampled to this rate */
#define LAS_MIN_RATE 4000 /* sample rates accepted from files */
#define LAS_MAX_RATE 192000
#define LAS_MAX_SECONDS 60             /* longer files are refused (before reading them) */
#define LAS_MAX_FILE_BYTES (128 << 20) /* larger files are refused before reading */
#define LAS_MAX_SAMPLE 1e6             /* a sample beyond +-this is refused (it would overflow features) */
#define LAS_WIN 200                    /* 25 ms window at LAS_RATE */
#define LAS_HOP 80                     /* 10 ms hop */
#define LAS_NFFT 512                   /* zero-padded FFT: 15.6 Hz bins */
#define LAS_FMIN 60.0                  /* the filterbank's band, Hz */
#define LAS_FMAX 3800.0

/* Reads a WAV file (PCM, float, A-law or mu-law, plain or extensible; 1 or 2 channels, rate in
 * [LAS_MIN_RATE, LAS_MAX_RATE], 1 sample to LAS_MAX_SECONDS, at most LAS_MAX_FILE_BYTES, every
 * RIFF chunk within the file, every sample within +-LAS_MAX_SAMPLE) as mono floats at LAS_RATE.
 * 0, or -1 with "<path>: <what is wrong and the rule>" in err; *out is malloc'd. */
int las_wav_read(const char *path, float **out, int64_t *n, char *err, size_t errlen);
/* The same from the bytes of a file in memory (name is used in messages). */
int las_wav_read_memory(const void *data, size_t size, const char *name, float **out, int64_t *n, char *err,
                        size_t errlen);
/* Resamples x[n] from rate_in to rate_out (libsamplerate, sinc medium quality). */
int las_resample(const float *x, int64_t n, int rate_in, int rate_out, float **out, int64_t *n_out, char *err,
                 size_t errlen);

/* Log-mel filterbank: pre-emphasis 0.97, Hamming window of LAS_WIN samples every LAS_HOP,
 * |FFT|^2 over LAS_NFFT points, n_mels triangular filters evenly spaced on the HTK mel
 * scale between LAS_FMIN and LAS_FMAX, log(max(energy, 1e-10)). */
typedef struct las_fbank las_fbank;
las_fbank *las_fbank_new(int n_mels); /* 40 or 80; NULL on a bad count or no memory */
void las_fbank_free(las_fbank *fb);
int las_fbank_bands(const las_fbank *fb);
/* Frames for n samples: 1 + (n - LAS_WIN) / LAS_HOP (a short signal is zero-padded to 1). */
int64_t las_fbank_frames(int64_t n);
/* out[las_fbank_frames(n) * bands]. */
void las_fbank_compute(las_fbank *fb, const float *x, int64_t n, float *out);

/* Each band to mean 0, variance 1 over the utterance's T frames (a constant band -> 0). */
void las_cmvn(float *f, int64_t T, int F);
/* Stacks k consecutive frames into one: out[ceil(T/k), k*F]; past the end: zeros. */
int64_t las_stacked_frames(int64_t T, int k);
void las_stack(const float *f, int64_t T, int F, int k, float *out);

/* SpecAugment (Park et al. 2019) without time warping: time_masks masks of width up to
 * max_time frames (at most time_fraction of T) and freq_masks masks of up to max_freq
 * bands, set to 0 (the mean after las_cmvn). */
typedef struct {
    int time_masks, max_time, freq_masks, max_freq;
    double time_fraction; /* 0 = 0.2 */
} las_specaug;
void las_specaugment(float *f, int64_t T, int F, heed_rng *r, const las_specaug *s);

/* Vocal-tract-length and tempo perturbation of log-mel features (training only):
 *   out[t, k] = f(t * tempo, position of the frequency c_k / alpha among the band centres),
 * bilinear, clamped at the edges; c_k is band k's centre. alpha > 1 moves the formants up
 * (a shorter vocal tract), tempo > 1 speaks faster: out has las_warp_frames(T, tempo)
 * frames. F is the band count (40 or 80, the filterbank's spacing). */
int64_t las_warp_frames(int64_t T, double tempo);
void las_warp(const float *f, int64_t T, int F, double alpha, double tempo, float *out);

/* Adds white noise at snr_db dB below the signal's mean power. */
void las_add_noise(float *x, int64_t n, double snr_db, heed_rng *r);

#endif
