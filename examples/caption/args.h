/* Caption example: the program's command line, parsed into options by a function that
 * never prints or exits (main.c prints; examples/caption/fuzz_args.c fuzzes it). */
#ifndef CAPTION_ARGS_H
#define CAPTION_ARGS_H

#include "train.h"

#include <stdio.h>

typedef struct {
    const char *data_dir, *checkpoint, *metrics_csv, *out_dir, *caption_png;
    bool resume, progress;
    int64_t pretrain_epochs, epochs, beam, eval_every, eval_size, figures, stop_after;
    double target_bleu4; /* exit status 3 below it (smoke tests); < 0: none */
    cap_config cfg;
} cap_options;

enum { CAP_ARGS_ERROR = -1, CAP_ARGS_OK = 0, CAP_ARGS_HELP = 1 };

/* Fills o from argv[1 .. argc): the defaults, then the flags in order. CAP_ARGS_OK;
 * CAP_ARGS_HELP for --help / -h; CAP_ARGS_ERROR with a message in err for an unknown flag,
 * a missing or bad value (the flag, the value and the range), or flags that do not go
 * together. Strings in o point into argv. */
int cap_parse_args(int argc, char *const *argv, cap_options *o, char *err, size_t errlen);
void cap_usage(FILE *f);

#endif
