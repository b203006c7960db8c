/* Safetensors reading (memory-mapped, every header rule validated) and writing. */
#ifndef FV_SAFETENSORS_H
#define FV_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum FvDtype {
    FV_DT_F32 = 0,
    FV_DT_F16,
    FV_DT_BF16,
    FV_DT_OTHER, /* a valid safetensors dtype that fibvid does not compute with (F64, I64, U8, ...) */
} FvDtype;

#define FV_ST_MAX_DIMS 8

typedef struct FvTensorInfo {
    char       *name;
    FvDtype     dtype;
    char        dtype_name[8];         /* as written in the header, e.g. "F32" */
    int32_t     ndim;
    int64_t     shape[FV_ST_MAX_DIMS];
    size_t      begin, end;            /* byte offsets into the data section */
    const void *data;                  /* points into the mapping */
} FvTensorInfo;

typedef struct FvSafetensors FvSafetensors;

/* Map @path and validate it completely: 8-byte header length, header within the file, UTF-8 JSON object,
 * every tensor entry well-formed (dtype, shape, data_offsets), offsets inside the data section, in order,
 * no overlaps, byte size == product(shape) * dtype size, data section fully covered.
 * Errors name the file and the rule broken. */
int fv_st_open(FvSafetensors **out, const char *path);
void fv_st_close(FvSafetensors **st);

size_t fv_st_count(const FvSafetensors *st);
const FvTensorInfo *fv_st_tensor(const FvSafetensors *st, size_t i);
const FvTensorInfo *fv_st_find(const FvSafetensors *st, const char *name);
/* Value of a `__metadata__` string entry, or NULL. */
const char *fv_st_metadata(const FvSafetensors *st, const char *key);
const char *fv_st_path(const FvSafetensors *st);

/* Give back the resident pages of @n bytes at @p when they lie in the mapping (whole pages inside the range): a
 * weight copied elsewhere stops counting in the process's memory; reading it again faults it back in. */
void fv_st_drop_pages(const FvSafetensors *st, const void *p, size_t n);
/* The same for the whole file: every page the process has mapped of it (read-ahead and a large page-cache folio
 * can map far more than what was read). */
void fv_st_drop_all(const FvSafetensors *st);

/* Get tensor @name as F32 with exactly the shape @shape[0..ndim-1]. F32 data that is 4-byte aligned in the
 * mapping is returned in place; anything else (F16, BF16, unaligned F32) is converted into @dst, which must
 * hold product(shape) floats (pass NULL to ask: returns 1 when conversion space is needed, 0 when not).
 * Errors: missing tensor, wrong shape, unsupported dtype — each naming the file and tensor. */
int fv_st_get_f32(const FvSafetensors *st, const char *name, int32_t ndim, const int64_t *shape,
                  float *dst, const float **out);

/* Writing. */
typedef struct FvStWriteTensor {
    const char  *name;
    int32_t      ndim;
    int64_t      shape[FV_ST_MAX_DIMS];
    const float *data;                 /* F32 */
} FvStWriteTensor;

/* Write F32 tensors and string metadata (keys[i] -> values[i]) to @path (atomically: temp file + rename). */
int fv_st_write(const char *path, const FvStWriteTensor *tensors, size_t n, const char *const *meta_keys,
                const char *const *meta_values, size_t nmeta);

#endif /* FV_SAFETENSORS_H */
