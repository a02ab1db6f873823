/* The reverse-a-sequence encoder-decoder (examples/seq2seq.c) against the same model in
 * PyTorch (bench/seq2seq_torch.py, under /usr/bin/python3 or $PYTHON), measured in the same
 * run: both programs train for the same number of steps (batch 64, no evaluation) with the
 * same thread count, and each reports its training steps per second (data, forward, loss,
 * backward, Adam step). Also counts the lines of both programs the same way: lines that
 * are neither blank nor only comment (C block and line comments; Python # comments and
 * docstrings).
 *   -> ratio_vs_pytorch = heed steps/s / PyTorch steps/s; line_ratio = heed / PyTorch lines
 * Usage: bench_seq2seq [--steps N] [--threads N] [--no-pytorch] [--busy N]   (threads 0: all)
 * --busy N: contention mode (bench_util.h): heed's seconds per step, quiet and then while N
 * child processes busy-loop, and their ratio (PyTorch is not run). */
#include "bench_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HEED_SOURCE_DIR
#define HEED_SOURCE_DIR "."
#endif
#ifndef HEED_BUILD_DIR
#define HEED_BUILD_DIR "build"
#endif

/* Lines holding something besides comments and blanks. C: block comments and // comments;
 * Python (python true): # comments and triple-quoted strings that stand alone (docstrings).
 * Quotes inside strings are not parsed: neither program puts comment markers in strings. */
static int code_lines(const char *path, bool python) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    bool in_block = false;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        bool code = false;
        for (char *p = line; *p; p++) {
            const char *close = python ? "\"\"\"" : "*/";
            if (in_block) {
                if (!strncmp(p, close, strlen(close))) in_block = false, p += strlen(close) - 1;
            } else if (python ? !strncmp(p, "\"\"\"", 3) && !code : !strncmp(p, "/*", 2)) {
                in_block = true, p += python ? 2 : 1;
            } else if (python ? *p == '#' : !strncmp(p, "//", 2)) {
                break;
            } else if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                code = true;
            }
        }
        n += code;
    }
    fclose(f);
    return n;
}

/* Seconds per training step of the heed program (the command in arg); NaN if it fails. */
static double heed_step_seconds(void *arg) { return 1 / bench_command_number(arg, "steps_per_second"); }

int main(int argc, char **argv) {
    int steps = 100, threads = 1, busy = 0;
    bool pytorch = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-pytorch")) pytorch = false;
        else if ((busy = bench_busy_arg(argc, argv, &i)) > 0) continue;
        else {
            fprintf(stderr, "usage: %s [--steps N] [--threads N] [--no-pytorch] [--busy N]\n", argv[0]);
            return 2;
        }
    }
    if (steps < 1 || threads < 0) return fprintf(stderr, "%s: --steps >= 1, --threads >= 0\n", argv[0]), 2;
    const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/examples/seq2seq --steps %d --eval-every 0 --threads %d", HEED_BUILD_DIR, steps,
             threads);
    if (busy) {
        printf("{\"bench\":\"seq2seq\",\"case\":\"heed seconds per step, contention\",\"steps\":%d,\"threads\":%d,",
               steps, threads);
        bool ok = bench_contention(busy, heed_step_seconds, cmd);
        printf("}\n");
        return ok ? 0 : 1;
    }
    double heed_rate = bench_command_number(cmd, "steps_per_second"), torch_rate = NAN;
    if (pytorch) {
        snprintf(cmd, sizeof cmd, "%s %s/bench/seq2seq_torch.py --steps %d --eval-every 0 --threads %d", py,
                 HEED_SOURCE_DIR, steps, threads);
        torch_rate = bench_command_number(cmd, "steps_per_second");
    }
    int heed_lines = code_lines(HEED_SOURCE_DIR "/examples/seq2seq.c", false);
    int torch_lines = code_lines(HEED_SOURCE_DIR "/bench/seq2seq_torch.py", true);
    if (isnan(heed_rate) || heed_lines < 0 || torch_lines < 0)
        return fprintf(stderr, "%s: the example or a source file is missing (built with -Dexamples=false?)\n", argv[0]),
               1;
    printf("{\"bench\":\"seq2seq\",\"steps\":%d,\"threads\":%d,\"heed_steps_per_second\":%.2f", steps, threads,
           heed_rate);
    if (!isnan(torch_rate))
        printf(",\"pytorch_steps_per_second\":%.2f,\"ratio_vs_pytorch\":%.2f", torch_rate, heed_rate / torch_rate);
    else if (pytorch) printf(",\"pytorch_steps_per_second\":null");
    printf(",\"heed_lines\":%d,\"pytorch_lines\":%d,\"line_ratio\":%.2f}\n", heed_lines, torch_lines,
           (double)heed_lines / torch_lines);
    return 0;
}
