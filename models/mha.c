/* Multi-head attention (Vaswani et al. 2017), PyTorch's nn.MultiheadAttention layout with
 * batch_first = True and separate q/k/v projections:
 *   Q = query W_q^T + b_q,  K = key W_k^T + b_k,  V = value W_v^T + b_v
 *   head h: O_h = softmax(Q_h K_h^T / sqrt(dh) + bias + mask) V_h   (heed_attention)
 *   out = concat_h(O_h) W_o^T + b_o
 * Heads are split by a view [B,N,E] -> [B,N,H,dh] and a permute to [B,H,N,dh] (and merged
 * back the same way); every step records its own backward. */
#include <heed/attention.h>
#include <heed/core.h>
#include <heed/extend.h>
#include <heed/layers.h>
#include <heed/matmul.h>
#include <heed/shape.h>

#include <stdio.h>

heed_status heed_mha_declare(heed_mha *m, heed_params *P, const char *prefix, const heed_mha_config *cfg) {
    if (!P) return HEED_ERR_ARG;
    heed_ctx *ctx = heed_params_ctx(P);
    if (!m || !cfg || !prefix)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_mha_declare: m, prefix and cfg must not be NULL");
    int64_t E = cfg->embed_dim, H = cfg->num_heads, kdim = cfg->kdim ? cfg->kdim : E, vdim = cfg->vdim ? cfg->vdim : E;
    if (E < 1 || H < 1 || E % H != 0)
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             "heed_mha_declare: embed_dim = %lld must be a positive multiple of num_heads = %lld",
                             (long long)E, (long long)H);
    if (kdim < 1 || vdim < 1)
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             "heed_mha_declare: kdim = %lld, vdim = %lld (must be >= 1, or 0 for embed_dim)",
                             (long long)cfg->kdim, (long long)cfg->vdim);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_mha_declare: dropout = %g (must be in [0, 1))", cfg->dropout);
    *m = (heed_mha){.embed_dim = E,
                    .num_heads = H,
                    .head_dim = E / H,
                    .kdim = kdim,
                    .vdim = vdim,
                    .dropout = cfg->dropout};
    /* PyTorch's initialisation: xavier_uniform for the input projections, nn.Linear's
     * kaiming_uniform(a = sqrt(5)) for the output projection, zero biases. */
    heed_init xavier = heed_init_xavier_uniform(1.0), linear = heed_init_kaiming_uniform(2.2360679774997896),
              zero = heed_init_zeros();
    if (!(m->q_w = heed_param_prefixed(P, prefix, "q_proj.weight", HEED_SHAPE(E, E), xavier)) ||
        !(m->k_w = heed_param_prefixed(P, prefix, "k_proj.weight", HEED_SHAPE(E, kdim), xavier)) ||
        !(m->v_w = heed_param_prefixed(P, prefix, "v_proj.weight", HEED_SHAPE(E, vdim), xavier)) ||
        !(m->o_w = heed_param_prefixed(P, prefix, "out_proj.weight", HEED_SHAPE(E, E), linear)))
        return HEED_ERR_ARG;
    if (cfg->bias && (!(m->q_b = heed_param_prefixed(P, prefix, "q_proj.bias", HEED_SHAPE(E), zero)) ||
                      !(m->k_b = heed_param_prefixed(P, prefix, "k_proj.bias", HEED_SHAPE(E), zero)) ||
                      !(m->v_b = heed_param_prefixed(P, prefix, "v_proj.bias", HEED_SHAPE(E), zero)) ||
                      !(m->o_b = heed_param_prefixed(P, prefix, "out_proj.bias", HEED_SHAPE(E), zero))))
        return HEED_ERR_ARG;
    return HEED_OK;
}

/* [B,N,H*dh] -> [B,H,N,dh] */
static heed_tensor *split_heads(heed_graph *g, heed_tensor *x, int64_t H, int64_t dh) {
    if (!x) return NULL; /* the projection failed; the error is on g */
    heed_tensor *r = heed_reshape(g, x, HEED_SHAPE(x->shape[0], x->shape[1], H, dh));
    return r ? heed_permute(g, r, (const int[]){0, 2, 1, 3}) : NULL;
}

