/* heed: Layers: additive attention, multi-head attention (models/). Part of the public
 * API: <heed.h> includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_LAYERS_H
#define HEED_API_LAYERS_H

#include "core.h"
#include "attention.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ layers (models/) */

/* ---------------------------------------------------------------- additive attention layer (models/additive.c) */

/* The parameters of an additive attention (heed_additive_score) declared in a store. */
typedef struct {
    int64_t query_dim, key_dim, attn_dim; /* dq, dk, da */
    int64_t loc_channels, loc_kernel;     /* location-aware features: C >= 1 and odd K; 0, 0 = none */
    bool coverage;                        /* coverage features */
    bool bias;                            /* a bias on the query projection */
} heed_additive_config;

typedef struct {
    heed_additive_params params; /* pass &layer.params to heed_additive_score / _attention */
    heed_tensor *w_k;            /* [da,dk]: heed_additive_keys(g, keys, layer.w_k, NULL) once per sequence */
} heed_additive_layer;

/* Declares <prefix>.query_proj.weight [da,dq], .key_proj.weight [da,dk],
 * .query_proj.bias [da] (with bias), .v [da], .location_conv.weight [C,K] and
 * .location_proj.weight [da,C] (with location features), .coverage_proj.weight [da] (with
 * coverage). Projections and filters start as PyTorch's nn.Linear / nn.Conv1d
 * (U(+-1/sqrt(fan_in))), v and the bias as U(+-1/sqrt(da)), the coverage weights U(-1,1). */
heed_status heed_additive_declare(heed_additive_layer *l, heed_params *P, const char *prefix,
                                  const heed_additive_config *cfg);

/* ---------------------------------------------------------------- multi-head attention (models/mha.c) */

/* PyTorch's nn.MultiheadAttention (batch_first, separate projections): see
 * docs/attention-layers.md. */
typedef struct {
    int64_t embed_dim;  /* E: query size and output size */
    int64_t num_heads;  /* H; E must be a multiple of H (head size dh = E / H) */
    int64_t kdim, vdim; /* key and value input sizes for cross-attention; 0 = E */
    bool bias;          /* biases on the four projections (PyTorch's default is true) */
    double dropout;     /* on the attention weights in training mode, in [0, 1) */
} heed_mha_config;

/* The layer: parameters in a store, named <prefix>.q_proj.weight [E,E],
 * <prefix>.k_proj.weight [E,kdim], <prefix>.v_proj.weight [E,vdim],
 * <prefix>.out_proj.weight [E,E] and (with bias) <prefix>.{q,k,v,out}_proj.bias [E]. */
typedef struct {
    heed_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b; /* biases NULL without bias */
    int64_t embed_dim, num_heads, head_dim, kdim, vdim;
    double dropout;
} heed_mha;

/* Declares the parameters under prefix ("" for none) and fills m. Initialisation follows
 * PyTorch: xavier_uniform for q/k/v, nn.Linear's kaiming_uniform(sqrt 5) for out_proj, zero
 * biases. Returns HEED_OK, or an error with the message in heed_ctx_error. */
heed_status heed_mha_declare(heed_mha *m, heed_params *P, const char *prefix, const heed_mha_config *cfg);
/* query [B,Nq,E], key [B,Nk,kdim], value [B,Nk,vdim] -> [B,Nq,E]. key NULL means
 * self-attention (key = value = query); value NULL means value = key. opts go to
 * heed_attention (may be NULL): causal, key_lengths [B], bias (e.g. a relative-position
 * bias [1,H,Nq,Nk]), window, impl; opts->dropout 0 means the layer's dropout. weights, if
 * not NULL, receives the per-head weights [B,H,Nq,Nk] (as heed_attention's). */
heed_tensor *heed_mha_forward(heed_graph *g, const heed_mha *m, heed_tensor *query, heed_tensor *key,
                              heed_tensor *value, const heed_attention_opts *opts, heed_tensor **weights);

#ifdef __cplusplus
}
#endif
#endif
