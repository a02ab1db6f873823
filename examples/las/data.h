/* LAS example: the alphabet, manifests, corpora of feature arrays, their on-disk cache,
 * and the six data sets of the connected-digit task (docs/las.md):
 *   train        espeak-ng speech (training voice variants) + FSDD jackson, nicolas, theo
 *                takes 5-49, joined into connected digits
 *   a-espeak     espeak-ng voice variants never used in training
 *   b-flite      flite, a synthesiser never used in training
 *   c-fsdd-test  FSDD takes 0-4 of the three training speakers
 *   d-yweweler   FSDD yweweler, a speaker never heard in training */
#ifndef LAS_DATA_H
#define LAS_DATA_H

#include "audio.h"

#include <stdbool.h>
#include <stdio.h>

/* Tokens: 0 <sos> (decoder input only), 1 <eos>, 2 space, 3 apostrophe, 4..29 a..z. */
#define LAS_SOS 0
#define LAS_EOS 1
#define LAS_VOCAB 30
#define LAS_MAX_TEXT 400  /* characters per transcript */
#define LAS_MAX_LINE 4096 /* bytes per manifest line */

/* The token of a transcript character, or -1 if it is outside the alphabet. */
int las_char_token(int c);
/* The character of a token (0 for <sos>/<eos>). */
int las_token_char(int64_t tok);
/* Checks a transcript: non-empty, at most LAS_MAX_TEXT, every byte in the alphabet
 * (a-z, space, apostrophe), no leading/trailing/double space. 0, or -1 with the rule. */
int las_check_text(const char *text, char *err, size_t errlen);

/* A manifest: lines "PATH<TAB>TRANSCRIPT" (paths relative to the manifest's directory);
 * blank lines and lines starting with '#' are skipped. */
typedef struct {
    char **path, **text;
    int64_t n;
} las_manifest;
/* Parses f (name in messages as "name:LINE: ..."); dir is prefixed to relative paths
 * (NULL: none). Every line is checked before returning; 0 or -1 (nothing kept). */
int las_manifest_read(FILE *f, const char *name, const char *dir, las_manifest *m, char *err, size_t errlen);
int las_manifest_load(const char *path, las_manifest *m, char *err, size_t errlen);
void las_manifest_free(las_manifest *m);

/* Utterances as normalised log-mel arrays. */
typedef struct {
    char *text;
    int64_t frames;
    float *feat; /* [frames, bands], per-utterance mean/variance normalised */
} las_utt;

typedef struct {
    las_utt *u;
    int64_t n, cap;
    int bands;
} las_corpus;

void las_corpus_free(las_corpus *c);
/* Appends an utterance from mono samples at LAS_RATE (features computed here). */
int las_corpus_add_audio(las_corpus *c, las_fbank *fb, const char *text, const float *x, int64_t n, char *err,
                         size_t errlen);
/* Appends the utterances of a manifest: each WAV read, resampled, featurised. */
int las_corpus_add_manifest(las_corpus *c, las_fbank *fb, const las_manifest *m, const char *name, char *err,
                            size_t errlen);
/* The cache: a corpus saved with a key string (the settings that made it), through heed's
 * atomic writer (whole or not at all); load returns 1
 * when the file is absent or its key differs (regenerate), 0 when loaded, -1 on error. */
int las_corpus_save(const las_corpus *c, const char *path, const char *key, char *err, size_t errlen);
int las_corpus_load(las_corpus *c, const char *path, const char *key, char *err, size_t errlen);

/* ---------------------------------------------------------------- the task's data sets */

typedef enum { LAS_SET_TRAIN = 0, LAS_SET_A, LAS_SET_B, LAS_SET_C, LAS_SET_D, LAS_N_SETS } las_set;
const char *las_set_name(las_set s);

typedef struct {
    const char *fsdd_dir;  /* FSDD recordings: {digit}_{speaker}_{index}.wav */
    const char *cache_dir; /* corpora cached here (made if missing) */
    int bands;             /* 40 or 80 */
    uint64_t seed;
    int64_t train_synth; /* espeak-ng training utterances */
    int64_t train_fsdd;  /* FSDD training utterances (connected digits) */
    int64_t test_size;   /* utterances per test set */
    bool quiet;
} las_data_config;

/* mkdir -p: every missing directory of path; 0, or -1 with errno. */
int las_mkdir_p(const char *path);

/* The set s, from the cache or generated (and cached). Progress notes go to stderr. */
int las_data_get(const las_data_config *cfg, las_set s, las_corpus *c, char *err, size_t errlen);

/* A random digit string of 1..7 words, e.g. "three seven zero nine". */
void las_random_digits(heed_rng *r, char *text, size_t len, int *digits, int *n_digits);

/* Synthesis (synth.c). espeak-ng in process: text with a voice ("en-us+m3"), words per
 * minute, pitch 0..100, word gap in 10 ms units; samples at LAS_RATE. */
int las_espeak(const char *voice, const char *text, int wpm, int pitch, int wordgap, float **out, int64_t *n, char *err,
               size_t errlen);
void las_espeak_close(void); /* once, at the end of the program: espeak-ng cannot start again */
/* The espeak-ng English accents and voice variants; held-out variants are every
 * LAS_HELDOUT_EVERY-th (offset 5) and are never used for training. */
#define LAS_HELDOUT_EVERY 10
int las_espeak_variants(char ***names, int *n, char *err, size_t errlen);
extern const char *const las_espeak_accents[];
extern const int las_n_espeak_accents;
/* flite through its command: a WAV written to tmp_path, read back at LAS_RATE. */
int las_flite(const char *voice, const char *text, double stretch, double f0, const char *tmp_path, float **out,
              int64_t *n, char *err, size_t errlen);
extern const char *const las_flite_voices[];
extern const int las_n_flite_voices;

#endif
