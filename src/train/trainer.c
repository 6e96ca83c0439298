/* The training loop: data -> split -> model -> epochs of (loader batch, forward, loss,
 * backward, optimizer step, EMA) -> validation -> best model + checkpoint, resumable bitwise.
 *
 * Reproducibility: every random choice comes from seeded streams whose position is a function
 * of (seed, epoch, batch) — the loader's shuffling and augmentation — or is saved in the
 * checkpoint — the model's dropout stream, optimizer state and step, EMA, the epoch's running
 * sums. Kernels are deterministic for a given thread count, so a run resumed from any
 * checkpoint ends with the same bits as one that never stopped. */
#include "core/core.h"
#include "io/io.h"
#include "ops/ops.h"
#include "ocelot.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HISTORY_HEADER "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"
#define STAT_SAMPLES 5000 /* images used to estimate the input mean and std */
#define WHITEN_SAMPLES 5000 /* images whose patches set a whitening layer (airbench's 5000) */
#define WHITEN_EPS 5e-4     /* added to its eigenvalues (airbench) */

void oc_train_config_init(oc_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->model = "resnet20";
    c->epochs = 15;
    c->batch = 128;
    c->momentum = 0.9;
    c->weight_decay = -1;
    c->schedule = "cosine";
    c->warmup_epochs = -1;
    c->val_split = -1;
    c->workers = 2;
}

/* ---------------------------------------------------------------- config <-> JSON */

/* Every field that decides the numbers a run produces; a resumed run takes these from its
 * checkpoint so it cannot silently diverge. */
typedef struct {
    char data[1024], model[1024], optimizer[16], schedule[16], augment[512], precision[8];
    int input_h, input_w, input_c, epochs, batch, early_stop;
    double lr, momentum, weight_decay, warmup_epochs, label_smoothing, val_split, ema_decay;
    int64_t limit;
    uint64_t seed;
    /* recipe knobs (optional in checkpoints written before them) */
    char recipe[64], freeze_tensor[256];
    double peak_at, lr_start, lr_end, norm_lr_scale;
    int decay_norm, lookahead, freeze_epochs, keep_last, val_every;
} run_config;

static cJSON *config_to_json(const run_config *r)
{
    cJSON *o = cJSON_CreateObject();
    char seed[32];
    cJSON_AddStringToObject(o, "data", r->data);
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddNumberToObject(o, "input_h", r->input_h);
    cJSON_AddNumberToObject(o, "input_w", r->input_w);
    cJSON_AddNumberToObject(o, "input_c", r->input_c);
    cJSON_AddNumberToObject(o, "epochs", r->epochs);
    cJSON_AddNumberToObject(o, "batch", r->batch);
    cJSON_AddStringToObject(o, "optimizer", r->optimizer);
    cJSON_AddNumberToObject(o, "lr", r->lr);
    cJSON_AddNumberToObject(o, "momentum", r->momentum);
    cJSON_AddNumberToObject(o, "weight_decay", r->weight_decay);
    cJSON_AddStringToObject(o, "schedule", r->schedule);
    cJSON_AddNumberToObject(o, "warmup_epochs", r->warmup_epochs);
    cJSON_AddNumberToObject(o, "label_smoothing", r->label_smoothing);
    cJSON_AddStringToObject(o, "augment", r->augment);
    cJSON_AddNumberToObject(o, "val_split", r->val_split);
    cJSON_AddNumberToObject(o, "limit", (double)r->limit);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
    cJSON_AddStringToObject(o, "seed", seed); /* a string: JSON numbers lose 64-bit seeds */
    cJSON_AddNumberToObject(o, "ema_decay", r->ema_decay);
    cJSON_AddNumberToObject(o, "early_stop", r->early_stop);
    cJSON_AddStringToObject(o, "precision", r->precision);
    cJSON_AddStringToObject(o, "recipe", r->recipe);
    cJSON_AddNumberToObject(o, "peak_at", r->peak_at);
    cJSON_AddNumberToObject(o, "lr_start", r->lr_start);
    cJSON_AddNumberToObject(o, "lr_end", r->lr_end);
    cJSON_AddNumberToObject(o, "norm_lr_scale", r->norm_lr_scale);
    cJSON_AddNumberToObject(o, "decay_norm", r->decay_norm);
    cJSON_AddNumberToObject(o, "lookahead", r->lookahead);
    cJSON_AddStringToObject(o, "freeze_tensor", r->freeze_tensor);
    cJSON_AddNumberToObject(o, "freeze_epochs", r->freeze_epochs);
    cJSON_AddNumberToObject(o, "keep_last", r->keep_last);
    cJSON_AddNumberToObject(o, "val_every", r->val_every);
    return o;
}

static int json_str(const cJSON *o, const char *k, char *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v))
        return 0;
    snprintf(dst, cap, "%s", v->valuestring);
    return 1;
}

static int json_num(const cJSON *o, const char *k, double *dst)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        return 0;
    *dst = v->valuedouble;
    return 1;
}

