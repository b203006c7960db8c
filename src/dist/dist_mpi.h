/* The MPI module's interface (fibvid-mpi.so, built from dist_mpi.c when MPI is found): the few collective
 * operations dist.c needs. libfibvid loads the module (and with it libmpi and its ~10 libraries) only when a
 * launcher started the process as one of several ranks, so no other command pays for MPI at start-up.
 * Every function returns 0 on success and -1 when MPI reports an error; only the main thread calls them. */
#ifndef FV_DIST_MPI_H
#define FV_DIST_MPI_H

#include <stddef.h>
#include <stdint.h>

#define FV_DIST_MPI_ABI 1
#define FV_DIST_MPI_SYMBOL "fv_dist_mpi_ops"

typedef struct FvDistMpiOps {
    int abi; /* FV_DIST_MPI_ABI: a module from another build is refused */
    /* MPI_Init_thread (funneled), errors returned as codes; the world rank and size */
    int (*init)(int *rank, int *size);
    void (*finalize)(void);
    /* how many ranks on this node hold the affinity mask @mask (@bytes long) that this rank holds (>= 1) */
    int (*node_sharing)(const void *mask, int bytes, int *sharing);
    /* element-wise maximum of @n ints over the ranks, in place */
    int (*max_int)(int *buf, int n);
    /* sums over the ranks, in place (any count: split into int-sized pieces) */
    int (*sum_f32)(float *buf, size_t n);
    int (*sum_f64)(double *buf, size_t n);
    /* @bytes from rank @root to every rank */
    int (*bcast)(void *buf, int bytes, int root);
    /* stop every rank with exit code @code (does not return) */
    void (*abort)(int code);
} FvDistMpiOps;

#endif /* FV_DIST_MPI_H */
