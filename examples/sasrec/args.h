/* SASRec example: the program's command line, parsed into options by a function that
 * never prints or exits (main.c prints; examples/sasrec/fuzz_args.c fuzzes it). */
#ifndef SASREC_ARGS_H
#define SASREC_ARGS_H

#include "train.h"

#include <stdio.h>

typedef struct {
    const char *data, *save_data, *checkpoint, *heatmap, *metrics_csv, *gen_preset;
    const char *gen_flag; /* the first --gen* flag given (refused with --data) */
    bool resume, progress, full_rank, bench, no_test;
    int64_t epochs, eval_every, eval_users, heatmap_user, threads;
    int negatives, k;
    double target_hr; /* exit status 3 if the final test HR@k is below (smoke tests); < 0: none */
    sr_gen_config gen;
    sr_train_config train;
} sr_options;

enum { SR_ARGS_ERROR = -1, SR_ARGS_OK = 0, SR_ARGS_HELP = 1 };

/* Fills o from argv[1 .. argc): the defaults, the --gen preset, then the flags in order.
 * SR_ARGS_OK; SR_ARGS_HELP for --help / -h; SR_ARGS_ERROR with a message in err for an
 * unknown flag, a missing or bad value (the flag, the value and the range), or flags that
 * do not go together. Strings in o point into argv. */
int sr_parse_args(int argc, char *const *argv, sr_options *o, char *err, size_t errlen);
void sr_usage(FILE *f);

#endif
