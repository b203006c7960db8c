/* fibvid public API: running as one of several processes (MPI ranks) — the thin layer over MPI that the data-
 * parallel fit loop and `evaluate`'s shards use: rank and size, threads per rank, agreeing on errors, summing
 * buffers, checking that every rank holds the same bytes, stopping every rank.
 *
 * MPI is optional at build time (meson -Dmpi=auto|enabled|disabled). Without it every call works as for one
 * process (rank 0 of 1), and fv_dist_init() refuses a run that a launcher (mpirun, srun) started as one of
 * several processes, which would otherwise train or evaluate the same thing N times into the same files.
 * Only the calling (main) thread may call these functions (MPI_THREAD_FUNNELED). */
#ifndef FIBVID_DIST_H
#define FIBVID_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "fibvid/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** 1 when this build of libfibvid has MPI. */
FV_API int fv_dist_built(void);

/** What the environment says about a launcher: the number of processes it started (1 when none; Open MPI's
 *  OMPI_COMM_WORLD_SIZE, PMI_SIZE / PMIX, Slurm's SLURM_STEP_NUM_TASKS of an `srun` step), this process's
 *  rank among them in *@p rank and the launcher's name in *@p name (either may be NULL). No MPI call. */
FV_API int32_t fv_dist_launched(int32_t *rank, const char **name);

/**
 * Join the other ranks when a launcher started this process as one of several (MPI_Init_thread; a process
 * started alone stays rank 0 of 1 without touching MPI), then set the default thread count of this rank: the
 * cores of its affinity mask divided among the ranks of its node that share that mask, so that N ranks on one
 * node do not oversubscribe it (fv_set_num_threads() afterwards overrides it; OMP_NUM_THREADS is respected).
 * Idempotent. Returns 0, or FV_ENOTSUP when a launcher started several processes and this build has no MPI
 * (fv_last_error() says so), or FV_EIO when MPI cannot start.
 */
FV_API int fv_dist_init(void);

/** Leave MPI (after the last collective call); nothing without it. */
FV_API void fv_dist_finalize(void);

FV_API int32_t fv_dist_rank(void);      /**< 0-based */
FV_API int32_t fv_dist_size(void);      /**< ranks in all (1 without MPI) */
FV_API int32_t fv_dist_threads(void);   /**< the default thread count fv_dist_init() chose (0: it chose none) */

/**
 * Collective: every rank passes its own status @p ret (0 or a negative code); every rank returns the code of the
 * lowest-numbered rank that failed, with fv_last_error() set everywhere to that rank's message prefixed by
 * "rank K of N: " (N > 1), or 0 when none failed. @p flag (0/1) is OR-ed over the ranks into *@p any_flag when
 * that is not NULL (the fit loop agrees on a stop request this way). With one process: returns @p ret.
 */
FV_API int fv_dist_agree(int ret, int flag, int *any_flag);

/** Collective: sum @p n floats / doubles over the ranks, in place, the result the same on every rank. Returns 0
 *  or FV_EIO. */
FV_API int fv_dist_sum_f32(float *buf, size_t n);
FV_API int fv_dist_sum_f64(double *buf, size_t n);

/** Collective: 0 when every rank holds the same @p bytes at @p buf (compared through a 64-bit checksum), else
 *  FV_EINVAL on every rank naming @p what and the lowest rank whose copy differs from rank 0's. */
FV_API int fv_dist_check_same(const void *buf, size_t bytes, const char *what);

/** Stop every rank at once (MPI_Abort) with exit code @p code after this rank printed its message; exit(@p code)
 *  with one process. For failures the others cannot learn of through fv_dist_agree(). */
FV_API void fv_dist_abort(int code);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_DIST_H */
