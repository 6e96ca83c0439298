/* Training recipes: named settings for oc_train that reach a known accuracy, applied as
 * defaults the caller's own choices override (docs/recipes.md). */
#include "core/core.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name, *summary;
    void (*apply)(oc_train_config *c);
} recipe;

/* Keller Jordan's airbench94 (cifar10-airbench, legacy/airbench94.py: 94.01% mean over 1000
 * runs with its test-time augmentation), in ocelot's terms:
 *  - its SGD sums the loss over the batch with lr 11.5 / (1024 (1 + 1 / (1 - 0.85))); on the
 *    batch mean that is lr = 11.5 / 7.667 = 1.5 at batch 1024;
 *  - its decay, 0.0153 x 1024 / 7852 per step for every tensor, is torch weight decay
 *    0.0153 / 7.667 / 1.5 = 1.3304e-3 at that lr, batch-norm shifts included (decay_norm);
 *    the shifts learn 64x faster at the same decay step (norm_lr_scale);
 *  - lr 0.2 -> 1 -> 0.07 of the peak, linear, peak at 23% of the steps;
 *  - label smoothing 0.2; lookahead every 5 steps; the whitening bias trains 3 epochs;
 *  - random 2-pixel translation (reflect padding) and alternating flip;
 *  - 10 epochs (its 9.9 rounded up: 480 steps instead of 476).
 * The model is airnet (src/nn/zoo.c). */
static void cifar10_fast(oc_train_config *c)
{
    c->model = "airnet";
    c->epochs = 10;
    c->batch = 1024;
    c->optimizer = "sgd";
    c->lr = 11.5 / (1.0 + 1.0 / (1.0 - 0.85));
    c->momentum = 0.85;
    c->weight_decay = 0.0153 / (1.0 + 1.0 / (1.0 - 0.85)) / c->lr;
    c->schedule = "triangular";
    c->warmup_epochs = 0;
    c->peak_at = 0.23;
    c->lr_start = 0.2;
    c->lr_end = 0.07;
    c->label_smoothing = 0.2;
    c->augment = "crop:pad=2:mode=reflect,altflip";
    c->norm_lr_scale = 64;
    c->decay_norm = 1;
    c->lookahead = 5;
    c->ema_decay = 0;
    c->freeze_after = "whiten.bias:3";
    c->keep_last = 1; /* the lookahead average of the last step is the result */
    c->val_every = 10; /* as airbench, test once at the end: ~7 % of the run otherwise */
}

static const recipe recipes[] = {
    {"cifar10-fast",
     "airbench94 on airnet, 10 epochs at batch 1024 (94% with eval --tta 2)",
     cifar10_fast},
};

#define N_RECIPES (sizeof recipes / sizeof *recipes)

static const char *const recipe_names[N_RECIPES + 1] = {"cifar10-fast", NULL};

const char *const *oc_recipe_names(void)
{
    return recipe_names;
}

static const recipe *find(const char *name)
{
    for (size_t i = 0; name && i < N_RECIPES; i++)
        if (!strcmp(recipes[i].name, name))
            return &recipes[i];
    return NULL;
}

const char *oc_recipe_summary(const char *name)
{
    const recipe *r = find(name);
    return r ? r->summary : NULL;
}

oc_status oc_recipe_apply(const char *name, oc_train_config *cfg)
{
    const recipe *r = find(name);
    if (!cfg)
        return oc_fail(OC_ERR_ARG, "oc_recipe_apply: NULL config");
    if (!r) {
        char known[256] = "";
        for (size_t i = 0; i < N_RECIPES; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     recipes[i].name);
        return oc_fail(OC_ERR_ARG, "unknown recipe '%s' (known: %s)", name ? name : "(null)",
                       known);
    }
    r->apply(cfg);
    cfg->recipe = r->name;
    return OC_OK;
}
