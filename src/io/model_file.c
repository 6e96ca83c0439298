/* The ocelot model file and training checkpoints on top of the safetensors layer. The layout is
 * documented in docs/model-file.md; this file uses only the public nn API. */
#include "io.h"

#include "core/core.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_FORMAT "ocelot"
/* Bump when the layout changes in a way older readers would misread; readers reject newer
 * versions, naming both (STYLE.md, "Files on disk"). */
#define MODEL_FORMAT_VERSION 1
#define VERSION_TEXT_(v) #v
#define VERSION_TEXT(v) VERSION_TEXT_(v)

/* Metadata keys the file format itself uses; model metadata (oc_model_set_meta) may not use
 * them. */
static const char *const reserved_keys[] = {
    "format", "format_version", "ocelot_version", "graph",    "input",
    "classes", "preprocess",    "checkpoint",     "model_rng", NULL,
};

static int is_reserved(const char *key)
{
    for (int i = 0; reserved_keys[i]; i++)
        if (!strcmp(key, reserved_keys[i]))
            return 1;
    return 0;
}

/* ================================================================ building a file */

/* What goes into one file: tensors and metadata, plus the strings allocated for them. */
typedef struct {
    oc_st_tensor *tensors;
    int n_tensors, cap_tensors;
    oc_st_meta *meta;
    int n_meta, cap_meta;
    char **owned;
    int n_owned, cap_owned;
} file_plan;

static void plan_free(file_plan *p)
{
    for (int i = 0; i < p->n_owned; i++)
        free(p->owned[i]);
    free(p->owned);
    free(p->tensors);
    free(p->meta);
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
    void *q;
    int nc;
    if (need <= *cap)
        return 1;
    nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    q = realloc(*arr, (size_t)nc * elem);
    if (!q)
        return 0;
    *arr = q;
    *cap = nc;
    return 1;
}

/* Takes ownership of s (freed with the plan). Returns s, or NULL (and frees s) on failure. */
static char *plan_own(file_plan *p, char *s)
{
    if (!s || !grow((void **)&p->owned, &p->cap_owned, p->n_owned + 1, sizeof *p->owned)) {
        free(s);
        return NULL;
    }
    p->owned[p->n_owned++] = s;
    return s;
}

static oc_status plan_meta(file_plan *p, const char *key, const char *value)
{
    if (!value || !grow((void **)&p->meta, &p->cap_meta, p->n_meta + 1, sizeof *p->meta))
        return oc_fail(OC_ERR_NOMEM, "out of memory building the model file header");
    p->meta[p->n_meta].key = key;
    p->meta[p->n_meta].value = value;
    p->n_meta++;
    return OC_OK;
}

static oc_status plan_tensor(file_plan *p, const oc_st_tensor *t)
{
    if (!grow((void **)&p->tensors, &p->cap_tensors, p->n_tensors + 1, sizeof *p->tensors))
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    p->tensors[p->n_tensors++] = *t;
    return OC_OK;
}

static const char *resize_name(oc_resize_mode r)
{
    return r == OC_RESIZE_CENTER_CROP ? "center_crop" : "stretch";
}

static char *preprocess_json(const oc_preprocess *pp)
{
    cJSON *j = cJSON_CreateObject(), *mean, *std;
    char *s = NULL;
    int c = pp->channels < 0 ? 0 : pp->channels > 4 ? 4 : pp->channels;
    if (!j || !cJSON_AddNumberToObject(j, "height", pp->height) ||
        !cJSON_AddNumberToObject(j, "width", pp->width) ||
        !cJSON_AddNumberToObject(j, "channels", pp->channels) ||
        !(mean = cJSON_AddArrayToObject(j, "mean")) || !(std = cJSON_AddArrayToObject(j, "std")) ||
        !cJSON_AddStringToObject(j, "resize", resize_name(pp->resize)))
        goto done;
    /* floats widen to doubles exactly, and cJSON prints up to 17 significant digits when fewer
     * do not round-trip, so the values read back are bitwise the same floats */
    for (int i = 0; i < c; i++) {
        cJSON *a = cJSON_CreateNumber((double)pp->mean[i]), *b = cJSON_CreateNumber((double)pp->std[i]);
        if (!a || !b || !cJSON_AddItemToArray(mean, a) || !cJSON_AddItemToArray(std, b)) {
            cJSON_Delete(a);
            cJSON_Delete(b);
            goto done;
        }
    }
    s = cJSON_PrintUnformatted(j);
done:
    cJSON_Delete(j);
    return s;
}