static oc_status config_from_json(const cJSON *o, run_config *r)
{
    double v[16];
    char seed[32];
    int ok = cJSON_IsObject(o) && json_str(o, "data", r->data, sizeof r->data) &&
             json_str(o, "model", r->model, sizeof r->model) &&
             json_str(o, "optimizer", r->optimizer, sizeof r->optimizer) &&
             json_str(o, "schedule", r->schedule, sizeof r->schedule) &&
             json_str(o, "augment", r->augment, sizeof r->augment) &&
             json_str(o, "seed", seed, sizeof seed) && json_num(o, "input_h", &v[0]) &&
             json_num(o, "input_w", &v[1]) && json_num(o, "input_c", &v[2]) &&
             json_num(o, "epochs", &v[3]) && json_num(o, "batch", &v[4]) &&
             json_num(o, "lr", &v[5]) && json_num(o, "momentum", &v[6]) &&
             json_num(o, "weight_decay", &v[7]) && json_num(o, "warmup_epochs", &v[8]) &&
             json_num(o, "label_smoothing", &v[9]) && json_num(o, "val_split", &v[10]) &&
             json_num(o, "limit", &v[11]) && json_num(o, "ema_decay", &v[12]) &&
             json_num(o, "early_stop", &v[13]);
    if (!ok)
        return oc_fail(OC_ERR_FORMAT, "checkpoint: the training configuration is incomplete");
    r->input_h = (int)v[0];
    r->input_w = (int)v[1];
    r->input_c = (int)v[2];
    r->epochs = (int)v[3];
    r->batch = (int)v[4];
    r->lr = v[5];
    r->momentum = v[6];
    r->weight_decay = v[7];
    r->warmup_epochs = v[8];
    r->label_smoothing = v[9];
    r->val_split = v[10];
    r->limit = (int64_t)v[11];
    r->ema_decay = v[12];
    r->early_stop = (int)v[13];
    r->seed = strtoull(seed, NULL, 10);
    /* checkpoints from before bf16 training have no precision: they ran fp32 */
    if (!json_str(o, "precision", r->precision, sizeof r->precision))
        snprintf(r->precision, sizeof r->precision, "fp32");
    v[0] = v[1] = v[2] = v[3] = v[4] = v[5] = v[6] = v[7] = 0;
    json_str(o, "recipe", r->recipe, sizeof r->recipe);
    json_str(o, "freeze_tensor", r->freeze_tensor, sizeof r->freeze_tensor);
    json_num(o, "peak_at", &r->peak_at);
    json_num(o, "lr_start", &r->lr_start);
    json_num(o, "lr_end", &r->lr_end);
    json_num(o, "norm_lr_scale", &r->norm_lr_scale);
    json_num(o, "decay_norm", &v[0]);
    json_num(o, "lookahead", &v[1]);
    json_num(o, "freeze_epochs", &v[2]);
    json_num(o, "keep_last", &v[3]);
    json_num(o, "val_every", &v[4]);
    r->keep_last = (int)v[3];
    r->val_every = (int)v[4];
    r->decay_norm = (int)v[0];
    r->lookahead = (int)v[1];
    r->freeze_epochs = (int)v[2];
    return OC_OK;
}

/* ---------------------------------------------------------------- the job's state */

typedef struct {
    run_config rc;
    const oc_train_config *cfg;
    char ckpt_path[1100], csv_path[1100];
    oc_dataset *ds;
    int64_t *train_idx, *val_idx;
    int64_t n_train, n_val;
    int val_is_test;
    oc_model *model;
    oc_optimizer *opt;
    oc_schedule sched;
    oc_ema *ema;
    oc_loader *train_loader, *val_loader;
    float *dlogits;      /* [batch][classes] */
    float *swap_params;  /* backups while the EMA weights are swapped in */
    float *swap_state;
    int classes;
    int freeze_idx;      /* tensor of freeze_after, or -1 */
    /* position and running sums (all saved in checkpoints) */
    int64_t epoch, batch_done, global_step;
    double loss_sum, seconds_before;
    int64_t correct, seen;
    double best_acc;
    int64_t best_epoch, since_best;
    char *history;       /* CSV text, HISTORY_HEADER first */
    size_t history_len;
} job;

static oc_status history_add(job *j, const char *line)
{
    size_t n = strlen(line);
    char *h = realloc(j->history, j->history_len + n + 1);
    if (!h)
        return oc_fail(OC_ERR_NOMEM, "train: out of memory");
    memcpy(h + j->history_len, line, n + 1);
    j->history = h;
    j->history_len += n;
    return OC_OK;
}

static int model_has_norm(const oc_model *m)
{
    for (int i = 0; i < oc_model_num_tensors(m); i++)
        if (oc_model_tensor(m, i)->kind == OC_PARAM_NORM_SCALE)
            return 1;
    return 0;
}

/* Fills the run config from the user's, choosing the documented defaults that depend on the
 * data (channels, official test split) and the model (batch norm or not). */
static oc_status resolve_config(job *j, const oc_train_config *c)
{
    run_config *r = &j->rc;
    snprintf(r->data, sizeof r->data, "%s", c->data);
    snprintf(r->model, sizeof r->model, "%s", c->model ? c->model : "resnet20");
    r->epochs = c->epochs;
    r->batch = c->batch;
    r->input_h = c->input_h;
    r->input_w = c->input_w;
    r->input_c = c->input_c;
    r->lr = c->lr;
    r->momentum = c->momentum;
    r->weight_decay = c->weight_decay;
    snprintf(r->schedule, sizeof r->schedule, "%s", c->schedule ? c->schedule : "cosine");
    snprintf(r->optimizer, sizeof r->optimizer, "%s", c->optimizer ? c->optimizer : "");
    r->warmup_epochs = c->warmup_epochs;
    r->label_smoothing = c->label_smoothing;
    snprintf(r->augment, sizeof r->augment, "%s", c->augment ? c->augment : "");
    r->val_split = c->val_split;
    r->limit = c->limit;
    r->seed = c->seed;
    r->ema_decay = c->ema_decay;
    r->early_stop = c->early_stop;
    if (c->precision != OC_PRECISION_F32 && c->precision != OC_PRECISION_BF16)
        return oc_fail(OC_ERR_ARG, "train: unknown precision %d", (int)c->precision);
    snprintf(r->precision, sizeof r->precision, "%s", oc_precision_name(c->precision));
    snprintf(r->recipe, sizeof r->recipe, "%s", c->recipe ? c->recipe : "");
    r->peak_at = c->peak_at;
    r->lr_start = c->lr_start;
    r->lr_end = c->lr_end;
    r->norm_lr_scale = c->norm_lr_scale;
    r->decay_norm = c->decay_norm != 0;
    r->lookahead = c->lookahead;
    r->keep_last = c->keep_last != 0;
    if (c->val_every < 0 || c->val_every > 100000)
        return oc_fail(OC_ERR_ARG, "train: val-every %d must be 0-100000 epochs", c->val_every);
    r->val_every = c->val_every;
    if (c->freeze_after && *c->freeze_after) {
        const char *colon = strrchr(c->freeze_after, ':');
        char *end;
        long e = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == c->freeze_after || colon[1] == 0 || *end || e < 0 || e > 100000 ||
            (size_t)(colon - c->freeze_after) >= sizeof r->freeze_tensor)
            return oc_fail(OC_ERR_ARG, "train: freeze-after '%s' must be TENSOR:EPOCHS, e.g. "
                                       "whiten.bias:3", c->freeze_after);
        snprintf(r->freeze_tensor, sizeof r->freeze_tensor, "%.*s",
                 (int)(colon - c->freeze_after), c->freeze_after);
        r->freeze_epochs = (int)e;
    }
    if (!(r->peak_at >= 0 && r->peak_at < 1) || !(r->lr_start >= 0 && r->lr_start <= 1) ||
        !(r->lr_end >= 0 && r->lr_end <= 1))
        return oc_fail(OC_ERR_ARG, "train: peak_at must be in [0, 1), lr_start and lr_end in "
                                   "[0, 1]");
    if (!(r->norm_lr_scale >= 0 && r->norm_lr_scale <= 1e6) || r->lookahead < 0)
        return oc_fail(OC_ERR_ARG, "train: norm_lr_scale must be 0-1e6 and lookahead >= 0");
    if (r->lookahead > 0 && r->ema_decay > 0)
        return oc_fail(OC_ERR_ARG, "train: lookahead and an EMA of the weights exclude each "
                                   "other (both keep the average)");
    if (r->epochs < 1 || r->epochs > 100000)
        return oc_fail(OC_ERR_ARG, "train: epochs must be 1-100000, not %d", r->epochs);
    if (r->batch < 1 || r->batch > 65536)
        return oc_fail(OC_ERR_ARG, "train: batch must be 1-65536, not %d", r->batch);
    if (r->label_smoothing < 0 || r->label_smoothing >= 1)
        return oc_fail(OC_ERR_ARG, "train: label smoothing must be in [0, 1)");
    if (r->ema_decay < 0 || r->ema_decay >= 1)
        return oc_fail(OC_ERR_ARG, "train: EMA decay must be in [0, 1) (0 = off)");
    if (r->val_split >= 1)
        return oc_fail(OC_ERR_ARG, "train: --val-split must be below 1");
    return OC_OK;
}

