/* The SASRec trainer data-parallel (examples/sasrec/train.c under mpirun), in f64 without
 * dropout, against one process. examples/sasrec/mpi_test.sh runs:
 *   mpirun -np 2 test_sasrec_dist train PATH   2 ranks train 2 epochs; rank 0's checkpoints
 *                                              PATH.1 and PATH.2 and the epoch losses PATH.loss
 *   test_sasrec_dist check PATH                one process trains the same 2 epochs: its
 *                                              losses and weights match (1e-10), and PATH.1
 *                                              resumed by one process for an epoch matches too
 * The 401 users make 7 batches of 64 and one of 17 (shards of 32 and 8/9 rows); each rank
 * runs its own length groups, so the match also checks the loss weighting across ranks. */
#include "tests/check.h"
#include "train.h"

static sr_data d;
static sr_generator gen;

static sr_train_config config(void) {
    sr_train_config c = sr_train_defaults(d.n_items);
    c.model.maxlen = 20;
    c.model.hidden = 16;
    c.model.blocks = 1;
    c.model.dropout = 0;
    c.batch = 64;
    c.seed = 9;
    c.dtype = HEED_F64;
    c.threads = 1;
    return c;
}

static char path1[512], path2[512], loss_path[512];

static void train_and_save(void) {
    sr_train_config tc = config();
    sr_trainer t;
    char err[512];
    CHECK(sr_trainer_init(&t, &d, &tc, err, sizeof err) == 0, "%s", err);
    double loss[2];
    for (int e = 0; e < 2; e++) {
        loss[e] = sr_train_epoch(&t, NULL, err, sizeof err);
        CHECK(!isnan(loss[e]), "%s", err);
        CHECK(sr_trainer_save(&t, e == 0 ? path1 : path2, err, sizeof err) == 0, "%s", err);
    }
    printf("  rank %d of %d: losses %.10f %.10f\n", heed_dist_rank(), heed_dist_size(), loss[0], loss[1]);
    if (heed_dist_rank() == 0) {
        FILE *f = fopen(loss_path, "w");
        CHECK(f && fprintf(f, "%.17g %.17g\n", loss[0], loss[1]) > 0 && fclose(f) == 0, "cannot write %s", loss_path);
    }
    sr_trainer_free(&t);
}

static double max_diff(const sr_trainer *a, const sr_trainer *b) {
    const double *x = heed_params_values(a->P), *y = heed_params_values(b->P);
    double m = 0;
    for (int64_t i = 0; i < heed_params_padded_numel(a->P); i++)
        if (!(fabs(x[i] - y[i]) <= m)) m = fabs(x[i] - y[i]); /* NaN propagates */
    return m;
}

static void one_process_matches(void) {
    sr_train_config tc = config();
    sr_trainer one, saved, resumed;
    char err[512];
    CHECK(sr_trainer_init(&one, &d, &tc, err, sizeof err) == 0, "%s", err);
    CHECK(sr_trainer_init(&saved, &d, &tc, err, sizeof err) == 0, "%s", err);
    CHECK(sr_trainer_init(&resumed, &d, &tc, err, sizeof err) == 0, "%s", err);
    double loss[2], theirs[2] = {NAN, NAN};
    for (int e = 0; e < 2; e++) loss[e] = sr_train_epoch(&one, NULL, err, sizeof err);
    FILE *f = fopen(loss_path, "r");
    CHECK(f && fscanf(f, "%lf %lf", &theirs[0], &theirs[1]) == 2, "cannot read %s", loss_path);
    if (f) fclose(f);
    for (int e = 0; e < 2; e++) CHECK_CLOSE(theirs[e], loss[e], 1e-10);
    CHECK(sr_trainer_load(&saved, path2, err, sizeof err) == 0, "%s", err);
    CHECK(max_diff(&saved, &one) < 1e-10, "2 ranks' weights differ from one process's by %g", max_diff(&saved, &one));
    CHECK(sr_trainer_load(&resumed, path1, err, sizeof err) == 0 && resumed.epoch == 1, "%s", err);
    CHECK(!isnan(sr_train_epoch(&resumed, NULL, err, sizeof err)), "%s", err);
    CHECK(max_diff(&resumed, &one) < 1e-10, "resumed from 2 ranks' epoch 1, the weights differ by %g",
          max_diff(&resumed, &one));
    sr_trainer_free(&one);
    sr_trainer_free(&saved);
    sr_trainer_free(&resumed);
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "train") && strcmp(argv[1], "check"))) {
        fprintf(stderr, "usage: test_sasrec_dist train|check PATH\n");
        return 2;
    }
    snprintf(path1, sizeof path1, "%s.1", argv[2]);
    snprintf(path2, sizeof path2, "%s.2", argv[2]);
    snprintf(loss_path, sizeof loss_path, "%s.loss", argv[2]);
    sr_gen_config gc = {.n_users = 401,
                        .n_items = 60,
                        .mean_len = 8,
                        .min_len = 3,
                        .max_len = 40,
                        .successors = 2,
                        .noise = 0.2,
                        .order2 = 0.2,
                        .zipf = 1.0,
                        .seed = 6};
    char err[512];
    if (sr_generate(&gc, &d, &gen, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    if (!strcmp(argv[1], "train")) RUN(train_and_save);
    else RUN(one_process_matches);
    sr_generator_free(&gen);
    sr_data_free(&d);
    heed_dist_finalize();
    return check_summary();
}