static char *classes_json(const oc_model *m)
{
    int n = oc_model_num_classes(m);
    cJSON *a = cJSON_CreateArray();
    char *s = NULL;
    if (!a)
        return NULL;
    for (int i = 0; i < n; i++) {
        const char *name = oc_model_class_name(m, i);
        cJSON *v = cJSON_CreateString(name ? name : "");
        if (!v || !cJSON_AddItemToArray(a, v)) {
            cJSON_Delete(v);
            goto done;
        }
    }
    s = cJSON_PrintUnformatted(a);
done:
    cJSON_Delete(a);
    return s;
}

static char *dup_printf(const char *fmt, ...) OC_PRINTF(1, 2);
static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* Fills `p` with the model's tensors (views into its buffers) and metadata. */
static oc_status plan_model(file_plan *p, const oc_model *cm)
{
    oc_model *m = (oc_model *)cm; /* the buffer getters are not const; nothing is modified */
    const float *params, *state;
    size_t n_params = 0, n_state = 0;
    int h = 0, w = 0, c = 0;
    oc_status st;

    params = oc_model_params(m, &n_params);
    state = oc_model_state(m, &n_state);
    for (int i = 0; i < oc_model_num_tensors(cm); i++) {
        const oc_param_info *pi = oc_model_tensor(cm, i);
        int is_state = pi->kind == OC_PARAM_STATE;
        size_t avail = is_state ? n_state : n_params;
        oc_st_tensor t = {.name = pi->name, .dtype = OC_ST_F32, .ndim = pi->ndim};
        OC_ASSERT(pi->ndim >= 0 && pi->ndim <= 4);
        OC_ASSERT(pi->offset <= avail && pi->numel <= avail - pi->offset);
        for (int d = 0; d < pi->ndim; d++)
            t.shape[d] = pi->shape[d];
        t.data = (is_state ? state : params) + pi->offset;
        if ((st = plan_tensor(p, &t)) != OC_OK)
            return st;
    }

    oc_model_input_shape(cm, &h, &w, &c);
    if ((st = plan_meta(p, "format", MODEL_FORMAT)) != OC_OK ||
        (st = plan_meta(p, "format_version", VERSION_TEXT(MODEL_FORMAT_VERSION))) != OC_OK ||
        (st = plan_meta(p, "ocelot_version", oc_version())) != OC_OK ||
        (st = plan_meta(p, "graph", plan_own(p, oc_model_to_json(cm)))) != OC_OK ||
        (st = plan_meta(p, "input", plan_own(p, dup_printf("%dx%dx%d", h, w, c)))) != OC_OK ||
        (st = plan_meta(p, "classes", plan_own(p, classes_json(cm)))) != OC_OK ||
        (st = plan_meta(p, "preprocess", plan_own(p, preprocess_json(oc_model_preprocess(m))))) !=
            OC_OK)
        return st;
    for (int i = 0; i < oc_model_num_meta(cm); i++) {
        const char *key = oc_model_meta_key(cm, i);
        if (is_reserved(key))
            return oc_fail(OC_ERR_ARG,
                           "model metadata key '%s' is reserved by the model file format", key);
        if ((st = plan_meta(p, key, oc_model_get_meta(cm, key))) != OC_OK)
            return st;
    }
    return OC_OK;
}

oc_status oc_model_save(const oc_model *m, const char *path)
{
    file_plan p;
    oc_status st;
    if (!m || !path)
        return oc_fail(OC_ERR_ARG, "oc_model_save: NULL argument");
    memset(&p, 0, sizeof p);
    st = plan_model(&p, m);
    if (st == OC_OK)
        st = oc_st_write(path, p.tensors, p.n_tensors, p.meta, p.n_meta);
    plan_free(&p);
    return st;
}

/* ================================================================ reading a file */

/* "HxWxC" with each part in [1, 65536]; 1 if well formed. */
static int parse_hwc(const char *s, int *h, int *w, int *c)
{
    int *out[3] = {h, w, c};
    for (int i = 0; i < 3; i++) {
        char *end;
        long v;
        if (*s < '0' || *s > '9')
            return 0;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || v < 1 || v > 65536 || *end != (i < 2 ? 'x' : 0))
            return 0;
        *out[i] = (int)v;
        s = end + (i < 2);
    }
    return 1;
}

