/* Parameters of an additive (Bahdanau) attention, optionally location-aware and with
 * coverage, declared in a store under a prefix. The math is in ops/attention/scores.c. */
#include <heed/core.h>
#include <heed/extend.h>
#include <heed/layers.h>

#include <math.h>
#include <stdio.h>

heed_status heed_additive_declare(heed_additive_layer *l, heed_params *P, const char *prefix,
                                  const heed_additive_config *cfg) {
    if (!P) return HEED_ERR_ARG;
    heed_ctx *ctx = heed_params_ctx(P);
    if (!l || !prefix || !cfg)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_additive_declare: l, prefix and cfg must not be NULL");
    int64_t dq = cfg->query_dim, dk = cfg->key_dim, da = cfg->attn_dim, C = cfg->loc_channels, K = cfg->loc_kernel;
    if (dq < 1 || dk < 1 || da < 1)
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             "heed_additive_declare: query_dim = %lld, key_dim = %lld, attn_dim = %lld (must be >= 1)",
                             (long long)dq, (long long)dk, (long long)da);
    if (C < 0 || (C > 0 && (K < 1 || K % 2 == 0)) || (C == 0 && K != 0))
        return heed_ctx_fail(
            ctx, HEED_ERR_ARG,
            "heed_additive_declare: loc_channels = %lld, loc_kernel = %lld (location features need channels "
            ">= 1 and an odd kernel >= 1; both 0 for none)",
            (long long)C, (long long)K);
    *l = (heed_additive_layer){0};
    /* nn.Linear / nn.Conv1d initialisation: kaiming_uniform(a = sqrt 5), i.e. U(+-1/sqrt(fan_in)) */
    heed_init linear = heed_init_kaiming_uniform(2.2360679774997896);
    double rv = 1 / sqrt((double)da);
    if (!(l->params.w_q = heed_param_prefixed(P, prefix, "query_proj.weight", HEED_SHAPE(da, dq), linear)) ||
        !(l->w_k = heed_param_prefixed(P, prefix, "key_proj.weight", HEED_SHAPE(da, dk), linear)) ||
        (cfg->bias && !(l->params.bias = heed_param_prefixed(P, prefix, "query_proj.bias", HEED_SHAPE(da),
                                                             heed_init_uniform(-rv, rv)))) ||
        !(l->params.v = heed_param_prefixed(P, prefix, "v", HEED_SHAPE(da), heed_init_uniform(-rv, rv))))
        return HEED_ERR_ARG;
    if (C > 0 &&
        (!(l->params.loc_filters = heed_param_prefixed(P, prefix, "location_conv.weight", HEED_SHAPE(C, K), linear)) ||
         !(l->params.loc_proj = heed_param_prefixed(P, prefix, "location_proj.weight", HEED_SHAPE(da, C), linear))))
        return HEED_ERR_ARG;
    if (cfg->coverage && !(l->params.cov_weight = heed_param_prefixed(P, prefix, "coverage_proj.weight", HEED_SHAPE(da),
                                                                      heed_init_uniform(-1, 1))))
        return HEED_ERR_ARG;
    return HEED_OK;
}