/* [B,H,N,dh] -> [B,N,H*dh] */
static heed_tensor *merge_heads(heed_graph *g, heed_tensor *x) {
    if (!x) return NULL;
    heed_tensor *p = heed_permute(g, x, (const int[]){0, 2, 1, 3});
    return p ? heed_reshape(g, p, HEED_SHAPE(x->shape[0], x->shape[2], x->shape[1] * x->shape[3])) : NULL;
}

static const char *dtype_name(heed_dtype dt) { return dt == HEED_F32 ? "f32" : "f64"; }

static bool check_input(heed_graph *g, const char *name, heed_tensor *t, int64_t B, int64_t dim,
                        const heed_tensor *ref) {
    const char *op = "heed_mha_forward";
    if (!heed_check_tensor(g, op, t, name)) return false;
    if (ref && t->dtype != ref->dtype) {
        heed_graph_fail(g, HEED_ERR_DTYPE, "%s: %s is %s but query is %s (dtypes must match)", op, name,
                        dtype_name(t->dtype), dtype_name(ref->dtype));
        return false;
    }
    if (t->ndim != 3 || (B >= 0 && t->shape[0] != B) || t->shape[2] != dim) {
        char s[64];
        heed_graph_fail(g, HEED_ERR_SHAPE, "%s: %s%s must be [B,N,%lld]%s", op, name, heed_shape_str(t, s),
                        (long long)dim, B >= 0 ? " with the query's B" : "");
        return false;
    }
    return true;
}

heed_tensor *heed_mha_forward(heed_graph *g, const heed_mha *m, heed_tensor *query, heed_tensor *key,
                              heed_tensor *value, const heed_attention_opts *opts, heed_tensor **weights) {
    const char *op = "heed_mha_forward";
    if (weights) *weights = NULL;
    if (!heed_graph_ok(g)) return NULL;
    if (!m || !m->q_w || !m->k_w || !m->v_w || !m->o_w)
        return heed_graph_fail(g, HEED_ERR_ARG, "%s: the layer is NULL or not initialised", op), NULL;
    if (!key) key = query; /* self-attention */
    if (!value) value = key;
    if (!check_input(g, "query", query, -1, m->embed_dim, NULL)) return NULL;
    int64_t B = query->shape[0];
    if (!check_input(g, "key", key, B, m->kdim, query) || !check_input(g, "value", value, B, m->vdim, query))
        return NULL;
    char ks[64], vs[64];
    if (key->shape[1] != value->shape[1])
        return heed_graph_fail(g, HEED_ERR_SHAPE, "%s: key%s and value%s must have the same number of keys", op,
                               heed_shape_str(key, ks), heed_shape_str(value, vs)),
               NULL;
    if (m->q_w->dtype != query->dtype)
        return heed_graph_fail(g, HEED_ERR_DTYPE, "%s: the parameters are %s but query is %s (dtypes must match)", op,
                               dtype_name(m->q_w->dtype), dtype_name(query->dtype)),
               NULL;
    heed_attention_opts o = opts ? *opts : (heed_attention_opts){0};
    if (o.dropout == 0) o.dropout = m->dropout;
    int64_t H = m->num_heads, dh = m->head_dim;
    heed_tensor *q = split_heads(g, heed_linear(g, query, m->q_w, m->q_b), H, dh);
    heed_tensor *k = split_heads(g, heed_linear(g, key, m->k_w, m->k_b), H, dh);
    heed_tensor *v = split_heads(g, heed_linear(g, value, m->v_w, m->v_b), H, dh);
    heed_tensor *attn = heed_attention(g, q, k, v, &o, weights);
    if (!attn) return NULL;
    return heed_linear(g, merge_heads(g, attn), m->o_w, m->o_b);
}