static oc_status parse_input(const char *what, const char *s, int *h, int *w, int *c)
{
    if (!s)
        return oc_fail(OC_ERR_FORMAT, "%s: metadata \"input\" is missing", what);
    if (!parse_hwc(s, h, w, c))
        return oc_fail(OC_ERR_FORMAT, "%s: metadata \"input\" is '%.40s', expected HxWxC", what,
                       s);
    return OC_OK;
}

/* Class names from the JSON array in "classes"; *names is a malloc'd array of pointers into
 * *tree. */
static oc_status parse_classes(const char *what, const char *s, cJSON **tree, const char ***names,
                               int *n)
{
    const cJSON *v;
    int k = 0;
    if (!s)
        return oc_fail(OC_ERR_FORMAT, "%s: metadata \"classes\" is missing", what);
    *tree = cJSON_Parse(s);
    if (!cJSON_IsArray(*tree) || cJSON_GetArraySize(*tree) < 1)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: metadata \"classes\" is not a non-empty JSON array of names", what);
    *n = cJSON_GetArraySize(*tree);
    *names = calloc((size_t)*n, sizeof **names);
    if (!*names)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    cJSON_ArrayForEach(v, *tree)
    {
        if (!cJSON_IsString(v))
            return oc_fail(OC_ERR_FORMAT, "%s: metadata \"classes\": entry %d is not a string",
                           what, k);
        (*names)[k++] = v->valuestring;
    }
    return OC_OK;
}

static int json_int(const cJSON *j, const char *key, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

static oc_status parse_preprocess(const char *what, const char *s, oc_preprocess *pp)
{
    cJSON *j;
    const cJSON *mean, *std, *resize;
    oc_preprocess r;
    oc_status st = OC_OK;
    int k;

    if (!s)
        return oc_fail(OC_ERR_FORMAT, "%s: metadata \"preprocess\" is missing", what);
    j = cJSON_Parse(s);
    memset(&r, 0, sizeof r);
    if (!cJSON_IsObject(j) || !json_int(j, "height", 0, 65536, &r.height) ||
        !json_int(j, "width", 0, 65536, &r.width) || !json_int(j, "channels", 0, 4, &r.channels)) {
        st = oc_fail(OC_ERR_FORMAT,
                     "%s: metadata \"preprocess\" needs integer height, width and channels "
                     "(0..4)",
                     what);
        goto done;
    }
    mean = cJSON_GetObjectItemCaseSensitive(j, "mean");
    std = cJSON_GetObjectItemCaseSensitive(j, "std");
    if (!cJSON_IsArray(mean) || !cJSON_IsArray(std) ||
        cJSON_GetArraySize(mean) != r.channels || cJSON_GetArraySize(std) != r.channels) {
        st = oc_fail(OC_ERR_FORMAT,
                     "%s: metadata \"preprocess\": mean and std must be lists of %d numbers",
                     what, r.channels);
        goto done;
    }
    for (k = 0; k < r.channels; k++) {
        const cJSON *a = cJSON_GetArrayItem(mean, k), *b = cJSON_GetArrayItem(std, k);
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) {
            st = oc_fail(OC_ERR_FORMAT, "%s: metadata \"preprocess\": mean/std entry %d is not "
                         "a number", what, k);
            goto done;
        }
        r.mean[k] = (float)a->valuedouble;
        r.std[k] = (float)b->valuedouble;
    }
    for (; k < 4; k++) {
        r.mean[k] = 0.0f;
        r.std[k] = 1.0f;
    }
    resize = cJSON_GetObjectItemCaseSensitive(j, "resize");
    if (!cJSON_IsString(resize) || (strcmp(resize->valuestring, "stretch") &&
                                    strcmp(resize->valuestring, "center_crop"))) {
        st = oc_fail(OC_ERR_FORMAT,
                     "%s: metadata \"preprocess\": resize must be \"stretch\" or \"center_crop\"",
                     what);
        goto done;
    }
    r.resize = strcmp(resize->valuestring, "stretch") ? OC_RESIZE_CENTER_CROP : OC_RESIZE_STRETCH;
    *pp = r;
done:
    cJSON_Delete(j);
    return st;
}

