/* LAS example: the program's command line, parsed into options by a function that never
 * prints or exits (main.c prints; examples/las/fuzz_args.c fuzzes it). */
#ifndef LAS_ARGS_H
#define LAS_ARGS_H

#include "train.h"

#include <stdio.h>

typedef struct {
    const char *checkpoint, *metrics_csv, *out_dir, *transcribe, *alignment, *eval_manifest, *train_manifest;
    bool resume, progress, no_test;
    int64_t epochs, stop_after, eval_every, eval_size, threads, show;
    double target_wer; /* exit status 3 if the final beam WER on set a is above (smoke tests); < 0: none */
    las_data_config data;
    las_train_config train;
} las_options;

enum { LAS_ARGS_ERROR = -1, LAS_ARGS_OK = 0, LAS_ARGS_HELP = 1 };

/* Fills o from argv[1 .. argc): the defaults, then the flags in order. LAS_ARGS_OK;
 * LAS_ARGS_HELP for --help / -h; LAS_ARGS_ERROR with a message in err for an unknown flag,
 * a missing or bad value (the flag, the value and the range), or flags that do not go
 * together. Strings in o point into argv. */
int las_parse_args(int argc, char *const *argv, las_options *o, char *err, size_t errlen);
void las_usage(FILE *f);

#endif
