/* Speech synthesis for the training and test data: espeak-ng in process (libespeak-ng),
 * flite through its command (used only for test set b). */
#include "data.h"

#include <dirent.h>
#include <espeak-ng/speak_lib.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *const las_espeak_accents[] = {"en",     "en-us",     "en-gb-scotland", "en-gb-x-rp",
                                          "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"};
const int las_n_espeak_accents = (int)(sizeof las_espeak_accents / sizeof *las_espeak_accents);
const char *const las_flite_voices[] = {"kal", "kal16", "awb", "rms", "slt"};
const int las_n_flite_voices = (int)(sizeof las_flite_voices / sizeof *las_flite_voices);

/* ---------------------------------------------------------------- espeak-ng */

static int espeak_rate; /* the synthesiser's sample rate; 0 before initialisation */
static short *pcm;      /* the utterance being synthesised */
static int64_t pcm_n, pcm_cap;
static bool pcm_oom;

static int collect(short *wav, int n, espeak_EVENT *events) {
    if (!wav || n <= 0) return 0;
    if (pcm_n + n > pcm_cap) {
        int64_t cap = (pcm_n + n) * 2;
        short *p = realloc(pcm, (size_t)cap * sizeof *p);
        if (!p) return pcm_oom = true, 1;
        pcm = p, pcm_cap = cap;
    }
    memcpy(pcm + pcm_n, wav, (size_t)n * sizeof *wav);
    pcm_n += n;
    return 0;
}

int las_espeak(const char *voice, const char *text, int wpm, int pitch, int wordgap, float **out, int64_t *n, char *err,
               size_t errlen) {
    *out = NULL, *n = 0;
    if (!espeak_rate) {
        espeak_rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, espeakINITIALIZE_DONT_EXIT);
        if (espeak_rate <= 0) {
            espeak_rate = 0;
            return snprintf(err, errlen, "espeak-ng: cannot initialise (is espeak-ng-data installed?)"), -1;
        }
        espeak_SetSynthCallback(collect);
    }
    if (espeak_SetVoiceByName(voice) != EE_OK) return snprintf(err, errlen, "espeak-ng: no voice '%s'", voice), -1;
    espeak_SetParameter(espeakRATE, wpm, 0);
    espeak_SetParameter(espeakPITCH, pitch, 0);
    espeak_SetParameter(espeakWORDGAP, wordgap, 0);
    pcm_n = 0, pcm_oom = false;
    /* synchronous mode: the samples are all delivered when espeak_Synth returns (no
     * espeak_Synchronize, which waits forever after a terminate and a second initialise) */
    if (espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL) != EE_OK)
        return snprintf(err, errlen, "espeak-ng: synthesis of '%s' with %s failed", text, voice), -1;
    if (pcm_oom || pcm_n == 0)
        return snprintf(err, errlen, "espeak-ng: %s for '%s' (%s)", pcm_oom ? "out of memory" : "no audio", text,
                        voice),
               -1;
    float *x = malloc((size_t)pcm_n * sizeof *x);
    if (!x) return snprintf(err, errlen, "out of memory"), -1;
    for (int64_t i = 0; i < pcm_n; i++) x[i] = (float)pcm[i] / 32768.0f;
    int rc = las_resample(x, pcm_n, espeak_rate, LAS_RATE, out, n, err, errlen);
    free(x);
    return rc;
}

void las_espeak_close(void) {
    if (espeak_rate) espeak_Terminate();
    espeak_rate = 0;
    free(pcm);
    pcm = NULL, pcm_n = pcm_cap = 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The variant files in espeak-ng-data/voices/!v, sorted (their order fixes the held-out
 * ones). */
int las_espeak_variants(char ***names, int *n, char *err, size_t errlen) {
    *names = NULL, *n = 0;
    const char *dirs[] = {"/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v",
                          "/usr/lib/aarch64-linux-gnu/espeak-ng-data/voices/!v", "/usr/share/espeak-ng-data/voices/!v",
                          "/usr/lib/espeak-ng-data/voices/!v"};
    DIR *d = NULL;
    const char *env = getenv("ESPEAK_DATA_PATH");
    char path[4096];
    if (env) {
        snprintf(path, sizeof path, "%s/espeak-ng-data/voices/!v", env);
        d = opendir(path);
    }
    for (size_t i = 0; !d && i < sizeof dirs / sizeof *dirs; i++) d = opendir(dirs[i]);
    if (!d) return snprintf(err, errlen, "espeak-ng: no voices/!v directory of variants found"), -1;
    char **v = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            char **more = realloc(v, (size_t)(cap = cap ? 2 * cap : 128) * sizeof *v);
            if (!more) break;
            v = more;
        }
        if (!(v[*n] = strdup(e->d_name))) break;
        (*n)++;
    }
    closedir(d);
    if (*n == 0) {
        free(v);
        return snprintf(err, errlen, "espeak-ng: no voice variants found"), -1;
    }
    qsort(v, (size_t)*n, sizeof *v, by_name);
    *names = v;
    return 0;
}

/* ---------------------------------------------------------------- flite */

int las_flite(const char *voice, const char *text, double stretch, double f0, const char *tmp_path, float **out,
              int64_t *n, char *err, size_t errlen) {
    char s_arg[64], f_arg[64];
    snprintf(s_arg, sizeof s_arg, "duration_stretch=%.3f", stretch);
    snprintf(f_arg, sizeof f_arg, "int_f0_target_mean=%.1f", f0);
    char *argv[] = {"flite", "-voice",     (char *)voice, "--setf",         s_arg, "--setf", f_arg,
                    "-t",    (char *)text, "-o",          (char *)tmp_path, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "flite", NULL, NULL, argv, environ) != 0)
        return snprintf(err, errlen, "flite: cannot run the flite command (Debian package flite)"), -1;
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        unlink(tmp_path);
        return snprintf(err, errlen, "flite -voice %s failed on '%s'", voice, text), -1;
    }
    int rc = las_wav_read(tmp_path, out, n, err, errlen);
    unlink(tmp_path);
    return rc;
}