/* The choices that need the opened data / built model. */
static oc_status resolve_late(job *j, int channels)
{
    run_config *r = &j->rc;
    oc_sched_type st;
    if (!r->optimizer[0])
        snprintf(r->optimizer, sizeof r->optimizer, "%s",
                 model_has_norm(j->model) ? "sgd" : "adamw");
    if (strcmp(r->optimizer, "sgd") && strcmp(r->optimizer, "adamw"))
        return oc_fail(OC_ERR_ARG, "train: unknown optimizer '%s' (sgd, adamw)", r->optimizer);
    /* SGD's rate scales linearly with the batch (Goyal et al. 2017); Adam-type rates with
     * its square root (Malladi et al. 2022), from torch's 1e-3 at Keras's default batch 32 */
    if (r->lr <= 0)
        r->lr = !strcmp(r->optimizer, "sgd") ? 0.1 * r->batch / 128.0
                                              : 1e-3 * sqrt(r->batch / 32.0);
    if (r->weight_decay < 0)
        r->weight_decay = !strcmp(r->optimizer, "sgd") ? 5e-4 : 0.05;
    if (r->warmup_epochs < 0)
        r->warmup_epochs = r->epochs >= 5 ? 1 : 0;
    if (!r->augment[0])
        snprintf(r->augment, sizeof r->augment, "%s", channels >= 3 ? "crop:pad=4,flip" : "none");
    if (oc_sched_type_parse(r->schedule, &st) != OC_OK)
        return oc_fail(OC_ERR_ARG, "train: unknown schedule '%s' (cosine, onecycle, step, "
                                   "triangular, constant)", r->schedule);
    return OC_OK;
}

/* ---------------------------------------------------------------- data */

static oc_status open_data(job *j)
{
    run_config *r = &j->rc;
    int64_t *all = NULL, n_all = 0, *train = NULL, n_tr = 0;
    oc_status st;

    st = oc_dataset_open(r->data, NULL, &j->ds);
    if (st != OC_OK)
        return st;
    if (oc_dataset_has_test_split(j->ds)) {
        st = oc_dataset_indices(j->ds, OC_SPLIT_TRAIN, &all, &n_all);
        if (st != OC_OK)
            return st;
        if (r->val_split < 0)
            r->val_split = 0;
    } else {
        st = oc_dataset_indices(j->ds, OC_SPLIT_ALL, &all, &n_all);
        if (st != OC_OK)
            return st;
        if (r->val_split < 0)
            r->val_split = 0.2;
        if (r->val_split == 0) {
            free(all);
            return oc_fail(OC_ERR_ARG, "train: '%s' has no official test split, so it needs a "
                                       "validation split: use --val-split 0.2 (or leave the "
                                       "default)", r->data);
        }
    }
    if (r->val_split > 0) {
        st = oc_split_stratified(j->ds, all, n_all, r->val_split, r->seed, &train, &n_tr,
                                 &j->val_idx, &j->n_val);
        free(all);
        if (st != OC_OK)
            return st;
    } else {
        train = all;
        n_tr = n_all;
        st = oc_dataset_indices(j->ds, OC_SPLIT_TEST, &j->val_idx, &j->n_val);
        if (st != OC_OK) {
            free(train);
            return st;
        }
        j->val_is_test = 1;
    }
    if (r->limit > 0 && r->limit < n_tr) {
        st = oc_subset_stratified(j->ds, train, n_tr, r->limit, r->seed, &j->train_idx,
                                  &j->n_train);
        free(train);
        if (st != OC_OK)
            return st;
    } else {
        j->train_idx = train;
        j->n_train = n_tr;
    }
    if (j->n_train < 1 || j->n_val < 1)
        return oc_fail(OC_ERR_ARG, "train: '%s' gives %lld training and %lld validation images; "
                                   "both must be non-empty", r->data, (long long)j->n_train,
                       (long long)j->n_val);
    return OC_OK;
}

/* Channel mean and std of the training images (at most STAT_SAMPLES, chosen by seed) after
 * fitting them to the input size: the normalisation stored in the model. */
static oc_status input_stats(job *j, oc_preprocess *pp)
{
    double sum[4] = {0}, sq[4] = {0};
    int64_t count = 0, n = j->n_train < STAT_SAMPLES ? j->n_train : STAT_SAMPLES;
    oc_image img = {0}, fit = {0};
    oc_rng rng;
    oc_status st = OC_OK;
    oc_preprocess raw = *pp;
    for (int c = 0; c < 4; c++) {
        raw.mean[c] = 0;
        raw.std[c] = 1;
    }
    oc_rng_seed(&rng, j->rc.seed, 0x5747);
    for (int64_t k = 0; k < n; k++) {
        int64_t i = n == j->n_train ? j->train_idx[k]
                                    : j->train_idx[oc_rng_below(&rng, (uint64_t)j->n_train)];
        st = oc_dataset_get(j->ds, i, &img, NULL);
        if (st == OC_OK)
            st = oc_image_fit(&img, &raw, &fit);
        if (st != OC_OK)
            goto done;
        for (size_t p = 0; p < (size_t)fit.height * (size_t)fit.width; p++)
            for (int c = 0; c < fit.channels; c++) {
                double v = fit.data[p * (size_t)fit.channels + (size_t)c] / 255.0;
                sum[c] += v;
                sq[c] += v * v;
            }
        count += (int64_t)fit.height * fit.width;
    }
    for (int c = 0; c < pp->channels && c < 4; c++) {
        double mean = sum[c] / (double)count, var = sq[c] / (double)count - mean * mean;
        pp->mean[c] = (float)mean;
        pp->std[c] = (float)(var > 1e-8 ? sqrt(var) : 1.0);
    }
done:
    oc_image_release(&img);
    oc_image_release(&fit);
    return st;
}

