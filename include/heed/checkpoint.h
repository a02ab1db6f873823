/* heed: Checkpoints and weight files (io/checkpoint.c). Part of the public API: <heed.h>
 * includes every part; a file may include just the parts it uses. */
#ifndef HEED_API_CHECKPOINT_H
#define HEED_API_CHECKPOINT_H

#include "core.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ checkpoints (io/checkpoint.c) */

/* safetensors files: parameters, optimizer state (optional), and metadata (step, RNG
 * state, schedule state, user keys). Saving is atomic (temporary file, fsync, rename).
 * Loading validates the whole file before changing anything. docs/checkpoints.md gives
 * the layout (tensor names, metadata keys) and the list of checks. */

/* The sizes in heed_checkpoint_info: doubles of schedule state, user key/value pairs, and
 * bytes per user key and per user value (with the NUL). */
#define HEED_CKPT_MAX_SCHEDULE 8
#define HEED_CKPT_MAX_USER 16
#define HEED_CKPT_KEY_LEN 64
#define HEED_CKPT_VALUE_LEN 512

/* What a checkpoint holds besides tensors. Zero-initialise, then fill what you use.
 * Numbers are stored as exact decimal strings (doubles with %.17g), so a resumed run
 * reads back bitwise the values it saved. */
typedef struct {
    int64_t step;  /* training steps done, in [0, 2^53] */
    int64_t epoch; /* in [0, 2^53] */
    /* The ctx's op RNG (heed_ctx_rng_state): save writes the ctx's own state and ignores
     * these two; load restores it into the ctx and reports it here. */
    uint64_t rng_seed, rng_counter;
    int n_schedule; /* schedule[0 .. n_schedule): learning-rate schedule state, ... */
    double schedule[HEED_CKPT_MAX_SCHEDULE];
    int n_user; /* user[0 .. n_user): free-form strings (UTF-8), e.g. a config or data RNG state */
    struct {
        char key[HEED_CKPT_KEY_LEN];
        char value[HEED_CKPT_VALUE_LEN];
    } user[HEED_CKPT_MAX_USER];
} heed_checkpoint_info;

/* Sets (adds or replaces) a user key. HEED_ERR_ARG, message in heed_ctx_error(ctx) and
 * info unchanged, if info or a string is NULL, the key is empty, a string is too long or
 * not UTF-8, or all HEED_CKPT_MAX_USER slots are taken. */
heed_status heed_checkpoint_info_set(heed_ctx *ctx, heed_checkpoint_info *info, const char *key, const char *value);
/* The value of a user key; NULL when it is not there (or for a NULL info or key). */
const char *heed_checkpoint_info_get(const heed_checkpoint_info *info, const char *key);

/* Saves the parameters of P, the state of opt (NULL: none) and info (NULL: step 0, no
 * schedule, no user keys) to path, atomically: the bytes go to path.tmp.XXXXXX, which is
 * fsynced and renamed over path, and the directory is fsynced. On any error the
 * temporary file is removed and an existing file at path is untouched; a process killed
 * while saving may leave a stale path.tmp.* file (never a half-written path). Returns
 * HEED_ERR_IO / _ARG / _NOMEM with the message in heed_ctx_error(heed_params_ctx(P)). */
heed_status heed_checkpoint_save(heed_params *P, const char *path, heed_optimizer *opt,
                                 const heed_checkpoint_info *info);
/* Loads a checkpoint saved by heed_checkpoint_save into P (same parameter names, shapes
 * and dtype), opt (NULL: the file's optimizer state is skipped; else the same optimizer
 * kind over the same store) and info_out (may be NULL), and restores the ctx RNG state.
 * The whole file is validated and read before anything changes -- every number against
 * its range too: counts in [0, 2^53], parameters finite, optimizer state finite and
 * second moments >= 0 (docs/checkpoints.md lists the rules). On error P, opt and the ctx
 * are untouched and the message (HEED_ERR_FORMAT for a corrupt or mismatching file,
 * HEED_ERR_IO, HEED_ERR_NOMEM) names the file, what is wrong (the field or tensor and
 * element) and found vs expected. Saving refuses (HEED_ERR_NUMERIC) values that loading
 * would refuse. */
heed_status heed_checkpoint_load(heed_params *P, const char *path, heed_optimizer *opt, heed_checkpoint_info *info_out);
/* The same from the bytes of a checkpoint in memory. */
heed_status heed_checkpoint_load_memory(heed_params *P, const void *data, size_t size, heed_optimizer *opt,
                                        heed_checkpoint_info *info_out);

/* A checkpoint's metadata (step, epoch, RNG state, schedule state, user keys) into *info
 * without loading it: for a program that must see how a checkpoint was made (its model
 * settings in a user key, say) before building the model that loads it. Only the header
 * is read, and it is checked as heed_checkpoint_load checks it (memory stays a small
 * multiple of the header, at most 100 MiB); the ctx's RNG state is not changed. A file
 * that is not a heed checkpoint (plain weights, a cut or corrupt file, a user value over
 * HEED_CKPT_VALUE_LEN - 1 bytes) is HEED_ERR_FORMAT, naming the file and the rule;
 * HEED_ERR_IO when it cannot be opened, HEED_ERR_ARG for NULL. *info is written only on
 * success. heed_checkpoint_info_get then reads a user key (NULL when missing). */
heed_status heed_checkpoint_read_info(heed_ctx *ctx, const char *path, heed_checkpoint_info *info);
/* The same from the bytes of a checkpoint in memory. */
heed_status heed_checkpoint_read_info_memory(heed_ctx *ctx, const void *data, size_t size, heed_checkpoint_info *info);

/* Plain safetensors weights, to move parameters to and from other frameworks (PyTorch's
 * state_dict names and layouts: see docs/checkpoints.md). Export writes every parameter
 * under its name, atomically as above. Import reads tensors by parameter name, converting
 * F32 <-> F64 to the store's dtype; shapes must match exactly. strict: every parameter
 * must be in the file and every tensor of the file must be a parameter; otherwise the
 * parameters found are loaded, the others left as they are, extra tensors ignored (at
 * least one must match). Validation happens before anything changes, as for load. */
heed_status heed_safetensors_export(heed_params *P, const char *path);
heed_status heed_safetensors_import(heed_params *P, const char *path, bool strict);
heed_status heed_safetensors_import_memory(heed_params *P, const void *data, size_t size, bool strict);

#ifdef __cplusplus
}
#endif
#endif