static oc_status check_version(const char *what, const oc_st_file *f)
{
    const char *fmt = oc_st_meta_get(f, "format");
    const char *ver = oc_st_meta_get(f, "format_version");
    char *end;
    long v;
    if (!fmt)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: not an ocelot model file (a safetensors file without \"format\" in "
                       "its metadata)",
                       what);
    if (strcmp(fmt, MODEL_FORMAT))
        return oc_fail(OC_ERR_FORMAT,
                       "%s: not an ocelot model file (safetensors metadata says format '%.32s')",
                       what, fmt);
    if (!ver)
        return oc_fail(OC_ERR_FORMAT, "%s: model file has no format_version (this ocelot reads %d)",
                       what, MODEL_FORMAT_VERSION);
    errno = 0;
    v = strtol(ver, &end, 10);
    if (end == ver || *end || errno || v < 1)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: unknown model file version '%.32s' (this ocelot reads %d)", what, ver,
                       MODEL_FORMAT_VERSION);
    if (v > MODEL_FORMAT_VERSION)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: model file version %ld is newer than this ocelot (reads %d); upgrade "
                       "ocelot",
                       what, v, MODEL_FORMAT_VERSION);
    return OC_OK;
}

static void shape_text(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
}

/* Copies every tensor the graph declares from the file, after checking dtype and shape; rejects
 * tensors the graph does not know (except checkpoint extras). */
static oc_status load_tensors(const char *what, const oc_st_file *f, oc_model *m)
{
    size_t n_params = 0, n_state = 0;
    float *params = oc_model_params(m, &n_params), *state = oc_model_state(m, &n_state);
    size_t plen = strlen(OC_CKPT_PREFIX);
    char a[OC_ST_MAX_DIMS * 22], b[OC_ST_MAX_DIMS * 22];

    for (int i = 0; i < oc_model_num_tensors(m); i++) {
        const oc_param_info *pi = oc_model_tensor(m, i);
        const oc_st_tensor *t = oc_st_find(f, pi->name);
        int same = 1;
        if (!t)
            return oc_fail(OC_ERR_FORMAT, "%s: tensor '%s' is missing (the graph needs it)", what,
                           pi->name);
        if (t->dtype != OC_ST_F32)
            return oc_fail(OC_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32", what,
                           pi->name, oc_st_dtype_name(t->dtype));
        same = t->ndim == pi->ndim;
        for (int d = 0; same && d < pi->ndim; d++)
            same = t->shape[d] == pi->shape[d];
        if (!same) {
            shape_text(a, sizeof a, t->ndim, t->shape);
            shape_text(b, sizeof b, pi->ndim, pi->shape);
            return oc_fail(OC_ERR_FORMAT,
                           "%s: tensor '%s' has shape [%s], the graph expects [%s]", what,
                           pi->name, a, b);
        }
        OC_ASSERT(t->nbytes == pi->numel * sizeof(float));
        memcpy((pi->kind == OC_PARAM_STATE ? state : params) + pi->offset, t->data, t->nbytes);
    }
    for (int i = 0; i < oc_st_num_tensors(f); i++) {
        const oc_st_tensor *t = oc_st_tensor_at(f, i);
        if (strncmp(t->name, OC_CKPT_PREFIX, plen) && oc_model_find_tensor(m, t->name) < 0)
            return oc_fail(OC_ERR_FORMAT, "%s: unexpected tensor '%.64s' (not in the graph)",
                           what, t->name);
    }
    return OC_OK;
}

/* Model metadata: every key the format does not reserve. Values that are not JSON (another
 * tool's plain strings) are kept as JSON strings. */
static oc_status load_meta(const char *what, const oc_st_file *f, oc_model *m)
{
    for (int i = 0; i < oc_st_num_meta(f); i++) {
        const oc_st_meta *e = oc_st_meta_at(f, i);
        cJSON *j;
        oc_status st;
        if (is_reserved(e->key))
            continue;
        j = cJSON_Parse(e->value);
        if (j) {
            st = oc_model_set_meta(m, e->key, e->value);
        } else {
            cJSON *s = cJSON_CreateString(e->value);
            char *text = s ? cJSON_PrintUnformatted(s) : NULL;
            st = text ? oc_model_set_meta(m, e->key, text) : oc_fail(OC_ERR_NOMEM, "out of memory");
            free(text);
            cJSON_Delete(s);
        }
        cJSON_Delete(j);
        if (st != OC_OK)
            return oc_fail_context(st, "%s: metadata '%.64s'", what, e->key);
    }
    return OC_OK;
}