/* Sets the model's whitening layers (if any) from the first WHITEN_SAMPLES training images,
 * normalised and unaugmented, as airbench does before its first step. */
static oc_status init_whitening(job *j)
{
    int64_t n = j->n_train < WHITEN_SAMPLES ? j->n_train : WHITEN_SAMPLES;
    const oc_preprocess *pp = oc_model_preprocess(j->model);
    size_t len = (size_t)pp->height * (size_t)pp->width * (size_t)pp->channels;
    oc_image img = {0}, scratch[2] = {{0}, {0}};
    float *x;
    oc_status st = OC_OK;
    if (oc_model_num_whiten(j->model) == 0)
        return OC_OK;
    x = malloc((size_t)n * len * sizeof *x);
    if (!x)
        return oc_fail(OC_ERR_NOMEM, "train: out of memory for the whitening images");
    for (int64_t k = 0; k < n && st == OC_OK; k++) {
        st = oc_dataset_get(j->ds, j->train_idx[k], &img, NULL);
        if (st == OC_OK)
            st = oc_augment_sample(NULL, &img, pp, NULL, scratch, x + (size_t)k * len);
    }
    if (st == OC_OK)
        st = oc_model_init_whiten(j->model, x, (int)n, WHITEN_EPS, NULL);
    oc_image_release(&img);
    oc_image_release(&scratch[0]);
    oc_image_release(&scratch[1]);
    free(x);
    return st;
}

/* airbench's lookahead after optimizer step `step` of `total`: every k steps the average
 * moves towards the weights with decay 0.95^k (t/T)^3 — nearly a copy early, a slow average
 * late — and the weights restart from it; the last step leaves the average in the model. */
static void lookahead_step(job *j, int64_t step, int64_t total)
{
    int k = j->rc.lookahead;
    size_t n;
    if (step % k == 0) {
        double f = (double)step / (double)total;
        oc_ema_update_with(j->ema, pow(0.95, k) * f * f * f, oc_model_params(j->model, &n),
                           oc_model_state(j->model, &n));
        oc_ema_copy_to_model(j->ema, j->model);
    }
    if (step == total)
        oc_ema_copy_to_model(j->ema, j->model);
}

/* The freeze-after tensor trains in epochs [0, freeze_epochs) (a tensor the spec freezes
 * never does). */
static oc_status apply_freeze(job *j)
{
    const oc_param_info *t;
    oc_status st;
    int frozen;
    if (j->freeze_idx < 0)
        return OC_OK;
    t = oc_model_tensor(j->model, j->freeze_idx);
    frozen = t->frozen || j->epoch >= j->rc.freeze_epochs;
    /* the model then skips the backward that only this tensor needed */
    if ((st = oc_model_set_trainable(j->model, j->freeze_idx, !frozen)) != OC_OK)
        return st;
    return oc_optimizer_set_frozen(j->opt, t->offset, frozen);
}

static oc_status make_loaders(job *j, int64_t start_epoch, int64_t start_batch)
{
    oc_loader_opts o;
    oc_status st;
    oc_loader_opts_default(&o);
    o.batch_size = j->rc.batch;
    o.seed = j->rc.seed;
    o.shuffle = 1;
    /* a last batch of a few images makes batch-norm statistics noisy; drop it when the epoch
     * has full batches to spare */
    o.drop_last = j->n_train >= 2 * (int64_t)j->rc.batch;
    o.workers = j->cfg->workers;
    o.augment = strcmp(j->rc.augment, "none") ? j->rc.augment : NULL;
    o.pp = *oc_model_preprocess(j->model);
    o.start_epoch = start_epoch;
    o.start_batch = start_batch;
    st = oc_loader_new(j->ds, j->train_idx, j->n_train, &o, &j->train_loader);
    if (st != OC_OK)
        return st;
    o.shuffle = 0;
    o.drop_last = 0;
    o.augment = NULL;
    o.start_epoch = 0;
    o.start_batch = 0;
    o.workers = j->cfg->workers > 1 ? 1 : j->cfg->workers;
    return oc_loader_new(j->ds, j->val_idx, j->n_val, &o, &j->val_loader);
}

/* ---------------------------------------------------------------- model, optimizer, EMA */

