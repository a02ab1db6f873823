/* heed: an autograd framework in C for attention models.
 *
 * This header includes every part of the public API (include/heed/, one header per area;
 * a file may include just the parts it uses instead). The flow of a training step:
 *   inputs -> ops (forward, recorded on the graph's tape) -> loss -> heed_backward
 *   -> gradients in the parameter store -> optimizer -> parameters.
 *
 * Errors: library code never aborts. Every op takes the graph first; the first error is
 * kept on the graph (sticky) and later ops return NULL at once, so checking once per step
 * (heed_backward's status, or heed_graph_status) is enough. Messages name the op, the
 * shapes and the rule broken: "heed_matmul: a[32,256] @ b[128,512]: inner dims differ".
 * Calls that are not graph ops (parameters, optimizers, checkpoints) return a heed_status
 * and leave their message in heed_ctx_error(ctx).
 */
#ifndef HEED_H
#define HEED_H

#include "heed/core.h"
#include "heed/elementwise.h"
#include "heed/reduce.h"
#include "heed/matmul.h"
#include "heed/shape.h"
#include "heed/index.h"
#include "heed/softmax.h"
#include "heed/norm.h"
#include "heed/dropout.h"
#include "heed/loss.h"
#include "heed/conv.h"
#include "heed/pool.h"
#include "heed/batchnorm.h"
#include "heed/gradcheck.h"
#include "heed/rnn.h"
#include "heed/attention.h"
#include "heed/layers.h"
#include "heed/sasrec.h"
#include "heed/decode.h"
#include "heed/metrics.h"
#include "heed/las.h"
#include "heed/caption.h"
#include "heed/optim.h"
#include "heed/io.h"
#include "heed/checkpoint.h"
#include "heed/viz.h"
#include "heed/extend.h"
#include "heed/dist.h"

#endif
