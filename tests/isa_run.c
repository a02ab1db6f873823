/* Runs a test program on one instruction-set path of heed's kernels:
 *   isa_run ISA PROGRAM [ARGS...]
 * sets HEED_ISA=ISA, checks that heed then runs that ISA (heed_isa()) and runs PROGRAM in
 * its place. When heed would run another one (the CPU lacks ISA, or heed has no kernels
 * for it yet) the test is skipped: exit 77, meson's code for a skip. A name heed does not
 * document (include/heed/core.h: avx512, avx2, scalar) fails, so a typo is not a skip. */
#include "heed/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: isa_run avx512|avx2|scalar PROGRAM [ARGS...]\n");
        return 1;
    }
    const char *want = argv[1];
    if (strcmp(want, "avx512") && strcmp(want, "avx2") && strcmp(want, "scalar")) {
        fprintf(stderr, "isa_run: '%s' is not an ISA heed knows (avx512, avx2, scalar)\n", want);
        return 1;
    }
    if (setenv("HEED_ISA", want, 1) != 0) {
        perror("isa_run: setenv");
        return 1;
    }
    const char *got = heed_isa();
    if (strcmp(got, want) != 0) {
        printf("isa_run: skipped: heed runs %s on this machine, not %s\n", got, want);
        return 77;
    }
    execv(argv[2], argv + 2);
    fprintf(stderr, "isa_run: cannot run %s: %s\n", argv[2], strerror(errno));
    return 1;
}