static oc_status make_optimizer(job *j)
{
    oc_optim_config oc;
    oc_sched_type type;
    int64_t per_epoch = oc_loader_num_batches(j->train_loader);
    oc_status st;

    oc = oc_optim_defaults(!strcmp(j->rc.optimizer, "sgd") ? OC_OPTIM_SGD : OC_OPTIM_ADAMW);
    oc.lr = j->rc.lr;
    oc.weight_decay = j->rc.weight_decay;
    if (oc.type == OC_OPTIM_SGD) {
        oc.momentum = j->rc.momentum;
        oc.nesterov = j->rc.momentum > 0;
    }
    /* batch-norm scale and shift carry no capacity that decay should fight (as in most
     * CIFAR / ImageNet recipes); biases do decay, as in torch's default. airbench decays
     * everything (decay_norm). */
    oc.no_decay = j->rc.decay_norm ? 0 : OC_NO_DECAY_NORM;
    oc.norm_lr_scale = j->rc.norm_lr_scale;
    st = oc_optimizer_new_for_model(&j->opt, &oc, j->model);
    if (st != OC_OK)
        return st;
    oc_sched_type_parse(j->rc.schedule, &type);
    j->sched = oc_schedule_defaults(type, j->rc.lr, per_epoch * j->rc.epochs);
    j->sched.warmup_steps = (int64_t)(j->rc.warmup_epochs * (double)per_epoch);
    if (j->rc.peak_at > 0)
        j->sched.pct_start = j->rc.peak_at;
    if (j->rc.lr_start > 0 && type == OC_SCHED_TRIANGULAR)
        j->sched.div_factor = 1.0 / j->rc.lr_start;
    j->sched.lr_min = j->rc.lr_end * j->rc.lr;
    if (type == OC_SCHED_STEP) {
        /* the classic recipe: divide by 10 at 50% and 75% of the run */
        j->sched.n_milestones = 2;
        j->sched.milestones[0] = (j->sched.total_steps - j->sched.warmup_steps) / 2;
        j->sched.milestones[1] = (j->sched.total_steps - j->sched.warmup_steps) * 3 / 4;
    }
    st = oc_schedule_check(&j->sched);
    if (st != OC_OK)
        return st;
    if (j->rc.freeze_tensor[0]) {
        j->freeze_idx = oc_model_find_tensor(j->model, j->rc.freeze_tensor);
        if (j->freeze_idx < 0 || oc_model_tensor(j->model, j->freeze_idx)->kind == OC_PARAM_STATE)
            return oc_fail(OC_ERR_ARG, "train: freeze-after names '%s', which is no trainable "
                                       "tensor of the model", j->rc.freeze_tensor);
    }
    if (j->rc.lookahead > 0) {
        /* the average lives in an EMA whose decay is given at each update; nothing to swap */
        st = oc_ema_new_for_model(&j->ema, 0, 0, j->model);
        if (st != OC_OK)
            return st;
    } else if (j->rc.ema_decay > 0) {
        size_t np, ns;
        st = oc_ema_new_for_model(&j->ema, j->rc.ema_decay, 1, j->model);
        if (st != OC_OK)
            return st;
        oc_model_params(j->model, &np);
        oc_model_state(j->model, &ns);
        j->swap_params = malloc(np * sizeof(float) + 1);
        j->swap_state = malloc(ns * sizeof(float) + 1);
        if (!j->swap_params || !j->swap_state)
            return oc_fail(OC_ERR_NOMEM, "train: out of memory for the EMA");
    }
    j->dlogits = malloc((size_t)j->rc.batch * (size_t)j->classes * sizeof(float));
    if (!j->dlogits)
        return oc_fail(OC_ERR_NOMEM, "train: out of memory");
    return OC_OK;
}

/* Puts the EMA weights into the model (on = 1) or restores the trained ones (on = 0). */
static void ema_swap(job *j, int on)
{
    size_t np, ns;
    float *p = oc_model_params(j->model, &np), *s = oc_model_state(j->model, &ns);
    if (!j->ema || j->rc.lookahead > 0)
        return;
    if (on) {
        memcpy(j->swap_params, p, np * sizeof *p);
        memcpy(j->swap_state, s, ns * sizeof *s);
        oc_ema_copy_to_model(j->ema, j->model);
    } else {
        memcpy(p, j->swap_params, np * sizeof *p);
        memcpy(s, j->swap_state, ns * sizeof *s);
    }
}

/* ---------------------------------------------------------------- checkpoints and files */

static cJSON *split_json(const job *j)
{
    cJSON *o = cJSON_CreateObject();
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)j->rc.seed);
    cJSON_AddStringToObject(o, "dataset", j->rc.data);
    cJSON_AddStringToObject(o, "kind", j->val_is_test ? "official" : "stratified");
    cJSON_AddNumberToObject(o, "fraction", j->rc.val_split);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON_AddNumberToObject(o, "train", (double)j->n_train);
    cJSON_AddNumberToObject(o, "val", (double)j->n_val);
    cJSON_AddNumberToObject(o, "limit", (double)j->rc.limit);
    return o;
}

static oc_status set_json_meta(oc_model *m, const char *key, cJSON *value)
{
    char *text = cJSON_PrintUnformatted(value);
    oc_status st;
    cJSON_Delete(value);
    if (!text)
        return oc_fail(OC_ERR_NOMEM, "train: out of memory");
    st = oc_model_set_meta(m, key, text);
    free(text);
    return st;
}

/* Training info, split and history into the model's metadata (saved with it). */
static oc_status stamp_model(job *j, double val_acc)
{
    cJSON *info = cJSON_CreateObject();
    oc_status st;
    cJSON_AddItemToObject(info, "config", config_to_json(&j->rc));
    cJSON_AddNumberToObject(info, "epochs_run", (double)j->epoch);
    cJSON_AddNumberToObject(info, "best_val_accuracy", j->best_acc);
    cJSON_AddNumberToObject(info, "best_epoch", (double)j->best_epoch);
    cJSON_AddNumberToObject(info, "val_accuracy", val_acc);
    cJSON_AddStringToObject(info, "val_split_name", j->val_is_test ? "test" : "val");
    cJSON_AddStringToObject(info, "ocelot", oc_version());
    st = set_json_meta(j->model, "training", info);
    if (st == OC_OK)
        st = set_json_meta(j->model, "split", split_json(j));
    if (st == OC_OK)
        st = set_json_meta(j->model, "history", cJSON_CreateString(j->history));
    return st;
}

static oc_status save_checkpoint(job *j, double elapsed)
{
    oc_st_tensor extra[3];
    int n = 0;
    size_t ns;
    float *state = oc_optimizer_state(j->opt, &ns);
    cJSON *meta = cJSON_CreateObject(), *acc = cJSON_CreateObject();
    char *text;
    oc_status st;

    memset(extra, 0, sizeof extra);
    if (ns) {
        extra[n].name = "optimizer";
        extra[n].dtype = OC_ST_F32;
        extra[n].ndim = 1;
        extra[n].shape[0] = (int64_t)ns;
        extra[n++].data = state;
    }
    if (j->ema) {
        size_t np, nst;
        float *ep = oc_ema_params(j->ema, &np), *es = oc_ema_state(j->ema, &nst);
        extra[n].name = "ema.params";
        extra[n].dtype = OC_ST_F32;
        extra[n].ndim = 1;
        extra[n].shape[0] = (int64_t)np;
        extra[n++].data = ep;
        if (nst) {
            extra[n].name = "ema.state";
            extra[n].dtype = OC_ST_F32;
            extra[n].ndim = 1;
            extra[n].shape[0] = (int64_t)nst;
            extra[n++].data = es;
        }
    }
    cJSON_AddNumberToObject(meta, "version", 1);
    cJSON_AddItemToObject(meta, "config", config_to_json(&j->rc));
    cJSON_AddNumberToObject(meta, "epoch", (double)j->epoch);
    cJSON_AddNumberToObject(meta, "batch", (double)j->batch_done);
    cJSON_AddNumberToObject(meta, "global_step", (double)j->global_step);
    cJSON_AddNumberToObject(meta, "optimizer_steps", (double)oc_optimizer_steps(j->opt));
    cJSON_AddNumberToObject(meta, "ema_updates", j->ema ? (double)oc_ema_updates(j->ema) : 0);
    cJSON_AddNumberToObject(meta, "best_acc", j->best_acc);
    cJSON_AddNumberToObject(meta, "best_epoch", (double)j->best_epoch);
    cJSON_AddNumberToObject(meta, "since_best", (double)j->since_best);
    cJSON_AddNumberToObject(meta, "seconds", elapsed);
    cJSON_AddStringToObject(meta, "history", j->history);
    cJSON_AddNumberToObject(acc, "loss_sum", j->loss_sum);
    cJSON_AddNumberToObject(acc, "correct", (double)j->correct);
    cJSON_AddNumberToObject(acc, "seen", (double)j->seen);
    cJSON_AddItemToObject(meta, "running", acc);
    text = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    if (!text)
        return oc_fail(OC_ERR_NOMEM, "train: out of memory");
    st = stamp_model(j, 0);
    if (st == OC_OK)
        st = oc_checkpoint_save(j->ckpt_path, j->model, extra, n, text);
    free(text);
    return st;
}

