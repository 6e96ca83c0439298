/* The JSON model spec (docs/model-spec.md): parsing nodes, emitting the graph, and the public
 * entry points that build a model from a zoo name, a spec file or spec text. */
#include "nn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Spec files larger than this are refused (a spec of thousands of nodes is < 1 MB). */
#define OC_SPEC_MAX_BYTES ((long)64 << 20)

/* Ops whose tensors "freeze" can name. */
static int has_params(oc_op_type op)
{
    return op == OC_OP_CONV2D || op == OC_OP_DENSE || op == OC_OP_BATCHNORM;
}

static int attr_allowed(oc_op_type op, const oc_op_def *def, const char *key)
{
    if (!strcmp(key, "name") || !strcmp(key, "op") || !strcmp(key, "inputs"))
        return 1;
    if (!strcmp(key, "freeze"))
        return has_params(op);
    for (const char *const *a = def->attrs; *a; a++)
        if (!strcmp(*a, key))
            return 1;
    return 0;
}

oc_status oc_nn_parse_node(oc_node *nd, const cJSON *j, int index)
{
    const cJSON *name, *op, *e;
    const oc_op_def *def;
    int opi;
    char buf[64];

    if (!cJSON_IsObject(j))
        return oc_fail(OC_ERR_FORMAT, "node %d: must be a JSON object", index);
    name = cJSON_GetObjectItemCaseSensitive(j, "name");
    op = cJSON_GetObjectItemCaseSensitive(j, "op");
    if (!cJSON_IsString(op))
        return oc_fail(OC_ERR_FORMAT, "node %d%s%s%s: needs \"op\" (a string)", index,
                       cJSON_IsString(name) ? " '" : "", cJSON_IsString(name) ? name->valuestring : "",
                       cJSON_IsString(name) ? "'" : "");
    opi = oc_nn_op_find(op->valuestring);
    if (name && !cJSON_IsString(name))
        return oc_fail(OC_ERR_FORMAT, "node %d: name must be a string", index);
    if (name && (!*name->valuestring || strlen(name->valuestring) > 200))
        return oc_fail(OC_ERR_FORMAT, "node %d: name must have 1 to 200 characters", index);
    if (!name)
        snprintf(buf, sizeof buf, "%s_%d", opi > 0 ? oc_nn_op(opi)->name : "node", index);
    nd->name = strdup(name ? name->valuestring : buf);
    if (!nd->name)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    if (opi < 0)
        return oc_fail(OC_ERR_FORMAT, "node '%s': unknown op '%s'", nd->name, op->valuestring);
    nd->op = (oc_op_type)opi;
    def = oc_nn_op(nd->op);
    cJSON_ArrayForEach(e, j) {
        if (!attr_allowed(nd->op, def, e->string))
            return oc_fail(OC_ERR_FORMAT, "node '%s': unknown attribute '%s' for %s", nd->name,
                           e->string, def->name);
    }
    /* defaults shared by every op */
    nd->kh = nd->kw = nd->sh = nd->sw = nd->dh = nd->dw = nd->groups = 1;
    nd->count_include_pad = 1;
    nd->alpha = 0.01f;
    nd->freeze = 0;
    if ((e = cJSON_GetObjectItemCaseSensitive(j, "freeze")) != NULL) {
        /* true: every tensor; or a list of tensor names ("weight", "bias") */
        int ok = cJSON_IsBool(e) || cJSON_IsArray(e);
        const cJSON *f;
        if (cJSON_IsTrue(e))
            nd->freeze = OC_FREEZE_WEIGHT | OC_FREEZE_BIAS;
        const cJSON *list = cJSON_IsArray(e) ? e : NULL;
        cJSON_ArrayForEach(f, list) {
            if (cJSON_IsString(f) && !strcmp(f->valuestring, "weight"))
                nd->freeze |= OC_FREEZE_WEIGHT;
            else if (cJSON_IsString(f) && !strcmp(f->valuestring, "bias"))
                nd->freeze |= OC_FREEZE_BIAS;
            else
                ok = 0;
        }
        if (!ok)
            return oc_fail(OC_ERR_FORMAT, "node '%s': freeze must be true, false or a list of "
                                          "\"weight\" and \"bias\"", nd->name);
    }
    return def->parse(nd, j);
}

