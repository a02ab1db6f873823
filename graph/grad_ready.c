/* The gradient-ready hook: during backward, report each parameter once its gradient is
 * final, so data-parallel training can send it while backward still runs.
 *
 * Backward visits the tape from the newest node to the oldest, and a node's backward adds
 * only into the gradients of its own inputs. So a parameter's gradient is final once the
 * oldest node taking it as an input has run: its "last use" in backward order. The plan
 * lists every parameter input with the position of its node in backward order, keeps the
 * largest position per parameter, and orders what is left by position; backward then
 * fires the entries of each position right after the node there has run (or been skipped
 * for lack of an output gradient: nothing more comes for its inputs either). */
#include "internal.h"

#include <stdlib.h>

struct heed_ready_at {
    int64_t pos;
    heed_tensor *param;
};

void heed_graph_set_grad_ready_hook(heed_graph *g, heed_grad_ready_fn fn, void *user) {
    if (!g) return;
    g->grad_ready = fn;
    g->grad_ready_user = fn ? user : NULL;
}

static int by_param_then_last(const void *a, const void *b) { /* same parameter: largest position first */
    const struct heed_ready_at *x = a, *y = b;
    if (x->param != y->param) return (uintptr_t)x->param < (uintptr_t)y->param ? -1 : 1;
    return (x->pos < y->pos) - (x->pos > y->pos);
}

static int by_pos(const void *a, const void *b) {
    const struct heed_ready_at *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

void heed__grad_ready_plan(heed_graph *g, heed_node *from, heed_ready_plan *plan) {
    *plan = (heed_ready_plan){0};
    if (!g->grad_ready) return;
    int64_t uses = 0;
    for (heed_node *n = from; n; n = n->prev)
        for (int i = 0; i < n->n_in; i++) uses += n->in[i] && (n->in[i]->flags & HEED_PARAM);
    if (uses == 0) return;
    struct heed_ready_at *at = heed_graph_alloc(g, (size_t)uses * sizeof *at);
    if (!at) return;
    int64_t k = 0, pos = 0;
    for (heed_node *n = from; n; n = n->prev, pos++)
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] && (n->in[i]->flags & HEED_PARAM)) at[k++] = (struct heed_ready_at){pos, n->in[i]};
    qsort(at, (size_t)uses, sizeof *at, by_param_then_last);
    int64_t m = 0;
    for (int64_t i = 0; i < uses; i++)
        if (i == 0 || at[i].param != at[i - 1].param) at[m++] = at[i];
    qsort(at, (size_t)m, sizeof *at, by_pos);
    *plan = (heed_ready_plan){.at = at, .n = m};
}

void heed__grad_ready_fire(heed_graph *g, heed_ready_plan *plan, int64_t pos) {
    for (; plan->next < plan->n && plan->at[plan->next].pos == pos && heed_graph_ok(g); plan->next++)
        g->grad_ready(g, plan->at[plan->next].param, g->grad_ready_user);
}
