/* The MPI layer (fibvid/dist.h): rank and size, the threads of a rank, agreeing on errors and stop requests,
 * sums, same-bytes checks and stopping every rank. The MPI calls live in the module fibvid-mpi.so (dist_mpi.c),
 * loaded only when a launcher started this process as one of several: linking libmpi into libfibvid would cost
 * every command ~15 ms of start-up (libmpi, open-rte, open-pal, hwloc, libevent, udev: scripts/bench_startup.sh).
 * Built without MPI (no FV_HAVE_MPI), or in a process started alone, this is rank 0 of 1 and every collective
 * is the identity. Only the main thread calls MPI (MPI_THREAD_FUNNELED). */
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FV_HAVE_MPI
#include <dlfcn.h>
#endif

#include "fibvid/dist.h"
#include "dist/dist_mpi.h"
#include "util/util.h"

static int g_init = 0; /* fv_dist_init ran */
#ifdef FV_HAVE_MPI
static int g_mpi = 0;                    /* MPI_Init_thread ran */
static const FvDistMpiOps *g_ops = NULL; /* the loaded module */
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
    int sharing = 1;
    if (getenv("OMP_NUM_THREADS") || sched_getaffinity(0, sizeof(mine), &mine) != 0 ||
        g_ops->node_sharing(&mine, (int)sizeof(mine), &sharing) < 0)
        return;
    g_threads = FV_MAX(1, CPU_COUNT(&mine) / FV_MAX(1, sharing));
    fv_set_num_threads(g_threads);
}

/* fibvid-mpi.so: beside the library that holds this code (libfibvid.so, or the program linking it statically),
 * then where it is installed, then in the build tree; FIBVID_MPI_MODULE names another. Loaded RTLD_GLOBAL: Open
 * MPI's own plugins resolve libmpi's symbols through the global scope. */
static int load_module(void)
{
    if (g_ops)
        return 0;
    char here[4096] = "";
    Dl_info info;
    if (dladdr((void *)load_module, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash)
            snprintf(here, sizeof(here), "%.*s/fibvid-mpi.so", (int)(slash - info.dli_fname), info.dli_fname);
    }
    const char *env = getenv("FIBVID_MPI_MODULE");
    const char *tries[] = { env && *env ? env : NULL, here[0] ? here : NULL, FV_MPI_MODULE_INSTALLED,
                            FV_MPI_MODULE_BUILT };
    char why[1024] = "not found";
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        if (!tries[i] || (i > 0 && access(tries[i], F_OK) != 0))
            continue;
        void *h = dlopen(tries[i], RTLD_NOW | RTLD_GLOBAL);
        if (!h) {
            const char *e = dlerror();
            snprintf(why, sizeof(why), "%s", e ? e : tries[i]);
            continue;
        }
        const FvDistMpiOps *ops = (const FvDistMpiOps *)dlsym(h, FV_DIST_MPI_SYMBOL);
        if (!ops || ops->abi != FV_DIST_MPI_ABI) {
            snprintf(why, sizeof(why), "%s: not this build's MPI module", tries[i]);
            dlclose(h);
            continue;
        }
        g_ops = ops;
        return 0;
    }
    return fv_error(FV_EIO, "cannot load fibvid's MPI module fibvid-mpi.so (%s)", why);
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
        int r = 0, s = 1, ret;
        if ((ret = load_module()) < 0)
            return fv_error(ret, "started by %s as one of %d processes: %s", who, n, fv_last_error());
        if (g_ops->init(&r, &s) < 0)
            return fv_error(FV_EIO, "started by %s as one of %d processes, but MPI cannot start", who, n);
        g_mpi = 1;
        g_rank = r;
        g_size = s;
        if (n > 1 && s != n) {
            g_ops->finalize();
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
        g_ops->finalize();
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
        int out[2] = { ret < 0 ? g_size - g_rank : 0, flag != 0 };
        if (g_ops->max_int(out, 2) < 0)
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
        if (g_ops->bcast(&m, (int)sizeof(m), who) < 0)
            return fv_error(FV_EIO, "rank %d of %d: MPI_Bcast failed", g_rank, g_size);
        m.msg[sizeof(m.msg) - 1] = '\0';
        return fv_error(m.code < 0 ? m.code : FV_EIO, "rank %d of %d: %s", who, g_size, m.msg);
    }
#endif
    return ret;
}

int fv_dist_sum_f32(float *buf, size_t n)
{
#ifdef FV_HAVE_MPI
    if (g_size > 1 && g_ops->sum_f32(buf, n) < 0)
        return fv_error(FV_EIO, "rank %d of %d: MPI_Allreduce failed", g_rank, g_size);
#endif
    (void)buf;
    (void)n;
    return 0;
}

int fv_dist_sum_f64(double *buf, size_t n)
{
#ifdef FV_HAVE_MPI
    if (g_size > 1 && g_ops->sum_f64(buf, n) < 0)
        return fv_error(FV_EIO, "rank %d of %d: MPI_Allreduce failed", g_rank, g_size);
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
        if (g_ops->bcast(&h0, (int)sizeof(h0), 0) < 0)
            return fv_error(FV_EIO, "rank %d of %d: MPI_Bcast failed", g_rank, g_size);
        int out = h != h0 ? g_size - g_rank : 0;
        if (g_ops->max_int(&out, 1) < 0)
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
        g_ops->abort(code);
#endif
    exit(code);
}