cJSON *oc_nn_spec(const oc_model *m)
{
    cJSON *root = cJSON_CreateObject(), *nodes;
    if (!root)
        return NULL;
    cJSON_AddStringToObject(root, "format", "ocelot-graph");
    cJSON_AddNumberToObject(root, "version", 1);
    nodes = cJSON_AddArrayToObject(root, "nodes");
    if (!nodes)
        goto fail;
    for (int i = 1; i < m->n_nodes; i++) {
        const oc_node *nd = &m->nodes[i];
        cJSON *j = cJSON_CreateObject();
        if (!j)
            goto fail;
        cJSON_AddItemToArray(nodes, j);
        cJSON_AddStringToObject(j, "name", nd->name);
        cJSON_AddStringToObject(j, "op", oc_nn_op(nd->op)->name);
        if (!(nd->n_in == 1 && nd->in[0] == i - 1)) {
            cJSON *ins = cJSON_AddArrayToObject(j, "inputs");
            if (!ins)
                goto fail;
            for (int k = 0; k < nd->n_in; k++)
                cJSON_AddItemToArray(ins, cJSON_CreateString(m->nodes[nd->in[k]].name));
        }
        oc_nn_op(nd->op)->emit(nd, j);
        if (nd->freeze) {
            cJSON *f = cJSON_AddArrayToObject(j, "freeze");
            if (!f)
                goto fail;
            if (nd->freeze & OC_FREEZE_WEIGHT)
                cJSON_AddItemToArray(f, cJSON_CreateString("weight"));
            if (nd->freeze & OC_FREEZE_BIAS)
                cJSON_AddItemToArray(f, cJSON_CreateString("bias"));
        }
    }
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

char *oc_model_to_json(const oc_model *m)
{
    cJSON *spec = oc_nn_spec(m);
    char *s;
    if (!spec)
        return NULL;
    s = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    return s;
}

static oc_status parse_text(const char *json, size_t len, const char *what, cJSON **out)
{
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!*out) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return oc_fail(OC_ERR_FORMAT, "%s: invalid JSON near byte %zu", what, at);
    }
    return OC_OK;
}

oc_status oc_model_from_json(oc_model **out, const char *json, size_t len, int height, int width,
                             int channels, int classes, uint64_t seed)
{
    cJSON *spec;
    oc_status st;
    if (!out)
        return oc_fail(OC_ERR_ARG, "oc_model_from_json: out is NULL");
    *out = NULL;
    if (!json)
        return oc_fail(OC_ERR_ARG, "oc_model_from_json: json is NULL");
    if ((st = parse_text(json, len, "model spec", &spec)) != OC_OK)
        return st;
    st = oc_nn_build(out, spec, height, width, channels, classes, seed);
    cJSON_Delete(spec);
    return st;
}

static oc_status unknown_model(const char *name)
{
    char list[256] = "";
    for (const char *const *z = oc_zoo_names(); *z; z++) {
        if (z != oc_zoo_names())
            strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, *z, sizeof list - strlen(list) - 1);
    }
    return oc_fail(OC_ERR_ARG, "unknown model '%s': not a zoo model (%s) nor a spec file", name,
                   list);
}

oc_status oc_model_create(oc_model **out, const char *name_or_path, int height, int width,
                          int channels, int classes, uint64_t seed)
{
    cJSON *spec = NULL;
    oc_status st;
    FILE *f;
    char *text = NULL;
    long size;

    if (!out)
        return oc_fail(OC_ERR_ARG, "oc_model_create: out is NULL");
    *out = NULL;
    if (!name_or_path)
        return oc_fail(OC_ERR_ARG, "oc_model_create: name is NULL");
    if (oc_zoo_has(name_or_path)) {
        if ((st = oc_zoo_spec(name_or_path, height, width, channels, classes, &spec)) != OC_OK)
            return st;
        st = oc_nn_build(out, spec, height, width, channels, classes, seed);
        cJSON_Delete(spec);
        return st;
    }
    f = fopen(name_or_path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return unknown_model(name_or_path);
        return oc_fail(OC_ERR_IO, "open '%s': %s", name_or_path, strerror(errno));
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = oc_fail(OC_ERR_IO, "read '%s': %s", name_or_path, strerror(errno));
        goto done;
    }
    if (size > OC_SPEC_MAX_BYTES) {
        st = oc_fail(OC_ERR_FORMAT, "'%s': %ld bytes is too large for a model spec", name_or_path,
                     size);
        goto done;
    }
    text = malloc((size_t)size + 1);
    if (!text) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        st = oc_fail(OC_ERR_IO, "read '%s': short read", name_or_path);
        goto done;
    }
    text[size] = 0;
    if ((st = parse_text(text, (size_t)size, name_or_path, &spec)) != OC_OK)
        goto done;
    st = oc_nn_build(out, spec, height, width, channels, classes, seed);
    if (st != OC_OK)
        oc_fail_context(st, "%s", name_or_path);
done:
    cJSON_Delete(spec);
    free(text);
    fclose(f);
    return st;
}
