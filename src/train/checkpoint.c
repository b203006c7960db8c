/* Checkpoints of the fit loop: writing one atomically (weights, optimizer state, then checkpoint.json naming
 * them), reading one back for --resume (settings compared with the run's, every number bounded), and the
 * clean-up of what an interrupted write leaves behind. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fibvid/train.h"
#include "train/checkpoint.h"
#include "util/util.h"

/* Write @o to @path atomically (temporary file, fsync, rename). */
static int write_json_atomic(const char *path, const json_t *o)
{
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    const size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) {
        free(text);
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    }
    memcpy(t2 + n, "\n", 2);
    int ret = fv_write_file_atomic(path, t2, n + 1);
    free(t2);
    return ret;
}


/* The first setting of @now that @old (a checkpoint's) records otherwise, as "key: now (the run's old)" into
 * @buf; 0 when they agree. Both values are printed whole: long paths are what tells them apart. */
static int settings_differ(const json_t *old, const json_t *now, char *buf, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)now, key, v) {
        const json_t *o = json_object_get(old, key);
        if (o && json_equal(o, v))
            continue;
        char *a = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        char *b = o ? json_dumps(o, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        snprintf(buf, n, "\"%s\" is %s, the run's %s", key, a ? a : "?", b ? b : "(not recorded)");
        free(a);
        free(b);
        return 1;
    }
    json_object_foreach((json_t *)old, key, v) {
        if (!json_object_get(now, key)) {
            char *b = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            snprintf(buf, n, "\"%s\" is not set, the run's %s", key, b ? b : "?");
            free(b);
            return 1;
        }
    }
    return 0;
}


/* The integer @key of @o (a checkpoint.json of @path) into *@v: an error naming the file and the field unless it
 * is an integer in [@lo, @hi]; absent, *@v = @dflt when @dflt >= @lo (an optional field), else an error. Every
 * integer the trainer reads back is bounded here, so no later arithmetic on it can overflow. */
static int ck_int(const char *path, const json_t *o, const char *key, int64_t lo, int64_t hi, int64_t dflt,
                  int64_t *v)
{
    const json_t *j = json_object_get(o, key);
    if (!j && dflt >= lo) {
        *v = dflt;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
        char got[64];
        if (json_is_integer(j))
            snprintf(got, sizeof(got), "%lld", (long long)json_integer_value(j));
        else
            snprintf(got, sizeof(got), "%s", j ? "not an integer" : "missing");
        return fv_error(FV_EINVAL, "%s: \"%s\": %s (an integer %lld..%lld)", path, key, got, (long long)lo,
                        (long long)hi);
    }
    *v = (int64_t)json_integer_value(j);
    return 0;
}

/* Whether @name is one of the checkpoint files the trainer writes, and so one it may delete: a plain name in
 * the output directory (no '/'), "ckpt-epoch*.safetensors" of letters, digits, '-' and '.'. A hand-edited
 * checkpoint.json naming anything else is refused, never unlinked. */
static int is_ckpt_name(const char *name)
{
    static const char pre[] = "ckpt-epoch", suf[] = ".safetensors";
    const size_t n = name ? strlen(name) : 0;
    if (n <= strlen(pre) + strlen(suf) || strncmp(name, pre, strlen(pre)) || strcmp(name + n - strlen(suf), suf))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '.')
            return 0;
    return strstr(name, "..") == NULL;
}

/* Whether @name is a temporary file of an atomic write of one of the run's files ("X.tmp" or "X.tmp.XXXXXX",
 * mkstemp's six characters): what a kill during a checkpoint write leaves behind. */
static int is_run_tmp(const char *name)
{
    static const char *const fixed[] = { "checkpoint.json", "run.json", "train.jsonl", "best.safetensors",
                                         "model.safetensors" };
    const char *t = strstr(name, ".tmp");
    while (t && strstr(t + 1, ".tmp"))
        t = strstr(t + 1, ".tmp");
    if (!t || t == name)
        return 0;
    const char *rest = t + 4;
    if (*rest) {
        if (rest[0] != '.' || strlen(rest) != 7)
            return 0;
        for (int i = 1; i < 7; i++)
            if (!isalnum((unsigned char)rest[i]))
                return 0;
    }
    char base[256];
    const size_t bn = (size_t)(t - name);
    if (bn >= sizeof(base))
        return 0;
    memcpy(base, name, bn);
    base[bn] = '\0';
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (!strcmp(base, fixed[i]))
            return 1;
    return is_ckpt_name(base);
}

