/* io: the model file (save -> load is bitwise exact; bad files are rejected with clear messages)
 * and training checkpoints. */
#include "test.h"
#include "core/core.h"
#include "io/io.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static int make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/oc_mf_test_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        T_CHECK(0, "mkdtemp: %s", strerror(errno));
        return 0;
    }
    return 1;
}

static void remove_tmpdir(void)
{
    oc_test_remove_dir(tmpdir);
}

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

enum { IMG = 16, BATCH = 2 };

/* A zoo model with random weights, non-default batch-norm statistics, class names,
 * preprocessing and metadata. */
static oc_model *make_model(const char *name, int classes)
{
    oc_model *m = NULL;
    oc_rng r;
    size_t np = 0, ns = 0;
    float *p, *s;
    char buf[32];
    const char *names[16];
    char store[16][16];
    oc_preprocess *pp;

    if (oc_model_create(&m, name, IMG, IMG, 3, classes, 11) != OC_OK) {
        T_CHECK(0, "create %s: %s", name, oc_last_error());
        return NULL;
    }
    oc_rng_seed(&r, 99, 0);
    p = oc_model_params(m, &np);
    s = oc_model_state(m, &ns);
    for (size_t i = 0; i < np; i++)
        p[i] += 0.05f * oc_rng_normal(&r); /* gamma / beta away from 1 / 0 too */
    for (int i = 0; i < oc_model_num_tensors(m); i++) {
        const oc_param_info *t = oc_model_tensor(m, i);
        if (t->kind != OC_PARAM_STATE)
            continue;
        for (size_t k = 0; k < t->numel; k++)
            s[t->offset + k] = ends_with(t->name, "running_var") ? 0.5f + oc_rng_uniform(&r)
                                                                 : 0.3f * oc_rng_normal(&r);
    }
    for (int i = 0; i < classes && i < 16; i++) {
        snprintf(store[i], sizeof store[i], "class \"%c\"\xc3\xa9", 'a' + i);
        names[i] = store[i];
    }
    T_CHECK(oc_model_set_class_names(m, classes, names) == OC_OK, "class names: %s",
            oc_last_error());
    pp = oc_model_preprocess(m);
    pp->height = IMG + 4;
    pp->width = IMG + 2;
    pp->resize = OC_RESIZE_CENTER_CROP;
    for (int c = 0; c < 3; c++) {
        pp->mean[c] = 0.4914f + 0.01f * (float)c;
        pp->std[c] = 0.2470f / (float)(c + 3);
    }
    T_CHECK(oc_model_set_meta(m, "training", "{\"epochs\": 3, \"lr\": 0.1, \"data\": \"cifar10:x\"}") ==
                OC_OK,
            "set meta: %s", oc_last_error());
    snprintf(buf, sizeof buf, "[%.3f, 0.5, 0.25]", 1.0);
    T_CHECK(oc_model_set_meta(m, "history", buf) == OC_OK, "set meta: %s", oc_last_error());
    T_CHECK(oc_model_set_meta(m, "split", "{\"val\": 0.2, \"seed\": 7}") == OC_OK, "set meta");
    return m;
}

static float *input_batch(int n)
{
    oc_rng r;
    float *x = malloc(sizeof *x * (size_t)n * IMG * IMG * 3);
    oc_rng_seed(&r, 5, 1);
    for (int i = 0; i < n * IMG * IMG * 3; i++)
        x[i] = oc_rng_normal(&r);
    return x;
}

/* Inference logits of m on x, copied. */
static float *logits_of(oc_model *m, const float *x)
{
    const float *y = NULL;
    int k = oc_model_num_classes(m);
    float *out;
    if (oc_model_forward(m, x, BATCH, 0, &y) != OC_OK) {
        T_CHECK(0, "forward: %s", oc_last_error());
        return NULL;
    }
    out = malloc(sizeof *out * (size_t)BATCH * (size_t)k);
    memcpy(out, y, sizeof *out * (size_t)BATCH * (size_t)k);
    return out;
}

