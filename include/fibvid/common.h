/* fibvid public API: what every part shares — version, error codes, error messages, threads. */
#ifndef FIBVID_COMMON_H
#define FIBVID_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/** Marks the library's public functions: the only symbols libfibvid exports (it is built with hidden
 *  visibility). */
#ifndef FV_API
#if defined(__GNUC__) || defined(__clang__)
#define FV_API __attribute__((visibility("default")))
#else
#define FV_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define FIBVID_VERSION_MAJOR 0
#define FIBVID_VERSION_MINOR 1
#define FIBVID_VERSION_PATCH 0

/**
 * Error codes. Every function that can fail returns 0 on success or a negative errno-style value,
 * the same convention as FFmpeg's AVERROR(e) = -e, so codes can be passed through unchanged.
 *
 * FV_EINPUT-class codes (the caller's input is wrong: missing or malformed file, no video stream,
 * too few frames, bad model file) are told apart from runtime failures (out of memory, internal
 * error) by fv_error_is_input().
 */
#define FV_OK        0
#define FV_EINVAL   (-EINVAL)    /**< invalid argument or malformed data */
#define FV_ENOENT   (-ENOENT)    /**< file does not exist */
#define FV_EIO      (-EIO)       /**< read or write failed, truncated file */
#define FV_ENOMEM   (-ENOMEM)    /**< allocation failed */
#define FV_ENODATA  (-ENODATA)   /**< no video stream, no frames, too few frames */
#define FV_ENOTSUP  (-ENOTSUP)   /**< valid but unsupported (dtype, codec, architecture) */
#define FV_ERANGE   (-ERANGE)    /**< value out of range (offsets, shapes) */

/** Library version string, e.g. "0.1.0". Static storage. */
FV_API const char *fv_version(void);

/**
 * Human-readable, one-line message describing the most recent failure in the calling thread,
 * naming the file or function and the reason (e.g. "clip.mp4: no video stream").
 * Returns "" when nothing failed yet. The string stays valid until the next fibvid call in the
 * same thread fails.
 */
FV_API const char *fv_last_error(void);

/** 1 when @p code means the caller's input was bad (exit code 2 in the CLI), 0 otherwise. */
FV_API int fv_error_is_input(int code);

/** Library log verbosity: 0 (default) keeps FFmpeg's own messages quiet, since fibvid reports every failure
 *  itself in one line (fv_last_error()); 1 shows FFmpeg's warnings and errors; 2 adds its info messages. */
FV_API void fv_set_verbosity(int32_t level);

/** Select the fp32 matrix-product backend by name: "onednn" (default when built with oneDNN), "openblas",
 *  or "reference" (plain C, slow: for checks). Returns 0, or FV_EINVAL for a name not built in. */
FV_API int fv_set_gemm_backend(const char *name);

/** Name of the matrix-product backend in use. Static storage. */
FV_API const char *fv_gemm_backend_current(void);

/** The matrix-product libraries built in, their versions and the instruction set oneDNN runs (e.g.
 *  "oneDNN 3.0.0 (ISA avx512_core_bf16); OpenBLAS OpenBLAS 0.3.21 ... (core Zen)"). Static storage. */
FV_API const char *fv_gemm_describe(void);

/** The oneDNN and OpenBLAS versions fibvid was built against, without loading them (they are loaded on first
 *  use; fv_gemm_describe() loads them and says what runs). Static storage. */
FV_API const char *fv_libraries_built(void);

/** Source revision the library was built from (`git describe`; "unknown" outside a git checkout). */
FV_API const char *fv_build_commit(void);

/** Number of threads fibvid's own loops and the BLAS library use; 0 or less = all cores. */
FV_API void fv_set_num_threads(int32_t n);

/** Write @p n bytes to @p path atomically: a temporary file beside it, fsync(), rename(); a kill never leaves
 *  half a file. Returns 0 or a negative code with fv_last_error() naming the file and the OS reason. */
FV_API int fv_write_file_atomic(const char *path, const void *data, size_t n);

/** Threads fibvid uses: what fv_set_num_threads() set, else OpenMP's default (all cores). */
FV_API int32_t fv_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_COMMON_H */