/* Remove the temporary files that interrupted writes of the run left in @dir (on start and resume; a
 * base-size model leaves about a gigabyte per kill). Nothing else in the directory is touched. */
void fv_ckpt_remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        struct stat st;
        if (is_run_tmp(e->d_name) && !fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode))
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* The weights and optimizer state of @at, then checkpoint.json pointing at them (atomically: until it is renamed
 * the previous checkpoint stays whole), then the previous checkpoint's files go. *@ck is the current
 * checkpoint.json (NULL: none), replaced. @part: the unfinished epoch's running figures, or NULL. */
int fv_ckpt_write(const FvFitSettings *s, const FvModel *m, const FvTrainer *tr, const char *ck_path,
                            json_t *settings, const FvFitResult *r, const FvCkptAt *at, const json_t *part, json_t **ck)
{
    char wname[64], oname[64];
    int ret;
    if (at->epoch_step > 0) {
        snprintf(wname, sizeof(wname), "ckpt-epoch%04lld-step%06lld.safetensors", (long long)at->epoch + 1,
                 (long long)at->step);
        snprintf(oname, sizeof(oname), "ckpt-epoch%04lld-step%06lld.optim.safetensors", (long long)at->epoch + 1,
                 (long long)at->step);
    } else {
        snprintf(wname, sizeof(wname), "ckpt-epoch%04lld.safetensors", (long long)at->epoch);
        snprintf(oname, sizeof(oname), "ckpt-epoch%04lld.optim.safetensors", (long long)at->epoch);
    }
    char *wp = fv_path_join(s->out_dir, wname), *op = fv_path_join(s->out_dir, oname);
    char *bp = fv_path_join(s->out_dir, "best.safetensors");
    if (!wp || !op || !bp)
        ret = fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
    else if ((ret = fv_model_save(m, wp)) >= 0 && (ret = fv_trainer_save_state(tr, op)) >= 0 && at->best)
        ret = fv_model_save(m, bp);
    free(bp);
    const char *old_w = *ck ? json_string_value(json_object_get(*ck, "weights")) : NULL;
    const char *old_o = *ck ? json_string_value(json_object_get(*ck, "optim")) : NULL;
    if (ret < 0) /* a full disk: no half checkpoint stays (the last whole one does) */
        goto fail;
    char *old_wp = is_ckpt_name(old_w) && strcmp(old_w, wname) ? fv_path_join(s->out_dir, old_w) : NULL;
    char *old_op = is_ckpt_name(old_o) && strcmp(old_o, oname) ? fv_path_join(s->out_dir, old_o) : NULL;
    json_t *nck = json_pack("{s:I, s:I, s:I, s:s, s:s, s:f, s:I, s:f, s:O}", "epoch", (json_int_t)at->epoch,
                            "epoch_step", (json_int_t)at->epoch_step, "step", (json_int_t)at->step, "weights", wname,
                            "optim", oname, "best_top1", r->best_top1, "best_epoch", (json_int_t)r->best_epoch,
                            "elapsed_s", at->elapsed, "settings", settings);
    if (nck && part)
        json_object_set(nck, "partial", (json_t *)part);
    ret = nck ? write_json_atomic(ck_path, nck) : fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
    if (ret >= 0) {
        if (old_wp)
            unlink(old_wp);
        if (old_op)
            unlink(old_op);
        json_decref(*ck);
        *ck = nck;
    } else {
        json_decref(nck);
    }
    free(old_wp);
    free(old_op);
fail:
    if (ret < 0) {
        if (wp && (!old_w || strcmp(old_w, wname)))
            unlink(wp);
        if (op && (!old_o || strcmp(old_o, oname)))
            unlink(op);
    }
    free(wp);
    free(op);
    return ret;
}

/* The largest epoch a checkpoint may name: train's --epochs allows 1..100000. */

/* The largest epoch a checkpoint may name: train's --epochs allows 1..100000. */
#define FV_CKPT_MAX_EPOCHS INT64_C(100000)