/* Everything that must survive a save/load round trip. */
static void check_same_model(oc_model *a, oc_model *b, const float *x, const char *what)
{
    size_t na = 0, nb = 0;
    float *pa, *pb, *la, *lb;
    int k = oc_model_num_classes(a);
    char *ja, *jb;
    const oc_preprocess *qa, *qb;

    T_CHECK(oc_model_num_classes(b) == k, "%s: classes %d vs %d", what, oc_model_num_classes(b), k);
    pa = oc_model_params(a, &na);
    pb = oc_model_params(b, &nb);
    T_CHECK(na == nb && memcmp(pa, pb, na * sizeof(float)) == 0, "%s: params differ", what);
    pa = oc_model_state(a, &na);
    pb = oc_model_state(b, &nb);
    T_CHECK(na == nb && (na == 0 || memcmp(pa, pb, na * sizeof(float)) == 0), "%s: state differs",
            what);
    ja = oc_model_to_json(a);
    jb = oc_model_to_json(b);
    T_CHECK(ja && jb && !strcmp(ja, jb), "%s: graph JSON differs", what);
    free(ja);
    free(jb);
    for (int i = 0; i < k; i++)
        T_CHECK(!strcmp(oc_model_class_name(a, i), oc_model_class_name(b, i)),
                "%s: class %d '%s' vs '%s'", what, i, oc_model_class_name(a, i),
                oc_model_class_name(b, i));
    qa = oc_model_preprocess(a);
    qb = oc_model_preprocess(b);
    T_CHECK(qa->height == qb->height && qa->width == qb->width && qa->channels == qb->channels &&
                qa->resize == qb->resize && !memcmp(qa->mean, qb->mean, 3 * sizeof(float)) &&
                !memcmp(qa->std, qb->std, 3 * sizeof(float)),
            "%s: preprocessing differs (%dx%d mean %.9g vs %dx%d mean %.9g)", what, qa->height,
            qa->width, (double)qa->mean[0], qb->height, qb->width, (double)qb->mean[0]);
    T_CHECK(oc_model_num_meta(a) == oc_model_num_meta(b), "%s: %d vs %d metadata keys", what,
            oc_model_num_meta(a), oc_model_num_meta(b));
    for (int i = 0; i < oc_model_num_meta(a); i++) {
        const char *key = oc_model_meta_key(a, i), *vb = oc_model_get_meta(b, key);
        T_CHECK(vb && !strcmp(vb, oc_model_get_meta(a, key)), "%s: metadata '%s' = %s", what, key,
                vb ? vb : "(missing)");
    }
    la = logits_of(a, x);
    lb = logits_of(b, x);
    if (la && lb) {
        double maxd = 0;
        for (int i = 0; i < BATCH * k; i++) {
            double d = (double)la[i] - (double)lb[i];
            maxd = d > maxd ? d : -d > maxd ? -d : maxd;
        }
        T_CHECK(memcmp(la, lb, sizeof *la * (size_t)(BATCH * k)) == 0,
                "%s: logits not bitwise identical (max |diff| %.3g)", what, maxd);
        oc_test_note("%s: %d logits bitwise identical (e.g. %.6f)", what, BATCH * k,
                     (double)lb[0]);
    }
    free(la);
    free(lb);
}

