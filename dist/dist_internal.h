/* What the files of dist/ share. Not installed. */
#ifndef HEED_DIST_INTERNAL_H
#define HEED_DIST_INTERNAL_H

#include "../graph/internal.h"
#include "heed/config.h"

/* Each rank's random op streams start at rank * 2^48: disjoint for 2^48 random ops. */
#define HEED_DIST_STREAM_SHIFT 48

/* One past the last parameter element in P's flat buffers (padding between parameters
 * included, the unused capacity after the last one not). */
int64_t heed__dist_flat_end(const heed_params *P);

#ifdef HEED_HAVE_MPI
#include <mpi.h>

/* The world as heed_dist_init found it. */
typedef struct {
    bool started;   /* heed_dist_init ran */
    bool mpi;       /* MPI runs (started by a launcher) */
    bool ours;      /* heed called MPI_Init (and will call MPI_Finalize) */
    bool finalized; /* heed_dist_finalize ran */
    int rank, size;
} heed_dist_world;
extern heed_dist_world heed__world;

/* HEED_OK when every rank declared the same parameters in the same order; otherwise
 * HEED_ERR_STATE on every rank, the message (prefixed by fn) naming the first
 * parameter that differs, on which ranks. Collective over MPI_COMM_WORLD. */
heed_status heed__dist_check_layout(heed_params *P, const char *fn);
static inline MPI_Datatype heed__dist_type(heed_dtype dt) { return dt == HEED_F64 ? MPI_DOUBLE : MPI_FLOAT; }
/* Elements per MPI call: counts are ints in MPI. */
#define HEED_DIST_CHUNK ((int64_t)1 << 30)
/* Divides elements [begin, end) of P's gradients by the number of ranks. */
void heed__dist_average(heed_params *P, int64_t begin, int64_t end);
#endif

#endif
