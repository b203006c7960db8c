/* fibvid-mpi.so: the MPI calls of the dist layer (dist_mpi.h), linked with libmpi and loaded by dist.c only in a
 * process that a launcher started as one of several ranks. Self-contained: it uses nothing of libfibvid. */
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "dist/dist_mpi.h"

#define FV_MIN_SIZE(a, b) ((a) < (b) ? (a) : (b))

static int init(int *rank, int *size)
{
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return -1;
    /* errors come back as codes, so every rank can agree on them (fv_dist_agree) */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (MPI_Comm_rank(MPI_COMM_WORLD, rank) != MPI_SUCCESS || MPI_Comm_size(MPI_COMM_WORLD, size) != MPI_SUCCESS)
        return -1;
    return 0;
}

static void finalize(void)
{
    MPI_Finalize();
}

static int node_sharing(const void *mask, int bytes, int *sharing)
{
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return -1;
    int n = 1, ret = -1;
    MPI_Comm_size(node, &n);
    unsigned char *all = malloc((size_t)bytes * (size_t)n);
    if (all && MPI_Allgather(mask, bytes, MPI_BYTE, all, bytes, MPI_BYTE, node) == MPI_SUCCESS) {
        int same = 0;
        for (int i = 0; i < n; i++)
            same += memcmp(all + (size_t)i * (size_t)bytes, mask, (size_t)bytes) == 0;
        *sharing = same > 0 ? same : 1;
        ret = 0;
    }
    free(all);
    MPI_Comm_free(&node);
    return ret;
}

static int max_int(int *buf, int n)
{
    return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
}

static int sum(void *buf, size_t n, size_t size, MPI_Datatype t)
{
    for (size_t off = 0; off < n;) { /* MPI counts are ints */
        const size_t k = FV_MIN_SIZE(n - off, (size_t)1 << 30);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * size, (int)k, t, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return -1;
        off += k;
    }
    return 0;
}

static int sum_f32(float *buf, size_t n)
{
    return sum(buf, n, sizeof(float), MPI_FLOAT);
}

static int sum_f64(double *buf, size_t n)
{
    return sum(buf, n, sizeof(double), MPI_DOUBLE);
}

static int bcast(void *buf, int bytes, int root)
{
    return MPI_Bcast(buf, bytes, MPI_BYTE, root, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
}

static void abort_all(int code)
{
    MPI_Abort(MPI_COMM_WORLD, code);
}

__attribute__((visibility("default"))) extern const FvDistMpiOps fv_dist_mpi_ops;
const FvDistMpiOps fv_dist_mpi_ops = {
    .abi = FV_DIST_MPI_ABI,
    .init = init,
    .finalize = finalize,
    .node_sharing = node_sharing,
    .max_int = max_int,
    .sum_f32 = sum_f32,
    .sum_f64 = sum_f64,
    .bcast = bcast,
    .abort = abort_all,
};