static void round_trip(const char *name, int classes)
{
    oc_model *m, *back = NULL;
    float *x = input_batch(BATCH);
    char path[256];
    double t0, t1, t2;
    oc_st_file *f = NULL;

    if (!make_tmpdir())
        goto done;
    m = make_model(name, classes);
    if (!m)
        goto done;
    tmp_path(path, sizeof path, "model.ocm");
    t0 = oc_now();
    T_CHECK(oc_model_save(m, path) == OC_OK, "save: %s", oc_last_error());
    t1 = oc_now();
    T_CHECK(oc_model_load(path, &back) == OC_OK, "load: %s", oc_last_error());
    t2 = oc_now();
    if (back) {
        check_same_model(m, back, x, name);
        /* what the header promises: a valid safetensors file with ocelot's metadata */
        if (oc_st_open(path, &f) == OC_OK) {
            T_CHECK(!strcmp(oc_st_meta_get(f, "format"), "ocelot") &&
                        !strcmp(oc_st_meta_get(f, "format_version"), "1"),
                    "format metadata");
            T_CHECK(oc_st_num_tensors(f) == oc_model_num_tensors(m), "%d tensors in the file",
                    oc_st_num_tensors(f));
            oc_test_note("%s: %d tensors, %lld parameters; save %.1f ms, load %.1f ms", name,
                         oc_st_num_tensors(f), (long long)oc_model_param_count(m),
                         (t1 - t0) * 1e3, (t2 - t1) * 1e3);
            oc_st_close(f);
        } else {
            T_CHECK(0, "reopen: %s", oc_last_error());
        }
        /* saving the loaded model reproduces the file's tensors */
        char again[256];
        size_t na = 0, nb = 0;
        tmp_path(again, sizeof again, "again.ocm");
        T_CHECK(oc_model_save(back, again) == OC_OK, "re-save: %s", oc_last_error());
        FILE *fa = fopen(path, "rb"), *fb = fopen(again, "rb");
        if (fa && fb) {
            static unsigned char ba[1 << 16], bb[1 << 16];
            int same = 1;
            for (;;) {
                na = fread(ba, 1, sizeof ba, fa);
                nb = fread(bb, 1, sizeof bb, fb);
                if (na != nb || memcmp(ba, bb, na)) {
                    same = 0;
                    break;
                }
                if (na == 0)
                    break;
            }
            T_CHECK(same, "re-saved file differs from the original");
        }
        if (fa)
            fclose(fa);
        if (fb)
            fclose(fb);
    }
    oc_model_free(back);
    oc_model_free(m);
done:
    free(x);
    remove_tmpdir();
}

static void resnet20_round_trip_bitwise(void)
{
    round_trip("resnet20", 10);
}

static void cnn_round_trip_bitwise(void)
{
    round_trip("cnn", 7);
}

/* ---------------------------------------------------------------- edited files */

typedef struct {
    const char *drop_tensor;   /* leave this tensor out */
    const char *reshape;       /* reverse this tensor's dims */
    const char *as_i32;        /* relabel this tensor's dtype as I32 */
    int add_tensor;            /* add an unknown tensor */
    const char *meta_key;      /* set (or with NULL value remove) this metadata key */
    const char *meta_value;
} edit;

/* Copies src to dst with one edit applied, through the generic safetensors layer. */
static int rewrite(const char *src, const char *dst, const edit *e)
{
    oc_st_file *f = NULL;
    oc_st_tensor *t;
    oc_st_meta *md;
    int n = 0, nm = 0, ok;
    static const float extra[3] = {1, 2, 3};
    if (oc_st_open(src, &f) != OC_OK) {
        T_CHECK(0, "open %s: %s", src, oc_last_error());
        return 0;
    }
    t = calloc((size_t)oc_st_num_tensors(f) + 1, sizeof *t);
    md = calloc((size_t)oc_st_num_meta(f) + 1, sizeof *md);
    for (int i = 0; i < oc_st_num_tensors(f); i++) {
        oc_st_tensor x = *oc_st_tensor_at(f, i);
        if (e->drop_tensor && !strcmp(x.name, e->drop_tensor))
            continue;
        if (e->reshape && !strcmp(x.name, e->reshape))
            for (int d = 0; d < x.ndim / 2; d++) {
                int64_t tmp = x.shape[d];
                x.shape[d] = x.shape[x.ndim - 1 - d];
                x.shape[x.ndim - 1 - d] = tmp;
            }
        if (e->as_i32 && !strcmp(x.name, e->as_i32))
            x.dtype = OC_ST_I32;
        t[n++] = x;
    }
    if (e->add_tensor)
        t[n++] = (oc_st_tensor){.name = "stray.weight", .dtype = OC_ST_F32, .ndim = 1,
                                .shape = {3}, .data = extra};
    for (int i = 0; i < oc_st_num_meta(f); i++) {
        oc_st_meta x = *oc_st_meta_at(f, i);
        if (e->meta_key && !strcmp(x.key, e->meta_key)) {
            if (!e->meta_value)
                continue;
            x.value = e->meta_value;
        }
        md[nm++] = x;
    }
    ok = oc_st_write(dst, t, n, md, nm) == OC_OK;
    T_CHECK(ok, "rewrite: %s", oc_last_error());
    free(t);
    free(md);
    oc_st_close(f);
    return ok;
}