static oc_status restore_checkpoint(job *j, oc_checkpoint *ck)
{
    cJSON *meta = cJSON_Parse(oc_checkpoint_meta(ck)), *acc;
    const cJSON *hist;
    double v;
    oc_status st = OC_OK;
    if (!meta)
        return oc_fail(OC_ERR_FORMAT, "checkpoint '%s': its training state is not JSON",
                       j->cfg->resume);
    st = config_from_json(cJSON_GetObjectItemCaseSensitive(meta, "config"), &j->rc);
    if (st != OC_OK)
        goto done;
    acc = cJSON_GetObjectItemCaseSensitive(meta, "running");
    hist = cJSON_GetObjectItemCaseSensitive(meta, "history");
    if (!json_num(meta, "epoch", &v) || !cJSON_IsString(hist) || !cJSON_IsObject(acc)) {
        st = oc_fail(OC_ERR_FORMAT, "checkpoint '%s': no training position in it",
                     j->cfg->resume);
        goto done;
    }
    j->epoch = (int64_t)v;
    json_num(meta, "batch", &v);
    j->batch_done = (int64_t)v;
    json_num(meta, "global_step", &v);
    j->global_step = (int64_t)v;
    json_num(meta, "best_acc", &j->best_acc);
    json_num(meta, "best_epoch", &v);
    j->best_epoch = (int64_t)v;
    json_num(meta, "since_best", &v);
    j->since_best = (int64_t)v;
    json_num(meta, "seconds", &j->seconds_before);
    json_num(acc, "loss_sum", &j->loss_sum);
    json_num(acc, "correct", &v);
    j->correct = (int64_t)v;
    json_num(acc, "seen", &v);
    j->seen = (int64_t)v;
    free(j->history);
    j->history = strdup(hist->valuestring);
    j->history_len = j->history ? strlen(j->history) : 0;
    if (!j->history) {
        st = oc_fail(OC_ERR_NOMEM, "train: out of memory");
        goto done;
    }
done:
    cJSON_Delete(meta);
    return st;
}

/* The optimizer and EMA state come after the optimizer exists. */
static oc_status restore_optimizer(job *j, oc_checkpoint *ck)
{
    cJSON *meta = cJSON_Parse(oc_checkpoint_meta(ck));
    double steps = 0, updates = 0;
    size_t ns;
    float *state = oc_optimizer_state(j->opt, &ns);
    oc_status st = OC_OK;
    json_num(meta, "optimizer_steps", &steps);
    json_num(meta, "ema_updates", &updates);
    cJSON_Delete(meta);
    if (ns)
        st = oc_checkpoint_read_f32(ck, "optimizer", state, ns);
    if (st == OC_OK)
        oc_optimizer_set_steps(j->opt, (int64_t)steps);
    if (st == OC_OK && j->ema) {
        size_t np, nst;
        float *ep = oc_ema_params(j->ema, &np), *es = oc_ema_state(j->ema, &nst);
        st = oc_checkpoint_read_f32(ck, "ema.params", ep, np);
        if (st == OC_OK && nst)
            st = oc_checkpoint_read_f32(ck, "ema.state", es, nst);
        oc_ema_set_updates(j->ema, (int64_t)updates);
    }
    return st;
}

typedef struct {
    const char *text;
} text_ctx;

static oc_status write_text(void *ctx, void *file)
{
    const text_ctx *t = ctx;
    size_t n = strlen(t->text);
    if (fwrite(t->text, 1, n, (FILE *)file) != n)
        return oc_fail(OC_ERR_IO, "write failed");
    return OC_OK;
}

/* ---------------------------------------------------------------- validation */

static oc_status validate(job *j, double *loss, double *acc)
{
    int64_t batches = oc_loader_num_batches(j->val_loader), correct = 0, seen = 0;
    double loss_sum = 0;
    oc_status st = OC_OK;
    ema_swap(j, 1);
    for (int64_t b = 0; b < batches; b++) {
        const oc_batch *bt;
        const float *logits;
        st = oc_loader_next(j->val_loader, &bt);
        if (st == OC_OK)
            st = oc_model_forward(j->model, bt->x, bt->n, 0, &logits);
        if (st != OC_OK)
            break;
        loss_sum += oc_softmax_xent(bt->n, j->classes, logits, bt->labels, NULL, 0, NULL, NULL) * bt->n;
        for (int i = 0; i < bt->n; i++) {
            const float *l = logits + (size_t)i * j->classes;
            int best = 0;
            for (int k = 1; k < j->classes; k++)
                best = l[k] > l[best] ? k : best;
            correct += best == bt->labels[i];
        }
        seen += bt->n;
    }
    ema_swap(j, 0);
    *loss = seen ? loss_sum / (double)seen : 0;
    *acc = seen ? (double)correct / (double)seen : 0;
    return st;
}

/* ---------------------------------------------------------------- the loop */

static void job_free(job *j)
{
    oc_loader_free(j->train_loader);
    oc_loader_free(j->val_loader);
    oc_optimizer_free(j->opt);
    oc_ema_free(j->ema);
    oc_model_free(j->model);
    oc_dataset_free(j->ds);
    free(j->train_idx);
    free(j->val_idx);
    free(j->dlogits);
    free(j->swap_params);
    free(j->swap_state);
    free(j->history);
}