/* Validates and loads the model in `f`; `what` names the file in messages. */
static oc_status model_from_file(const char *what, const oc_st_file *f, oc_model **out)
{
    oc_model *m = NULL;
    cJSON *classes_tree = NULL;
    const char **names = NULL;
    const char *graph;
    int h = 0, w = 0, c = 0, n_classes = 0;
    oc_status st;

    *out = NULL;
    if ((st = check_version(what, f)) != OC_OK)
        return st;
    if ((st = parse_input(what, oc_st_meta_get(f, "input"), &h, &w, &c)) != OC_OK)
        return st;
    if ((st = parse_classes(what, oc_st_meta_get(f, "classes"), &classes_tree, &names,
                            &n_classes)) != OC_OK)
        goto cleanup;
    graph = oc_st_meta_get(f, "graph");
    if (!graph) {
        st = oc_fail(OC_ERR_FORMAT, "%s: metadata \"graph\" is missing", what);
        goto cleanup;
    }
    st = oc_model_from_json(&m, graph, strlen(graph), h, w, c, n_classes, 0);
    if (st != OC_OK) {
        st = oc_fail_context(OC_ERR_FORMAT, "%s: graph", what);
        goto cleanup;
    }
    if ((st = load_tensors(what, f, m)) != OC_OK)
        goto cleanup;
    if ((st = oc_model_set_class_names(m, n_classes, names)) != OC_OK) {
        oc_fail_context(st, "%s: classes", what);
        goto cleanup;
    }
    if ((st = parse_preprocess(what, oc_st_meta_get(f, "preprocess"), oc_model_preprocess(m))) !=
        OC_OK)
        goto cleanup;
    if ((st = load_meta(what, f, m)) != OC_OK)
        goto cleanup;
    *out = m;
    m = NULL;

cleanup:
    oc_model_free(m);
    free(names);
    cJSON_Delete(classes_tree);
    return st;
}

oc_status oc_model_load(const char *path, oc_model **out)
{
    oc_st_file *f = NULL;
    oc_status st;
    char what[600];
    if (!out || !path)
        return oc_fail(OC_ERR_ARG, "oc_model_load: NULL argument");
    *out = NULL;
    if ((st = oc_st_open(path, &f)) != OC_OK)
        return st;
    snprintf(what, sizeof what, "'%.512s'", path);
    st = model_from_file(what, f, out);
    oc_st_close(f);
    return st;
}

/* ================================================================ checkpoints */

struct oc_checkpoint {
    oc_st_file *file;
    const char *meta;     /* points into file */
    oc_st_tensor *extra;  /* names without the prefix, data in the file */
    int n_extra;
};

void oc_rng_to_text(const oc_rng *r, char out[OC_RNG_TEXT_LEN])
{
    for (int i = 0; i < 4; i++)
        snprintf(out + 16 * i, OC_RNG_TEXT_LEN - 16 * (size_t)i, "%016" PRIx64, r->s[i]);
}

oc_status oc_rng_from_text(const char *s, oc_rng *r)
{
    oc_rng t;
    if (!s || strlen(s) != 64)
        return oc_fail(OC_ERR_FORMAT, "RNG state must be 64 hex digits");
    for (int i = 0; i < 4; i++) {
        uint64_t v = 0;
        for (int k = 0; k < 16; k++) {
            char ch = s[16 * i + k];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (d < 0)
                return oc_fail(OC_ERR_FORMAT, "RNG state '%.64s' is not 64 hex digits", s);
            v = v << 4 | (uint64_t)d;
        }
        t.s[i] = v;
    }
    if (!(t.s[0] | t.s[1] | t.s[2] | t.s[3]))
        return oc_fail(OC_ERR_FORMAT, "RNG state is all zero (not a valid xoshiro state)");
    *r = t;
    return OC_OK;
}