/* Loads an edited copy of `src`; expects OC_ERR_FORMAT with every `want` substring. */
static void expect_rejected(const char *src, const edit *e, const char *label, const char *want1,
                            const char *want2)
{
    char dst[256];
    oc_model *m = NULL;
    oc_status st;
    tmp_path(dst, sizeof dst, "edited.ocm");
    if (!rewrite(src, dst, e))
        return;
    st = oc_model_load(dst, &m);
    T_CHECK(st == OC_ERR_FORMAT, "%s: load returned %s", label, oc_status_name(st));
    T_CHECK(m == NULL, "%s: model returned on failure", label);
    oc_model_free(m);
    T_CHECK(strstr(oc_last_error(), want1) != NULL, "%s: message lacks '%s': %s", label, want1,
            oc_last_error());
    if (want2)
        T_CHECK(strstr(oc_last_error(), want2) != NULL, "%s: message lacks '%s': %s", label,
                want2, oc_last_error());
    T_CHECK(strstr(oc_last_error(), dst) != NULL, "%s: message does not name the file: %s", label,
            oc_last_error());
    oc_test_note("%s: %s", label, oc_last_error());
}

static void bad_model_files_rejected(void)
{
    oc_model *m;
    char path[256];
    const char *conv = NULL, *bn_var = NULL;
    if (!make_tmpdir())
        return;
    m = make_model("resnet20", 10);
    if (!m)
        goto cleanup;
    tmp_path(path, sizeof path, "model.ocm");
    if (oc_model_save(m, path) != OC_OK) {
        T_CHECK(0, "save: %s", oc_last_error());
        goto cleanup;
    }
    for (int i = 0; i < oc_model_num_tensors(m); i++) {
        const oc_param_info *t = oc_model_tensor(m, i);
        if (!conv && t->ndim == 4 && t->shape[0] != t->shape[3])
            conv = t->name;
        if (!bn_var && ends_with(t->name, "running_var"))
            bn_var = t->name;
    }
    T_CHECK(conv && bn_var, "no non-square conv weight or running_var in resnet20");
    if (!conv || !bn_var)
        goto cleanup;

    expect_rejected(path, &(edit){.meta_key = "format_version", .meta_value = "7"},
                    "newer version", "model file version 7 is newer", "reads 1");
    expect_rejected(path, &(edit){.meta_key = "format_version", .meta_value = "one"},
                    "garbled version", "unknown model file version 'one'", "reads 1");
    expect_rejected(path, &(edit){.meta_key = "format_version", .meta_value = NULL},
                    "no version", "no format_version", NULL);
    expect_rejected(path, &(edit){.meta_key = "format", .meta_value = "pt"}, "other format",
                    "not an ocelot model file", "'pt'");
    expect_rejected(path, &(edit){.meta_key = "format", .meta_value = NULL}, "no format",
                    "not an ocelot model file", NULL);
    expect_rejected(path, &(edit){.drop_tensor = conv}, "missing weight", conv, "missing");
    expect_rejected(path, &(edit){.drop_tensor = bn_var}, "missing running_var", bn_var,
                    "missing");
    expect_rejected(path, &(edit){.reshape = conv}, "wrong shape", conv, "the graph expects");
    expect_rejected(path, &(edit){.as_i32 = conv}, "wrong dtype", conv, "dtype I32");
    expect_rejected(path, &(edit){.add_tensor = 1}, "unknown tensor", "stray.weight",
                    "unexpected");
    expect_rejected(path, &(edit){.meta_key = "graph", .meta_value = "{\"nodes\": 3"},
                    "broken graph", "graph", NULL);
    expect_rejected(path, &(edit){.meta_key = "graph", .meta_value = NULL}, "no graph", "graph",
                    "missing");
    expect_rejected(path, &(edit){.meta_key = "input", .meta_value = "32x32"}, "bad input",
                    "input", "HxWxC");
    expect_rejected(path, &(edit){.meta_key = "classes", .meta_value = "[\"a\", 3]"},
                    "bad classes", "classes", NULL);
    expect_rejected(path, &(edit){.meta_key = "classes", .meta_value = "[\"a\", \"b\"]"},
                    "class count != graph", "", NULL);
    expect_rejected(path, &(edit){.meta_key = "preprocess", .meta_value = "{\"height\": 3}"},
                    "bad preprocess", "preprocess", NULL);

    /* a truncated model file goes through the same validation */
    {
        FILE *in = fopen(path, "rb"), *out;
        char cut[256];
        static unsigned char buf[4096];
        size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
        oc_model *bad = NULL;
        if (in)
            fclose(in);
        tmp_path(cut, sizeof cut, "cut.ocm");
        out = fopen(cut, "wb");
        if (out) {
            fwrite(buf, 1, n, out);
            fclose(out);
        }
        T_CHECK(oc_model_load(cut, &bad) == OC_ERR_FORMAT && !bad, "truncated model accepted");
        T_CHECK(strstr(oc_last_error(), "truncated") != NULL, "message: %s", oc_last_error());
    }
    /* and a file that is not there */
    {
        oc_model *none = NULL;
        T_CHECK(oc_model_load("/nonexistent/model.ocm", &none) == OC_ERR_IO, "missing file");
    }
cleanup:
    oc_model_free(m);
    remove_tmpdir();
}

