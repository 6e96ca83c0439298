/* ocelot predict: classify image files, directories (recursively) and globs. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct {
    char **paths;
    int n, cap;
} path_list;

static int add_path(path_list *l, const char *p)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        char **np = realloc(l->paths, (size_t)cap * sizeof *np);
        if (!np)
            return 0;
        l->paths = np;
        l->cap = cap;
    }
    l->paths[l->n] = strdup(p);
    return l->paths[l->n++] != NULL;
}

static int has_image_ext(const char *name)
{
    static const char *exts[] = {".jpg", ".jpeg", ".png", ".webp", ".jpe"};
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (!strcasecmp(dot, exts[i]))
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the images under dir, sorted, recursing into sub-directories. */
static int walk(path_list *l, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    path_list here = {0};
    int ok = 1;
    if (!d) {
        fprintf(stderr, "ocelot predict: cannot open directory '%s': %s\n", dir, strerror(errno));
        return 0;
    }
    while ((e = readdir(d))) {
        char path[4096];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!add_path(&here, path)) {
            ok = 0;
            break;
        }
    }
    closedir(d);
    qsort(here.paths, (size_t)here.n, sizeof *here.paths, cmp_str);
    for (int i = 0; i < here.n; i++) {
        struct stat st;
        if (ok && stat(here.paths[i], &st) == 0) {
            if (S_ISDIR(st.st_mode) && depth < 32)
                ok = walk(l, here.paths[i], depth + 1) && ok;
            else if (S_ISREG(st.st_mode) && has_image_ext(here.paths[i]))
                ok = add_path(l, here.paths[i]);
        }
        free(here.paths[i]);
    }
    free(here.paths);
    return ok;
}

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long n;
    *buf = NULL;
    if (!f)
        return 0;
    if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        errno = EISDIR;
        return 0;
    }
    *buf = malloc(n ? (size_t)n : 1);
    if (!*buf || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(*buf);
        *buf = NULL;
        errno = EIO;
        return 0;
    }
    fclose(f);
    *len = (size_t)n;
    return 1;
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void csv_field(FILE *out, const char *s)
{
    if (strpbrk(s, ",\"\n")) {
        fputc('"', out);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', out);
            fputc(*s, out);
        }
        fputc('"', out);
    } else {
        fputs(s, out);
    }
}

static void predict_help(FILE *out)
{
    fprintf(out,
            "usage: ocelot predict MODEL PATH... [options]\n\n"
            "Classifies image files (JPEG, PNG, WebP), directories (recursively: files named\n"
            "*.jpg, *.jpeg, *.png, *.webp) and glob patterns. Unreadable or corrupt files are\n"
            "reported on stderr and skipped; the exit status is 3 when some failed, 1 when all\n"
            "did.\n\n"
            "options:\n"
            "  --top K        predictions per image (default 5)\n"
            "  --json         JSON array: [{\"file\", \"predictions\":[{label,index,probability}]}]\n"
            "  --csv          CSV: file,rank,label,index,probability\n"
            "  --batch N      images per forward pass (default 32)\n"
            "  --threads N    compute threads (default: one per core)\n"
            "  -h, --help     this help\n");
}

