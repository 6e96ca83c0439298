/* oc_train's stop and resume at the one position a signal can hit by chance: after the last
 * step of an epoch, before the epoch's end (validation, files). The e2e test sends SIGINT at a
 * random moment; this one stops there on purpose, from the progress callback, and checks that
 * --resume finishes with the weights of the uninterrupted run. */
#include "ocelot.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/oc_test_train_XXXXXX";

static const char *tmp_path(const char *rel)
{
    return oc_test_path(tmpdir, rel);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* n 8x8 grey images whose label (0..2) sets their brightness, as IDX files */
static int write_idx(const char *prefix, int n)
{
    uint8_t hi[16] = {0, 0, 8, 3}, hl[8] = {0, 0, 8, 1};
    uint8_t *pix = malloc((size_t)n * 64), *lab = malloc((size_t)n);
    int ok = pix && lab;
    put_be32(hi + 4, (uint32_t)n);
    put_be32(hi + 8, 8);
    put_be32(hi + 12, 8);
    put_be32(hl + 4, (uint32_t)n);
    for (int i = 0; ok && i < n; i++) {
        lab[i] = (uint8_t)(i % 3);
        for (int p = 0; p < 64; p++)
            pix[i * 64 + p] = (uint8_t)(lab[i] * 80 + (i * 7 + p * 13) % 40);
    }
    for (int which = 0; ok && which < 2; which++) {
        char name[64];
        FILE *f;
        snprintf(name, sizeof name, "%s-%s", prefix,
                 which ? "labels-idx1-ubyte" : "images-idx3-ubyte");
        f = fopen(tmp_path(name), "wb");
        ok = f && fwrite(which ? hl : hi, 1, which ? 8 : 16, f) == (which ? 8u : 16u) &&
             fwrite(which ? lab : pix, 1, which ? (size_t)n : (size_t)n * 64, f) ==
                 (which ? (size_t)n : (size_t)n * 64);
        if (f)
            ok = fclose(f) == 0 && ok;
    }
    free(pix);
    free(lab);
    return ok;
}

static const char net[] =
    "{\"format\": \"ocelot-graph\", \"version\": 1, \"nodes\": ["
    "{\"name\": \"conv1\", \"op\": \"conv2d\", \"filters\": 8, \"kernel\": 3, \"padding\": \"same\"},"
    "{\"name\": \"bn1\", \"op\": \"batchnorm\"}, {\"name\": \"relu1\", \"op\": \"relu\"},"
    "{\"name\": \"gap\", \"op\": \"global_avgpool\"},"
    "{\"name\": \"fc\", \"op\": \"dense\", \"units\": \"classes\"}]}";

static volatile int stop_flag;

/* stops after the last step of epoch 1 */
static void stop_at_epoch_end(const oc_train_progress *p, void *user)
{
    (void)user;
    if (p->event == OC_TRAIN_STEP && p->epoch == 1 && p->batch == p->batches)
        stop_flag = 1;
}

static void config(oc_train_config *c, char *spec, size_t n, const char *out)
{
    oc_train_config_init(c);
    snprintf(spec, n, "idx:%s", tmpdir);
    c->data = spec;
    c->model = tmp_path("net.json");
    c->epochs = 3;
    c->batch = 16;
    c->seed = 5;
    c->workers = 1;
    c->augment = "none";
    c->out = out;
}

static void stop_after_an_epochs_last_step_then_resume(void)
{
    char spec[1100], out_a[1100], out_b[1100];
    oc_train_config c;
    oc_model *a = NULL, *b = NULL;
    FILE *f = fopen(tmp_path("net.json"), "w");
    T_CHECK(f && fputs(net, f) >= 0 && fclose(f) == 0, "writing the model spec");
    T_CHECK(write_idx("train", 64) && write_idx("t10k", 24), "writing the data");
    snprintf(out_a, sizeof out_a, "%s", tmp_path("a.ocm"));
    snprintf(out_b, sizeof out_b, "%s", tmp_path("b.ocm"));

    config(&c, spec, sizeof spec, out_a); /* uninterrupted */
    T_CHECK(oc_train(&c, NULL) == OC_OK, "uninterrupted run: %s", oc_last_error());

    config(&c, spec, sizeof spec, out_b);
    c.progress = stop_at_epoch_end;
    c.stop = &stop_flag;
    T_CHECK(oc_train(&c, NULL) == OC_ERR_INTERRUPTED, "the stop was not taken: %s",
            oc_last_error());
    stop_flag = 0;

    config(&c, spec, sizeof spec, out_b);
    c.resume = tmp_path("b.ocm.ckpt");
    T_CHECK(oc_train(&c, NULL) == OC_OK, "resume: %s", oc_last_error());

    T_CHECK(oc_model_load(out_a, &a) == OC_OK && oc_model_load(out_b, &b) == OC_OK,
            "loading the models: %s", oc_last_error());
    if (a && b) {
        size_t na, nb;
        const float *pa = oc_model_params(a, &na), *pb = oc_model_params(b, &nb);
        T_CHECK(na == nb && na > 0 && !memcmp(pa, pb, na * sizeof *pa),
                "resumed weights differ from the uninterrupted run's");
    }
    oc_model_free(a);
    oc_model_free(b);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"stop_after_an_epochs_last_step_then_resume", stop_after_an_epochs_last_step_then_resume},
    };
    int rc;
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    rc = oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    oc_test_remove_dir(tmpdir);
    return rc;
}
