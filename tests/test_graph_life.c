/* The life of tensors and tapes: dead tensors of any age, marks and rewinds, no-grad
 * across resets, one backward per tape, what backward adds, the parameter count. */
#include "check.h"

static heed_ctx *ctx;

static void params_count_and_ownership(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32), *Q = heed_params_new(ctx, HEED_F32);
    heed_param(P, "a", HEED_SHAPE(7), heed_init_zeros());
    heed_param(P, "b", HEED_SHAPE(13), heed_init_zeros());
    heed_param(P, "c", HEED_SHAPE(3), heed_init_zeros());
    heed_tensor *q = heed_param(Q, "q", HEED_SHAPE(2), heed_init_constant(1));
    CHECK(heed_params_numel(P) == 23, "numel %lld (7 + 13 + 3)", (long long)heed_params_numel(P));
    CHECK(heed_params_padded_numel(P) == 35, "padded %lld (16 + 16 + 3)", (long long)heed_params_padded_numel(P));
    CHECK(heed_params_numel(NULL) == 0 && heed_params_padded_numel(NULL) == 0, "NULL");
    CHECK(heed_param_init(P, q, heed_init_constant(5)) == HEED_ERR_ARG, "a parameter of another store");
    CHECK(strstr(heed_ctx_error(ctx), "heed_param_init: q is not a parameter of this store"), "%s", heed_ctx_error(ctx));
    CHECK(heed_get(q, 0) == 1, "q was changed");
    CHECK(heed_param_init(Q, q, heed_init_constant(5)) == HEED_OK && heed_get(q, 1) == 5, "its own store");
    heed_params_free(Q);
    heed_params_free(P);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 7});
    RUN(params_count_and_ownership);
    heed_ctx_free(ctx);
    return check_summary();
}