static void report(job *j, oc_train_event ev, double t_start, int64_t steps_this_call,
                   double train_seconds, int validated, double val_loss, double val_acc,
                   int improved)
{
    oc_train_progress p;
    int64_t per_epoch = oc_loader_num_batches(j->train_loader);
    double elapsed = oc_now() - t_start;
    if (!j->cfg->progress)
        return;
    memset(&p, 0, sizeof p);
    p.event = ev;
    p.epoch = j->epoch + 1;
    p.epochs = j->rc.epochs;
    p.batch = j->batch_done;
    p.batches = per_epoch;
    p.global_step = j->global_step;
    p.total_steps = per_epoch * j->rc.epochs;
    p.loss = j->seen ? j->loss_sum / (double)j->seen : 0;
    p.accuracy = j->seen ? (double)j->correct / (double)j->seen : 0;
    p.lr = oc_optimizer_lr(j->opt);
    p.images_per_s = train_seconds > 0 ? (double)j->seen / train_seconds : 0;
    p.elapsed_s = j->seconds_before + elapsed;
    p.eta_s = steps_this_call > 0
                  ? elapsed / (double)steps_this_call * (double)(p.total_steps - j->global_step)
                  : 0;
    p.validated = validated;
    p.val_loss = val_loss;
    p.val_accuracy = val_acc;
    p.improved = improved;
    p.val_name = j->val_is_test ? "test" : "val";
    j->cfg->progress(&p, j->cfg->progress_user);
}

/* Writes the model to `out` (the best one, or the last with keep_last), recording the
 * validation accuracy it had. */
static oc_status save_model(job *j, double val_acc)
{
    oc_status st;
    ema_swap(j, 1);
    st = stamp_model(j, val_acc);
    if (st == OC_OK)
        st = oc_model_save(j->model, j->cfg->out);
    ema_swap(j, 0);
    return st;
}