int cmd_predict(int argc, char **argv)
{
    enum { OUT_TABLE, OUT_JSON, OUT_CSV } fmt = OUT_TABLE;
    static const struct option opts[] = {{"top", required_argument, NULL, 'k'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"csv", no_argument, NULL, 'c'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int topk = 5, batch = 32, c, failed = 0, done_ok = 0, rc = CLI_FAIL, first_json = 1;
    long v;
    path_list paths = {0};
    oc_model *model = NULL;
    oc_classifier *clf = NULL;
    oc_input *inputs = NULL;
    unsigned char **bufs = NULL;
    oc_prediction *preds = NULL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "hk:", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (!cli_parse_int(optarg, 1, 1000, &v))
                return cli_usage_error("predict", "--top must be 1-1000, not '%s'", optarg);
            topk = (int)v;
            break;
        case 'j': fmt = OUT_JSON; break;
        case 'c': fmt = OUT_CSV; break;
        case 'b':
            if (!cli_parse_int(optarg, 1, 4096, &v))
                return cli_usage_error("predict", "--batch must be 1-4096, not '%s'", optarg);
            batch = (int)v;
            break;
        case 't':
            if (!cli_parse_int(optarg, 1, 256, &v))
                return cli_usage_error("predict", "--threads must be 1-256, not '%s'", optarg);
            oc_set_threads((int)v);
            break;
        case 'h': predict_help(stdout); return CLI_OK;
        default: return cli_usage_error("predict", "unknown option");
        }
    }
    if (argc - optind < 2)
        return cli_usage_error("predict", "name a model file and at least one image, "
                                          "directory or glob");
    if (oc_model_load(argv[optind], &model) != OC_OK) {
        fprintf(stderr, "ocelot predict: cannot load model '%s': %s\n", argv[optind],
                oc_last_error());
        return CLI_FAIL;
    }
    oc_model_set_weights_fixed(model, 1); /* never trained here: pack the weights once */
    for (int i = optind + 1; i < argc; i++) {
        struct stat st;
        const char *a = argv[i];
        if (stat(a, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                int before = paths.n;
                walk(&paths, a, 0);
                if (paths.n == before) {
                    fprintf(stderr, "ocelot predict: no images (*.jpg, *.png, *.webp) in '%s'\n",
                            a);
                    failed++;
                }
            } else {
                add_path(&paths, a);
            }
        } else if (strpbrk(a, "*?[")) {
            glob_t g;
            if (glob(a, 0, NULL, &g) == 0) {
                for (size_t j = 0; j < g.gl_pathc; j++)
                    add_path(&paths, g.gl_pathv[j]);
            } else {
                fprintf(stderr, "ocelot predict: no file matches '%s'\n", a);
                failed++;
            }
            globfree(&g);
        } else {
            fprintf(stderr, "ocelot predict: '%s': %s\n", a, strerror(errno));
            failed++;
        }
    }
    if (paths.n == 0) {
        fprintf(stderr, "ocelot predict: nothing to classify\n");
        goto done;
    }
    if (topk > oc_model_num_classes(model))
        topk = oc_model_num_classes(model);
    if (batch > paths.n)
        batch = paths.n;
    inputs = calloc((size_t)batch, sizeof *inputs);
    bufs = calloc((size_t)batch, sizeof *bufs);
    preds = calloc((size_t)batch * (size_t)topk, sizeof *preds);
    if (!inputs || !bufs || !preds || oc_classifier_new(&clf, model, batch) != OC_OK) {
        cli_error("predict");
        goto done;
    }
    if (fmt == OUT_JSON)
        printf("[");
    else if (fmt == OUT_CSV)
        printf("file,rank,label,index,probability\n");
    for (int start = 0; start < paths.n; start += batch) {
        int n = paths.n - start < batch ? paths.n - start : batch;
        for (int i = 0; i < n; i++) {
            size_t len = 0;
            memset(&inputs[i], 0, sizeof inputs[i]);
            inputs[i].kind = OC_INPUT_ENCODED;
            if (read_file(paths.paths[start + i], &bufs[i], &len)) {
                inputs[i].data = bufs[i];
                inputs[i].size = len;
            }
        }
        if (oc_classifier_run(clf, inputs, n, topk, preds) != OC_OK) {
            cli_error("predict");
            goto done;
        }
        for (int i = 0; i < n; i++) {
            const char *path = paths.paths[start + i];
            const oc_prediction *p = &preds[(size_t)i * topk];
            free(bufs[i]);
            bufs[i] = NULL;
            if (!inputs[i].data || inputs[i].status != OC_OK) {
                fprintf(stderr, "ocelot predict: skipped '%s': %s\n", path,
                        inputs[i].data ? inputs[i].error : "cannot read the file");
                failed++;
                continue;
            }
            done_ok++;
            if (fmt == OUT_JSON) {
                printf("%s\n  {\"file\":", first_json ? "" : ",");
                first_json = 0;
                json_str(stdout, path);
                printf(",\"predictions\":[");
                for (int j = 0; j < topk; j++) {
                    printf("%s{\"label\":", j ? "," : "");
                    json_str(stdout, p[j].label);
                    printf(",\"index\":%d,\"probability\":%.6f}", p[j].index,
                           (double)p[j].probability);
                }
                printf("]}");
            } else if (fmt == OUT_CSV) {
                for (int j = 0; j < topk; j++) {
                    csv_field(stdout, path);
                    printf(",%d,", j + 1);
                    csv_field(stdout, p[j].label);
                    printf(",%d,%.6f\n", p[j].index, (double)p[j].probability);
                }
            } else {
                printf("%s\n", path);
                for (int j = 0; j < topk; j++)
                    printf("  %d. %-20s %6.2f%%\n", j + 1, p[j].label,
                           100.0 * (double)p[j].probability);
            }
        }
    }
    if (fmt == OUT_JSON)
        printf("\n]\n");
    rc = failed == 0 ? CLI_OK : done_ok > 0 ? CLI_PARTIAL : CLI_FAIL;
    if (failed)
        fprintf(stderr, "ocelot predict: %d classified, %d failed\n", done_ok, failed);
done:
    oc_classifier_free(clf);
    for (int i = 0; bufs && i < batch; i++)
        free(bufs[i]);
    free(bufs);
    free(inputs);
    free(preds);
    for (int i = 0; i < paths.n; i++)
        free(paths.paths[i]);
    free(paths.paths);
    oc_model_free(model);
    return rc;
}