int fv_ckpt_read(const char *ck_path, const char *out_dir, const json_t *settings, int64_t epochs, int64_t n_clips,
                 json_t **ck, FvCkptResume *cr, int32_t *conflict)
{
    int ret;
    memset(cr, 0, sizeof(*cr));
    cr->step = -1;
    json_error_t jerr;
    if (!(*ck = json_load_file(ck_path, 0, &jerr)))
        return fv_error(FV_EINVAL, "%s: cannot resume: %s", ck_path, jerr.text);
    /* every setting as recorded, except that the epochs may grow (extending the run), and the lists'
     * descriptions, which name their files as given (relative to where the run started): their hashes
     * compare what they hold */
    json_t *ck_settings = json_object_get(*ck, "settings");
    json_t *cmp = json_deep_copy(settings);
    if (!cmp)
        return fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
    static const char *const free_keys[] = { "epochs", "train", "val" };
    for (size_t i = 0; i < sizeof(free_keys) / sizeof(free_keys[0]); i++)
        if (json_is_object(ck_settings) && json_object_get(ck_settings, free_keys[i]))
            json_object_set(cmp, free_keys[i], json_object_get(ck_settings, free_keys[i]));
    /* model and config files by the file they name (runs before these were absolute name them as given) */
    static const char *const file_keys[] = { "init_model", "config" };
    for (size_t i = 0; i < sizeof(file_keys) / sizeof(file_keys[0]); i++) {
        const char *was = json_string_value(json_object_get(ck_settings, file_keys[i]));
        const char *now = json_string_value(json_object_get(cmp, file_keys[i]));
        char *a = was && now ? realpath(was, NULL) : NULL, *b = a ? realpath(now, NULL) : NULL;
        if (a && b && !strcmp(a, b))
            json_object_set(cmp, file_keys[i], json_object_get(ck_settings, file_keys[i]));
        free(a);
        free(b);
    }
    char diff[8192];
    const int differs = !json_is_object(ck_settings) || settings_differ(ck_settings, cmp, diff, sizeof(diff));
    json_decref(cmp);
    if (differs) {
        *conflict = json_is_object(ck_settings);
        ret = fv_error(FV_EINVAL, "%s: cannot resume: %s", ck_path,
                       *conflict ? diff : "no \"settings\"");
        return ret;
    }
    /* bounds: epochs and steps as train's options allow them (--epochs 1..100000; a step of an epoch is
     * one of at most one per clip), clip counts as the data's */
    const int64_t N0 = n_clips, max_steps = FV_CKPT_MAX_EPOCHS * N0;
    const json_t *part = json_object_get(*ck, "partial");
    if ((ret = ck_int(ck_path, *ck, "epoch", 0, FV_CKPT_MAX_EPOCHS, -1, &cr->epoch)) < 0 ||
        (ret = ck_int(ck_path, *ck, "epoch_step", 0, N0, 0, &cr->epoch_step)) < 0 ||
        (ret = ck_int(ck_path, *ck, "step", 0, max_steps, INT64_MAX, &cr->step)) < 0 ||
        (ret = ck_int(ck_path, *ck, "best_epoch", 0, cr->epoch, 0, &cr->best_epoch)) < 0 ||
        (part && (ret = ck_int(ck_path, part, "seen", 0, N0, 0, &cr->part_seen)) < 0) ||
        (part && (ret = ck_int(ck_path, part, "correct", 0, cr->part_seen, 0, &cr->part_correct)) < 0))
        return ret;
    static const char *const names[] = { "weights", "optim" };
    for (int i = 0; i < 2; i++)
        if (!is_ckpt_name(json_string_value(json_object_get(*ck, names[i])))) {
            ret = fv_error(FV_EINVAL, "%s: \"%s\": not one of the run's checkpoint files "
                           "(ckpt-epoch*.safetensors in %s)", ck_path, names[i], out_dir);
            return ret;
        }
    if (cr->step == INT64_MAX)
        cr->step = -1; /* runs from before mid-epoch checkpoints: none recorded */
    if (epochs < cr->epoch + (cr->epoch_step > 0)) {
        *conflict = 1;
        ret = fv_error(FV_EINVAL, "%s: cannot resume with %lld epochs: the run has done %lld%s", ck_path,
                       (long long)epochs, (long long)cr->epoch, cr->epoch_step > 0 ? " and part of the next"
                                                                                      : "");
        return ret;
    }
    cr->part_loss = json_number_value(json_object_get(part, "loss_sum"));
    cr->best_top1 = json_real_value(json_object_get(*ck, "best_top1"));
    cr->elapsed = json_number_value(json_object_get(*ck, "elapsed_s"));
    return 0;
}