oc_status oc_train(const oc_train_config *cfg, oc_train_summary *summary)
{
    job j;
    oc_status st;
    oc_checkpoint *ck = NULL;
    double t_start = oc_now(), epoch_t0 = 0, train_seconds = 0;
    int64_t steps_this_call = 0, images_this_call = 0, per_epoch;
    int h, w, c, stopped_early = 0;

    if (!cfg || !cfg->out || (!cfg->data && !cfg->resume))
        return oc_fail(OC_ERR_ARG, "train: a dataset and an output path are required");
    memset(&j, 0, sizeof j);
    j.cfg = cfg;
    j.freeze_idx = -1;
    snprintf(j.ckpt_path, sizeof j.ckpt_path, "%s", cfg->checkpoint ? cfg->checkpoint : "");
    if (!cfg->checkpoint)
        snprintf(j.ckpt_path, sizeof j.ckpt_path, "%s.ckpt", cfg->out);
    if (cfg->log_csv)
        snprintf(j.csv_path, sizeof j.csv_path, "%s", cfg->log_csv);
    else
        snprintf(j.csv_path, sizeof j.csv_path, "%s.csv", cfg->out);

    if (cfg->resume) {
        st = oc_checkpoint_load(cfg->resume, &j.model, &ck);
        if (st != OC_OK)
            goto fail;
        st = restore_checkpoint(&j, ck);
    } else {
        st = resolve_config(&j, cfg);
        if (st == OC_OK)
            st = history_add(&j, HISTORY_HEADER);
    }
    if (st != OC_OK)
        goto fail;
    st = open_data(&j);
    if (st != OC_OK)
        goto fail;
    j.classes = oc_dataset_num_classes(j.ds);
    if (!j.model) {
        const char **names;
        int dh, dw, dc;
        oc_dataset_image_shape(j.ds, &dh, &dw, &dc);
        h = j.rc.input_h ? j.rc.input_h : dh ? dh : 32;
        w = j.rc.input_w ? j.rc.input_w : dw ? dw : 32;
        c = j.rc.input_c ? j.rc.input_c : dc ? dc : 3;
        j.rc.input_h = h;
        j.rc.input_w = w;
        j.rc.input_c = c;
        st = oc_model_create(&j.model, j.rc.model, h, w, c, j.classes, j.rc.seed);
        if (st != OC_OK)
            goto fail;
        names = malloc((size_t)j.classes * sizeof *names);
        if (!names) {
            st = oc_fail(OC_ERR_NOMEM, "train: out of memory");
            goto fail;
        }
        for (int k = 0; k < j.classes; k++)
            names[k] = oc_dataset_class_name(j.ds, k);
        st = oc_model_set_class_names(j.model, j.classes, names);
        free(names);
        if (st != OC_OK)
            goto fail;
        {
            oc_preprocess *pp = oc_model_preprocess(j.model);
            pp->height = h;
            pp->width = w;
            pp->channels = c;
            pp->resize = OC_RESIZE_STRETCH;
            st = input_stats(&j, pp);
            if (st == OC_OK)
                st = init_whitening(&j);
            if (st != OC_OK)
                goto fail;
        }
    } else if (oc_model_num_classes(j.model) != j.classes) {
        st = oc_fail(OC_ERR_SHAPE, "train: the checkpoint has %d classes but '%s' has %d",
                     oc_model_num_classes(j.model), j.rc.data, j.classes);
        goto fail;
    }
    {
        oc_precision prec;
        st = oc_precision_parse(j.rc.precision, &prec);
        if (st == OC_OK)
            st = oc_model_set_precision(j.model, prec);
        if (st != OC_OK)
            goto fail;
    }
    oc_model_input_shape(j.model, &h, &w, &c);
    st = resolve_late(&j, c);
    if (st == OC_OK)
        st = make_loaders(&j, j.epoch, j.batch_done);
    if (st == OC_OK)
        st = make_optimizer(&j);
    if (st == OC_OK && ck)
        st = restore_optimizer(&j, ck);
    if (st == OC_OK)
        st = oc_model_plan(j.model, j.rc.batch, 1);
    if (st != OC_OK)
        goto fail;
    oc_checkpoint_free(ck);
    ck = NULL;
    per_epoch = oc_loader_num_batches(j.train_loader);

    while (j.epoch < j.rc.epochs) {
        double val_loss, val_acc;
        int improved, validated;
        char line[256];
        epoch_t0 = oc_now();
        train_seconds = 0;
        st = apply_freeze(&j);
        if (st != OC_OK)
            goto fail;
        while (j.batch_done < per_epoch) {
            const oc_batch *b;
            const float *logits;
            double loss, t0 = oc_now();
            st = oc_loader_next(j.train_loader, &b);
            if (st != OC_OK)
                goto fail;
            oc_optimizer_set_lr(j.opt, oc_schedule_lr(&j.sched, j.global_step));
            oc_model_zero_grad(j.model);
            st = oc_model_forward(j.model, b->x, b->n, 1, &logits);
            if (st != OC_OK)
                goto fail;
            loss = oc_softmax_xent(b->n, j.classes, logits, b->labels, b->targets,
                                   (float)j.rc.label_smoothing, NULL, j.dlogits);
            if (!isfinite(loss)) {
                int have_ckpt = access(j.ckpt_path, F_OK) == 0;
                st = oc_fail(OC_ERR_NUMERIC,
                             "the loss became %s at epoch %lld, batch %lld (learning rate %g: "
                             "try a lower --lr)%s%s%s",
                             isnan(loss) ? "NaN" : "infinite", (long long)j.epoch + 1,
                             (long long)j.batch_done + 1, oc_optimizer_lr(j.opt),
                             have_ckpt ? "; the checkpoint '" : "; no epoch had finished, so "
                                                                "there is no checkpoint",
                             have_ckpt ? j.ckpt_path : "",
                             have_ckpt ? "' from the last finished epoch is intact" : "");
                goto fail;
            }
            st = oc_model_backward(j.model, j.dlogits);
            if (st == OC_OK) {
                size_t np;
                float *params = oc_model_params(j.model, &np);
                st = oc_optimizer_step(j.opt, params, oc_model_grads(j.model, &np));
            }
            if (st != OC_OK)
                goto fail;
            if (j.ema && j.rc.lookahead == 0)
                oc_ema_update(j.ema, oc_model_params(j.model, &(size_t){0}),
                              oc_model_state(j.model, &(size_t){0}));
            j.loss_sum += loss * b->n;
            for (int i = 0; i < b->n; i++) {
                const float *l = logits + (size_t)i * j.classes;
                int best = 0;
                for (int k = 1; k < j.classes; k++)
                    best = l[k] > l[best] ? k : best;
                j.correct += best == b->labels[i];
            }
            j.seen += b->n;
            j.global_step++;
            if (j.rc.lookahead > 0)
                lookahead_step(&j, j.global_step, per_epoch * j.rc.epochs);
            steps_this_call++;
            images_this_call += b->n;
            train_seconds += oc_now() - t0;
            j.batch_done++;
            report(&j, OC_TRAIN_STEP, t_start, steps_this_call, train_seconds, 0, 0, 0, 0);
            if (cfg->stop && *cfg->stop) {
                /* the position saved is the next batch: --resume continues exactly there */
                st = save_checkpoint(&j, j.seconds_before + oc_now() - t_start);
                if (st == OC_OK)
                    st = oc_fail(OC_ERR_INTERRUPTED,
                                 "stopped at epoch %lld, batch %lld; checkpoint written to '%s' "
                                 "(continue with --resume %s)",
                                 (long long)j.epoch + 1, (long long)j.batch_done, j.ckpt_path,
                                 j.ckpt_path);
                goto fail;
            }
        }
        /* with val_every, the last epoch (and so every run's result) is always validated */
        validated = j.rc.val_every <= 1 || (j.epoch + 1) % j.rc.val_every == 0 ||
                    j.epoch + 1 == j.rc.epochs;
        val_loss = val_acc = 0;
        if (validated) {
            st = validate(&j, &val_loss, &val_acc);
            if (st != OC_OK)
                goto fail;
        }
        improved = validated && (j.best_epoch == 0 || val_acc > j.best_acc);
        if (validated)
            snprintf(line, sizeof line, "%lld,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n",
                     (long long)j.epoch + 1, j.loss_sum / (double)(j.seen ? j.seen : 1),
                     (double)j.correct / (double)(j.seen ? j.seen : 1), val_loss, val_acc,
                     oc_optimizer_lr(j.opt), oc_now() - epoch_t0);
        else /* empty validation cells: a gap in the report's curves */
            snprintf(line, sizeof line, "%lld,%.6f,%.6f,,,%.6g,%.3f\n", (long long)j.epoch + 1,
                     j.loss_sum / (double)(j.seen ? j.seen : 1),
                     (double)j.correct / (double)(j.seen ? j.seen : 1), oc_optimizer_lr(j.opt),
                     oc_now() - epoch_t0);
        st = history_add(&j, line);
        if (st != OC_OK)
            goto fail;
        if (improved) {
            j.best_acc = val_acc;
            j.best_epoch = j.epoch + 1;
            j.since_best = 0;
        } else if (validated) {
            j.since_best++;
        }
        report(&j, OC_TRAIN_EPOCH, t_start, steps_this_call, train_seconds, validated, val_loss,
               val_acc, improved);
        /* the next epoch's position, then files: best model, CSV, checkpoint */
        j.epoch++;
        j.batch_done = 0;
        if (improved || (j.rc.keep_last && validated)) {
            st = save_model(&j, val_acc);
            if (st != OC_OK)
                goto fail;
        }
        {
            text_ctx t = {j.history};
            st = oc_atomic_write(j.csv_path, write_text, &t);
            if (st != OC_OK)
                goto fail;
        }
        if (summary) {
            summary->final_train_loss = j.loss_sum / (double)(j.seen ? j.seen : 1);
            summary->final_train_accuracy = (double)j.correct / (double)(j.seen ? j.seen : 1);
            if (validated)
                summary->final_val_accuracy = val_acc;
        }
        j.loss_sum = 0;
        j.correct = j.seen = 0;
        st = save_checkpoint(&j, j.seconds_before + oc_now() - t_start);
        if (st != OC_OK)
            goto fail;
        if (j.rc.early_stop > 0 && j.since_best >= j.rc.early_stop) {
            stopped_early = 1;
            break;
        }
    }
    if (summary) {
        double secs = oc_now() - t_start;
        summary->epochs_run = j.epoch;
        summary->best_val_accuracy = j.best_acc;
        summary->best_epoch = j.best_epoch;
        summary->seconds = secs;
        summary->images_per_s = secs > 0 ? (double)images_this_call / secs : 0;
        summary->stopped_early = stopped_early;
    }
    job_free(&j);
    return OC_OK;
fail:
    oc_checkpoint_free(ck);
    job_free(&j);
    return st;
}