oc_status oc_checkpoint_save(const char *path, const oc_model *m, const oc_st_tensor *extra,
                             int n_extra, const char *meta_json)
{
    file_plan p;
    oc_status st;
    cJSON *j;
    char rng[OC_RNG_TEXT_LEN];

    if (!m || !path || n_extra < 0 || (n_extra && !extra))
        return oc_fail(OC_ERR_ARG, "oc_checkpoint_save: bad arguments");
    if (!meta_json)
        meta_json = "{}";
    j = cJSON_Parse(meta_json);
    if (!j)
        return oc_fail(OC_ERR_ARG, "checkpoint metadata is not valid JSON");
    cJSON_Delete(j);

    memset(&p, 0, sizeof p);
    if ((st = plan_model(&p, m)) != OC_OK)
        goto cleanup;
    for (int i = 0; i < n_extra; i++) {
        oc_st_tensor t = extra[i];
        if (!t.name || !*t.name) {
            st = oc_fail(OC_ERR_ARG, "checkpoint tensor %d has no name", i);
            goto cleanup;
        }
        t.name = plan_own(&p, dup_printf("%s%s", OC_CKPT_PREFIX, extra[i].name));
        if (!t.name) {
            st = oc_fail(OC_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        if ((st = plan_tensor(&p, &t)) != OC_OK)
            goto cleanup;
    }
    oc_rng_to_text(oc_model_rng((oc_model *)m), rng);
    if ((st = plan_meta(&p, "checkpoint", meta_json)) != OC_OK ||
        (st = plan_meta(&p, "model_rng", rng)) != OC_OK)
        goto cleanup;
    st = oc_st_write(path, p.tensors, p.n_tensors, p.meta, p.n_meta);
cleanup:
    plan_free(&p);
    return st;
}

void oc_checkpoint_free(oc_checkpoint *c)
{
    if (!c)
        return;
    free(c->extra);
    oc_st_close(c->file);
    free(c);
}

oc_status oc_checkpoint_load(const char *path, oc_model **model, oc_checkpoint **ckpt)
{
    oc_checkpoint *c = NULL;
    oc_model *m = NULL;
    const char *rng;
    size_t plen = strlen(OC_CKPT_PREFIX);
    oc_status st;
    char what[600];

    if (!path || !model || !ckpt)
        return oc_fail(OC_ERR_ARG, "oc_checkpoint_load: NULL argument");
    *model = NULL;
    *ckpt = NULL;
    c = calloc(1, sizeof *c);
    if (!c)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    if ((st = oc_st_open(path, &c->file)) != OC_OK)
        goto fail;
    snprintf(what, sizeof what, "'%.512s'", path);
    if ((st = model_from_file(what, c->file, &m)) != OC_OK)
        goto fail;
    c->meta = oc_st_meta_get(c->file, "checkpoint");
    if (!c->meta) {
        st = oc_fail(OC_ERR_FORMAT, "%s is a model file, not a checkpoint (no training state)",
                     what);
        goto fail;
    }
    rng = oc_st_meta_get(c->file, "model_rng");
    if (rng && (st = oc_rng_from_text(rng, oc_model_rng(m))) != OC_OK) {
        oc_fail_context(st, "%s: model_rng", what);
        goto fail;
    }
    c->extra = calloc((size_t)oc_st_num_tensors(c->file) + 1, sizeof *c->extra);
    if (!c->extra) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < oc_st_num_tensors(c->file); i++) {
        const oc_st_tensor *t = oc_st_tensor_at(c->file, i);
        if (strncmp(t->name, OC_CKPT_PREFIX, plen))
            continue;
        c->extra[c->n_extra] = *t;
        c->extra[c->n_extra].name = t->name + plen;
        c->n_extra++;
    }
    *model = m;
    *ckpt = c;
    return OC_OK;

fail:
    oc_model_free(m);
    oc_checkpoint_free(c);
    return st;
}

const char *oc_checkpoint_meta(const oc_checkpoint *c)
{
    return c->meta;
}

int oc_checkpoint_num_tensors(const oc_checkpoint *c)
{
    return c->n_extra;
}

const oc_st_tensor *oc_checkpoint_tensor(const oc_checkpoint *c, int i)
{
    return i >= 0 && i < c->n_extra ? &c->extra[i] : NULL;
}

const oc_st_tensor *oc_checkpoint_find(const oc_checkpoint *c, const char *name)
{
    for (int i = 0; i < c->n_extra; i++)
        if (!strcmp(c->extra[i].name, name))
            return &c->extra[i];
    return NULL;
}

oc_status oc_checkpoint_read_f32(const oc_checkpoint *c, const char *name, float *dst, size_t n)
{
    const oc_st_tensor *t = oc_checkpoint_find(c, name);
    if (!t)
        return oc_fail(OC_ERR_FORMAT, "checkpoint has no tensor '%s'", name);
    if (t->dtype != OC_ST_F32)
        return oc_fail(OC_ERR_FORMAT, "checkpoint tensor '%s' has dtype %s, expected F32", name,
                       oc_st_dtype_name(t->dtype));
    if (t->nbytes != n * sizeof(float))
        return oc_fail(OC_ERR_FORMAT, "checkpoint tensor '%s' holds %zu values, expected %zu",
                       name, t->nbytes / sizeof(float), n);
    if (n)
        memcpy(dst, t->data, t->nbytes);
    return OC_OK;
}
