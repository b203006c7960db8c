/* The MPI layer (fibvid/dist.h): rank and size, the threads of a rank, agreeing on errors and stop requests,
 * sums, same-bytes checks and stopping every rank. Built without MPI (no FV_HAVE_MPI), one process is rank 0
 * of 1 and every collective is the identity. Only the main thread calls MPI (MPI_THREAD_FUNNELED). */
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FV_HAVE_MPI
#include <mpi.h>
#endif

#include "fibvid/dist.h"
#include "util/util.h"

static int g_init = 0; /* fv_dist_init ran */
#ifdef FV_HAVE_MPI
static int g_mpi = 0;  /* MPI_Init_thread ran */
#endif
static int32_t g_rank = 0, g_size = 1, g_threads = 0;

int fv_dist_built(void)
{
#ifdef FV_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

static int32_t env_int(const char *name, int32_t dflt)
{
    const char *v = getenv(name);
    char *end;
    long x = v && *v ? strtol(v, &end, 10) : -1;
    return v && *v && !*end && x >= 0 && x <= INT32_MAX ? (int32_t)x : dflt;
}

int32_t fv_dist_launched(int32_t *rank, const char **name)
{
    static const struct { const char *size, *rank, *name; } L[] = {
        { "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "mpirun" },
        { "PMI_SIZE", "PMI_RANK", "an MPI launcher (PMI)" },
        { "PMIX_SIZE", "PMIX_RANK", "an MPI launcher (PMIx)" },
        { "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "srun" },
    };
    for (size_t i = 0; i < sizeof(L) / sizeof(L[0]); i++) {
        const int32_t n = env_int(L[i].size, 0);
        if (n >= 1) {
            if (rank)
                *rank = env_int(L[i].rank, 0);
            if (name)
                *name = L[i].name;
            return n;
        }
    }
    if (rank)
        *rank = 0;
    if (name)
        *name = NULL;
    return 1;
}

int32_t fv_dist_rank(void)
{
    return g_rank;
}

int32_t fv_dist_size(void)
{
    return g_size;
}

int32_t fv_dist_threads(void)
{
    return g_threads;
}

/* FNV-1a over 8-byte words (then the tail): a checksum, not a cryptographic hash. */
static uint64_t checksum(const void *buf, size_t bytes)
{
    const unsigned char *p = buf;
    uint64_t h = 1469598103934665603ull;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 1099511628211ull;
        h ^= h >> 29;
    }
    for (; i < bytes; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h ^ bytes;
}

#ifdef FV_HAVE_MPI
/* The ranks of this node whose affinity mask is this rank's share its cores. */
static void set_threads(void)
{
    cpu_set_t mine;
    if (getenv("OMP_NUM_THREADS") || sched_getaffinity(0, sizeof(mine), &mine) != 0)
        return;
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return;
    int n = 1;
    MPI_Comm_size(node, &n);
    cpu_set_t *all = malloc(sizeof(cpu_set_t) * (size_t)n);
    if (all && MPI_Allgather(&mine, (int)sizeof(mine), MPI_BYTE, all, (int)sizeof(mine), MPI_BYTE, node) ==
                   MPI_SUCCESS) {
        int sharing = 0;
        for (int i = 0; i < n; i++)
            sharing += CPU_EQUAL(&all[i], &mine) != 0;
        g_threads = FV_MAX(1, CPU_COUNT(&mine) / FV_MAX(1, sharing));
        fv_set_num_threads(g_threads);
    }
    free(all);
    MPI_Comm_free(&node);
}
#endif

int fv_dist_init(void)
{
    if (g_init)
        return 0;
    int32_t rank;
    const char *who;
    const int32_t n = fv_dist_launched(&rank, &who);
#ifdef FV_HAVE_MPI
    if (n > 1 || getenv("OMPI_COMM_WORLD_SIZE")) {
        int provided = 0, r = 0, s = 1;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return fv_error(FV_EIO, "started by %s as one of %d processes, but MPI cannot start", who, n);
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
        MPI_Comm_size(MPI_COMM_WORLD, &s);
        g_mpi = 1;
        g_rank = r;
        g_size = s;
        /* errors come back as codes, so every rank can agree on them (fv_dist_agree) */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        if (n > 1 && s != n) {
            MPI_Finalize();
            g_mpi = 0;
            g_rank = 0;
            g_size = 1;
            return fv_error(FV_ENOTSUP, "started by %s as one of %d processes, but MPI sees %d: the launcher does not "
                            "wire the processes up (under Slurm: srun --mpi=pmix, or the MPI plugin of the site)",
                            who, n, s);
        }
        set_threads();
    }
#else
    if (n > 1)
        return fv_error(FV_ENOTSUP, "started by %s as rank %d of %d processes, but this fibvid was built without MPI "
                        "(rebuild with libopenmpi-dev installed: meson setup -Dmpi=enabled); each process would run "
                        "alone into the same files", who, rank, n);
#endif
    g_init = 1;
    return 0;
}

void fv_dist_finalize(void)
{
#ifdef FV_HAVE_MPI
    if (g_mpi) {
        MPI_Finalize();
        g_mpi = 0;
    }
#endif
    g_rank = 0;
    g_size = 1;
    g_init = 0;
}

int fv_dist_agree(int ret, int flag, int *any_flag)
{
    if (ret > 0)
        ret = 0;
    if (any_flag)
        *any_flag = flag != 0;
#ifdef FV_HAVE_MPI
    if (g_size > 1) {
        /* {size - rank of a failed rank (0 when fine), flag}: MAX picks the lowest failed rank */
        int in[2] = { ret < 0 ? g_size - g_rank : 0, flag != 0 }, out[2] = { 0, 0 };
        if (MPI_Allreduce(in, out, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
            return fv_error(FV_EIO, "rank %d of %d: MPI_Allreduce failed", g_rank, g_size);
        if (any_flag)
            *any_flag = out[1];
        if (!out[0])
            return 0;
        const int who = g_size - out[0];
        struct { int code; char msg[1536]; } m;
        memset(&m, 0, sizeof(m));
        if (who == g_rank) {
            m.code = ret;
            snprintf(m.msg, sizeof(m.msg), "%s", fv_last_error());
        }
        if (MPI_Bcast(&m, (int)sizeof(m), MPI_BYTE, who, MPI_COMM_WORLD) != MPI_SUCCESS)
            return fv_error(FV_EIO, "rank %d of %d: MPI_Bcast failed", g_rank, g_size);
        m.msg[sizeof(m.msg) - 1] = '\0';
        return fv_error(m.code < 0 ? m.code : FV_EIO, "rank %d of %d: %s", who, g_size, m.msg);
    }
#endif
    return ret;
}

#ifdef FV_HAVE_MPI
static int sum(void *buf, size_t n, size_t size, MPI_Datatype t)
{
    for (size_t off = 0; off < n;) { /* MPI counts are ints */
        const size_t k = FV_MIN(n - off, (size_t)1 << 30);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * size, (int)k, t, MPI_SUM, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
            return fv_error(FV_EIO, "rank %d of %d: MPI_Allreduce failed", g_rank, g_size);
        off += k;
    }
    return 0;
}
#endif

int fv_dist_sum_f32(float *buf, size_t n)
{
#ifdef FV_HAVE_MPI
    if (g_size > 1)
        return sum(buf, n, sizeof(float), MPI_FLOAT);
#endif
    (void)buf;
    (void)n;
    return 0;
}

int fv_dist_sum_f64(double *buf, size_t n)
{
#ifdef FV_HAVE_MPI
    if (g_size > 1)
        return sum(buf, n, sizeof(double), MPI_DOUBLE);
#endif
    (void)buf;
    (void)n;
    return 0;
}

int fv_dist_check_same(const void *buf, size_t bytes, const char *what)
{
    const uint64_t h = checksum(buf, bytes);
#ifdef FV_HAVE_MPI
    if (g_size > 1) {
        uint64_t h0 = h;
        if (MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
            return fv_error(FV_EIO, "rank %d of %d: MPI_Bcast failed", g_rank, g_size);
        int in = h != h0 ? g_size - g_rank : 0, out = 0;
        if (MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
            return fv_error(FV_EIO, "rank %d of %d: MPI_Allreduce failed", g_rank, g_size);
        if (out)
            return fv_error(FV_EINVAL, "the %s of rank %d differ from rank 0's (%zu bytes, checksums differ): every "
                            "rank must start from the same state", what, g_size - out, bytes);
    }
#endif
    (void)h;
    (void)what;
    return 0;
}

void fv_dist_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
#ifdef FV_HAVE_MPI
    if (g_mpi && g_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}