static void reserved_metadata_key_rejected(void)
{
    oc_model *m = NULL;
    char path[256];
    if (!make_tmpdir())
        return;
    if (oc_model_create(&m, "cnn", IMG, IMG, 3, 4, 1) != OC_OK) {
        T_CHECK(0, "create: %s", oc_last_error());
        goto cleanup;
    }
    tmp_path(path, sizeof path, "m.ocm");
    T_CHECK(oc_model_save(m, "/nonexistent-dir/m.ocm") == OC_ERR_IO, "missing directory: %s",
            oc_last_error());
    if (oc_model_set_meta(m, "graph", "{}") == OC_OK) {
        T_CHECK(oc_model_save(m, path) == OC_ERR_ARG, "reserved key 'graph' saved");
        T_CHECK(strstr(oc_last_error(), "reserved") && strstr(oc_last_error(), "graph"),
                "message: %s", oc_last_error());
        T_CHECK(access(path, F_OK) != 0, "a file was written");
    }
cleanup:
    oc_model_free(m);
    remove_tmpdir();
}

/* ---------------------------------------------------------------- checkpoints */

static void checkpoint_round_trip(void)
{
    oc_model *m = NULL, *back = NULL, *plain = NULL;
    oc_checkpoint *ck = NULL;
    float *x = input_batch(BATCH), *mom = NULL, *got = NULL;
    size_t np = 0;
    int64_t steps[2] = {1234, 5};
    char path[256], model_path[256], rng_text[OC_RNG_TEXT_LEN], meta[256];
    oc_rng data_rng, r2;
    oc_rng *mr;

    if (!make_tmpdir())
        goto done;
    m = make_model("cnn", 5);
    if (!m)
        goto done;
    oc_model_params(m, &np);
    mom = malloc(sizeof *mom * np);
    got = malloc(sizeof *got * np);
    for (size_t i = 0; i < np; i++)
        mom[i] = (float)i * 1e-3f - 0.5f;
    mr = oc_model_rng(m);
    oc_rng_seed(mr, 77, 3);
    for (int i = 0; i < 5; i++)
        oc_rng_u64(mr);
    oc_rng_seed(&data_rng, 31, 2);
    oc_rng_to_text(&data_rng, rng_text);
    snprintf(meta, sizeof meta, "{\"epoch\": 3, \"step\": 1234, \"data_rng\": \"%s\"}", rng_text);
    {
        oc_st_tensor extra[2] = {
            {.name = "sgd.momentum", .dtype = OC_ST_F32, .ndim = 1, .shape = {(int64_t)np},
             .data = mom},
            {.name = "counters", .dtype = OC_ST_I64, .ndim = 1, .shape = {2}, .data = steps},
        };
        tmp_path(path, sizeof path, "ckpt.ocm");
        T_CHECK(oc_checkpoint_save(path, m, extra, 2, meta) == OC_OK, "save: %s", oc_last_error());
        T_CHECK(oc_checkpoint_save(path, m, extra, 2, "{not json") == OC_ERR_ARG,
                "invalid JSON accepted");
    }
    T_CHECK(oc_checkpoint_load(path, &back, &ck) == OC_OK, "load: %s", oc_last_error());
    if (back && ck) {
        check_same_model(m, back, x, "checkpoint");
        T_CHECK(!memcmp(oc_model_rng(back), mr, sizeof *mr), "model RNG not restored");
        T_CHECK(!strcmp(oc_checkpoint_meta(ck), meta), "meta '%s'", oc_checkpoint_meta(ck));
        T_CHECK(oc_checkpoint_num_tensors(ck) == 2, "%d extra tensors",
                oc_checkpoint_num_tensors(ck));
        T_CHECK(oc_checkpoint_read_f32(ck, "sgd.momentum", got, np) == OC_OK, "read: %s",
                oc_last_error());
        T_CHECK(!memcmp(got, mom, sizeof *got * np), "momentum differs");
        T_CHECK(oc_checkpoint_read_f32(ck, "sgd.momentum", got, np - 1) == OC_ERR_FORMAT &&
                    strstr(oc_last_error(), "sgd.momentum"),
                "wrong size accepted: %s", oc_last_error());
        T_CHECK(oc_checkpoint_read_f32(ck, "counters", got, 2) == OC_ERR_FORMAT &&
                    strstr(oc_last_error(), "I64"),
                "wrong dtype accepted: %s", oc_last_error());
        T_CHECK(oc_checkpoint_read_f32(ck, "adam.m", got, np) == OC_ERR_FORMAT &&
                    strstr(oc_last_error(), "adam.m"),
                "absent tensor: %s", oc_last_error());
        const oc_st_tensor *c = oc_checkpoint_find(ck, "counters");
        T_CHECK(c && c->dtype == OC_ST_I64 && !memcmp(c->data, steps, sizeof steps), "counters");
        T_CHECK(oc_rng_from_text(rng_text, &r2) == OC_OK && !memcmp(&r2, &data_rng, sizeof r2),
                "RNG text round trip");
        T_CHECK(oc_rng_from_text("12zz", &r2) == OC_ERR_FORMAT, "bad RNG text accepted");
    }
    /* a checkpoint is also a model file */
    T_CHECK(oc_model_load(path, &plain) == OC_OK, "model_load of a checkpoint: %s",
            oc_last_error());
    if (plain)
        check_same_model(m, plain, x, "checkpoint as model");
    /* and a model file is not a checkpoint */
    oc_checkpoint_free(ck);
    ck = NULL;
    oc_model_free(back);
    back = NULL;
    tmp_path(model_path, sizeof model_path, "model.ocm");
    T_CHECK(oc_model_save(m, model_path) == OC_OK, "save: %s", oc_last_error());
    T_CHECK(oc_checkpoint_load(model_path, &back, &ck) == OC_ERR_FORMAT && !back && !ck,
            "model file loaded as a checkpoint");
    T_CHECK(strstr(oc_last_error(), "not a checkpoint") != NULL, "message: %s", oc_last_error());
done:
    oc_checkpoint_free(ck);
    oc_model_free(back);
    oc_model_free(plain);
    oc_model_free(m);
    free(mom);
    free(got);
    free(x);
    remove_tmpdir();
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"resnet20_round_trip_bitwise", resnet20_round_trip_bitwise},
        {"cnn_round_trip_bitwise", cnn_round_trip_bitwise},
        {"bad_model_files_rejected", bad_model_files_rejected},
        {"reserved_metadata_key_rejected", reserved_metadata_key_rejected},
        {"checkpoint_round_trip", checkpoint_round_trip},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
