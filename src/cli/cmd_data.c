/* ocelot data: info, preview, bench and fetch. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char data_usage[] =
    "usage: ocelot data info SPEC [--json] [--quick]\n"
    "       ocelot data preview SPEC --out grid.png [--augment AUG] [--n 64] [--size N]\n"
    "                                [--seed S]\n"
    "       ocelot data bench SPEC [--augment AUG] [--batch 128] [--workers 2] [--batches N]\n"
    "                              [--size N]\n"
    "       ocelot data fetch cifar10|fashion-mnist [--from FILE|DIR] [--to DIR] [--no-verify]\n"
    "       ocelot data export SPEC --out DIR [--n 10] [--split test|train|all]\n"
    "\n"
    "Dataset SPECs:\n"
    "  cifar10:PATH, cifar100:PATH  directory of the binary batches, or the .tar/.tar.gz/.tar.xz\n"
    "  fashion-mnist[:DIR]          IDX files (default /usr/share/datasets/fashion-mnist)\n"
    "  mnist:DIR, idx:DIR           {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]\n"
    "  folder:DIR                   DIR/<class>/<images>, or DIR/train/<class> + DIR/test/<class>\n"
    "  csv:FILE                     path,label lines; paths relative to the CSV's folder\n"
    "\n"
    "info     classes, counts per class and split, image sizes, unreadable files (every file\n"
    "         of a folder/csv dataset is decoded; --quick reads headers only)\n"
    "preview  writes a PNG grid of augmented samples (AUG grammar: docs/augment.md)\n"
    "bench    measures the batch loader alone (decode + augment + normalise), images/s\n"
    "export   writes sample images as DIR/INDEX_CLASS.png, every class in turn\n"
    "fetch    downloads with curl (or takes --from), verifies the official MD5s and unpacks\n"
    "         under --to (default ./data). An archive whose MD5 differs from the official one\n"
    "         is checked member by member; if members differ too it is refused unless\n"
    "         --no-verify is given, which proceeds with a warning.\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* ---------------------------------------------------------------- info */

typedef struct {
    int64_t n, unreadable;
    int min_w, max_w, min_h, max_h;
    double sum_w, sum_h;
    int64_t ch[5];
} size_stats;

static int cmd_info(int argc, char **argv)
{
    const char *spec = NULL;
    int json = 0, quick = 0;
    oc_dataset *ds = NULL;
    size_stats ss = {0, 0, 1 << 30, 0, 1 << 30, 0, 0, 0, {0}};
    int64_t (*counts)[2];
    int K, h, w, c;
    cJSON *bad = NULL;
    double t0;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(data_usage, stdout);
            return CLI_OK;
        } else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (argv[i][0] == '-')
            return cli_usage_error("data info", "unknown option '%s'", argv[i]);
        else if (!spec)
            spec = argv[i];
        else
            return cli_usage_error("data info", "unexpected argument '%s'", argv[i]);
    }
    if (!spec)
        return cli_usage_error("data info", "missing dataset SPEC");
    t0 = now_s();
    if (oc_dataset_open(spec, NULL, &ds) != OC_OK)
        return cli_error(spec);
    K = oc_dataset_num_classes(ds);
    counts = calloc((size_t)K, sizeof *counts);
    bad = cJSON_CreateArray();
    {
        int64_t b, e;
        oc_dataset_split_range(ds, OC_SPLIT_TEST, &b, &e);
        for (int64_t i = 0; i < oc_dataset_count(ds); i++) {
            int32_t l = oc_dataset_label(ds, i);
            if (l >= 0 && l < K)
                counts[l][i >= b]++;
        }
    }
    oc_dataset_image_shape(ds, &h, &w, &c);
    if (h) {
        ss.n = oc_dataset_count(ds);
        ss.min_h = ss.max_h = h;
        ss.min_w = ss.max_w = w;
        ss.sum_h = (double)h * (double)ss.n;
        ss.sum_w = (double)w * (double)ss.n;
        ss.ch[c] = ss.n;
    } else {
        oc_image img = {0};
        for (int64_t i = 0; i < oc_dataset_count(ds); i++) {
            const char *path = oc_dataset_path(ds, i);
            int iw = 0, ih = 0, ic = 0;
            oc_status st;
            if (quick) {
                FILE *f = fopen(path, "rb");
                unsigned char head[1 << 16];
                size_t n;
                if (!f) {
                    cJSON *o = cJSON_CreateObject();
                    ss.unreadable++;
                    cJSON_AddStringToObject(o, "path", path);
                    cJSON_AddStringToObject(o, "error", strerror(errno));
                    cJSON_AddItemToArray(bad, o);
                    continue;
                }
                n = fread(head, 1, sizeof head, f);
                fclose(f);
                st = oc_image_probe(head, n, NULL, &iw, &ih, &ic);
            } else {
                st = oc_image_load(path, &(oc_decode_opts){.channels = 0}, &img);
                if (st == OC_OK) {
                    iw = img.width;
                    ih = img.height;
                    ic = img.channels;
                }
            }
            if (st != OC_OK) {
                ss.unreadable++;
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "path", path);
                cJSON_AddStringToObject(o, "error", oc_last_error());
                cJSON_AddItemToArray(bad, o);
                continue;
            }
            ss.n++;
            ss.min_w = iw < ss.min_w ? iw : ss.min_w;
            ss.max_w = iw > ss.max_w ? iw : ss.max_w;
            ss.min_h = ih < ss.min_h ? ih : ss.min_h;
            ss.max_h = ih > ss.max_h ? ih : ss.max_h;
            ss.sum_w += iw;
            ss.sum_h += ih;
            if (ic >= 1 && ic <= 4)
                ss.ch[ic]++;
        }
        oc_image_release(&img);
    }
    if (json) {
        cJSON *root = cJSON_CreateObject(), *classes = cJSON_CreateArray(), *sizes;
        int64_t b, e;
        char *text;
        cJSON_AddStringToObject(root, "spec", spec);
        cJSON_AddStringToObject(root, "kind", oc_dataset_kind(ds));
        cJSON_AddNumberToObject(root, "count", (double)oc_dataset_count(ds));
        oc_dataset_split_range(ds, OC_SPLIT_TRAIN, &b, &e);
        cJSON_AddNumberToObject(root, "train", (double)(e - b));
        oc_dataset_split_range(ds, OC_SPLIT_TEST, &b, &e);
        cJSON_AddNumberToObject(root, "test", (double)(e - b));
        cJSON_AddBoolToObject(root, "official_test_split", oc_dataset_has_test_split(ds));
        cJSON_AddNumberToObject(root, "num_classes", K);
        for (int k = 0; k < K; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", oc_dataset_class_name(ds, k));
            cJSON_AddNumberToObject(o, "train", (double)counts[k][0]);
            cJSON_AddNumberToObject(o, "test", (double)counts[k][1]);
            cJSON_AddItemToArray(classes, o);
        }
        cJSON_AddItemToObject(root, "classes", classes);
        sizes = cJSON_AddObjectToObject(root, "image_sizes");
        cJSON_AddNumberToObject(sizes, "readable", (double)ss.n);
        if (ss.n) {
            cJSON_AddNumberToObject(sizes, "min_width", ss.min_w);
            cJSON_AddNumberToObject(sizes, "max_width", ss.max_w);
            cJSON_AddNumberToObject(sizes, "min_height", ss.min_h);
            cJSON_AddNumberToObject(sizes, "max_height", ss.max_h);
            cJSON_AddNumberToObject(sizes, "mean_width", ss.sum_w / (double)ss.n);
            cJSON_AddNumberToObject(sizes, "mean_height", ss.sum_h / (double)ss.n);
        }
        cJSON_AddNumberToObject(root, "unreadable_count", (double)ss.unreadable);
        cJSON_AddItemToObject(root, "unreadable", bad);
        bad = NULL;
        text = cJSON_Print(root);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(root);
    } else {
        int64_t b, e, tb, te;
        oc_dataset_split_range(ds, OC_SPLIT_TRAIN, &b, &e);
        oc_dataset_split_range(ds, OC_SPLIT_TEST, &tb, &te);
        printf("dataset   %s (%s), scanned in %.2f s\n", spec, oc_dataset_kind(ds), now_s() - t0);
        printf("samples   %lld: %lld train, %lld test%s\n", (long long)oc_dataset_count(ds),
               (long long)(e - b), (long long)(te - tb),
               oc_dataset_has_test_split(ds) ? " (official split)"
                                             : " (no official test split: use --val-split)");
        printf("classes   %d\n", K);
        printf("  %-4s %-24s %10s %10s\n", "id", "name", "train", "test");
        for (int k = 0; k < K; k++)
            printf("  %-4d %-24s %10lld %10lld\n", k, oc_dataset_class_name(ds, k),
                   (long long)counts[k][0], (long long)counts[k][1]);
        if (ss.n)
            printf("images    %dx%d .. %dx%d (WxH), mean %.0fx%.0f; channels: 1:%lld 3:%lld "
                   "4:%lld%s\n",
                   ss.min_w, ss.min_h, ss.max_w, ss.max_h, ss.sum_w / (double)ss.n,
                   ss.sum_h / (double)ss.n, (long long)ss.ch[1], (long long)ss.ch[3],
                   (long long)(ss.ch[4] + ss.ch[2]), quick ? " (headers only)" : "");
        printf("unreadable %lld\n", (long long)ss.unreadable);
        for (int i = 0; i < cJSON_GetArraySize(bad) && i < 20; i++) {
            cJSON *o = cJSON_GetArrayItem(bad, i);
            printf("  %s: %s\n", cJSON_GetObjectItem(o, "path")->valuestring,
                   cJSON_GetObjectItem(o, "error")->valuestring);
        }
        if (ss.unreadable > 20)
            printf("  ... and %lld more\n", (long long)ss.unreadable - 20);
    }
    cJSON_Delete(bad);
    free(counts);
    oc_dataset_free(ds);
    return ss.unreadable ? CLI_PARTIAL : CLI_OK;
}

/* ---------------------------------------------------------------- preview and bench */

/* Input geometry for a dataset: its own shape when fixed, else size x size x 3. */
static oc_preprocess geometry(const oc_dataset *ds, int size, float std)
{
    oc_preprocess pp = {0};
    int h, w, c;
    oc_dataset_image_shape(ds, &h, &w, &c);
    pp.height = size ? size : (h ? h : 64);
    pp.width = size ? size : (w ? w : 64);
    pp.channels = c ? c : 3;
    for (int k = 0; k < 4; k++)
        pp.std[k] = std;
    pp.resize = h ? OC_RESIZE_STRETCH : OC_RESIZE_CENTER_CROP;
    return pp;
}

static int cmd_preview(int argc, char **argv)
{
    const char *spec = NULL, *aug = NULL, *out = NULL;
    long n = 64, size = 0, seed = 0;
    oc_dataset *ds = NULL;
    oc_loader *l = NULL;
    oc_loader_opts o;
    oc_image grid = {0};
    const oc_batch *bt;
    int64_t *idx = NULL, count;
    int cols, rows, rc = CLI_FAIL;
    const int gap = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (is_help(a)) {
            fputs(data_usage, stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--augment") && v) {
            aug = v;
            i++;
        } else if (!strcmp(a, "--out") && v) {
            out = v;
            i++;
        } else if (!strcmp(a, "--n") && v) {
            if (!cli_parse_int(v, 1, 1024, &n))
                return cli_usage_error("data preview", "--n wants 1..1024, not '%s'", v);
            i++;
        } else if (!strcmp(a, "--size") && v) {
            if (!cli_parse_int(v, 4, 1024, &size))
                return cli_usage_error("data preview", "--size wants 4..1024, not '%s'", v);
            i++;
        } else if (!strcmp(a, "--seed") && v) {
            if (!cli_parse_int(v, 0, 1L << 62, &seed))
                return cli_usage_error("data preview", "bad --seed '%s'", v);
            i++;
        } else if (a[0] == '-') {
            return cli_usage_error("data preview", "unknown option or missing value: '%s'", a);
        } else if (!spec) {
            spec = a;
        } else {
            return cli_usage_error("data preview", "unexpected argument '%s'", a);
        }
    }
    if (!spec || !out)
        return cli_usage_error("data preview", "needs a dataset SPEC and --out FILE.png");
    if (oc_dataset_open(spec, NULL, &ds) != OC_OK)
        return cli_error(spec);
    count = oc_dataset_count(ds);
    if (n > count)
        n = (long)count;
    oc_loader_opts_default(&o);
    o.batch_size = (int)n;
    o.workers = 0;
    o.seed = (uint64_t)seed;
    o.augment = aug;
    o.pp = geometry(ds, (int)size, 1.0f / 255.0f); /* floats come out as 0..255 */
    if (oc_dataset_indices(ds, OC_SPLIT_ALL, &idx, &count) != OC_OK ||
        oc_loader_new(ds, idx, count, &o, &l) != OC_OK || oc_loader_next(l, &bt) != OC_OK) {
        rc = cli_error("preview");
        goto done;
    }
    cols = (int)ceil(sqrt((double)bt->n));
    rows = (bt->n + cols - 1) / cols;
    if (oc_image_alloc(&grid, rows * (o.pp.height + gap) + gap, cols * (o.pp.width + gap) + gap,
                       o.pp.channels == 1 ? 1 : 3) != OC_OK) {
        rc = cli_error("preview");
        goto done;
    }
    memset(grid.data, 255, (size_t)grid.height * grid.width * grid.channels);
    for (int s = 0; s < bt->n; s++) {
        int y0 = gap + (s / cols) * (o.pp.height + gap), x0 = gap + (s % cols) * (o.pp.width + gap);
        const float *x = bt->x + (size_t)s * o.pp.height * o.pp.width * o.pp.channels;
        for (int y = 0; y < o.pp.height; y++)
            for (int xx = 0; xx < o.pp.width; xx++)
                for (int c = 0; c < grid.channels; c++) {
                    float v = x[((size_t)y * o.pp.width + xx) * o.pp.channels + c];
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                    grid.data[((size_t)(y0 + y) * grid.width + x0 + xx) * grid.channels + c] =
                        (uint8_t)lrintf(v);
                }
    }
    if (oc_image_save_png(&grid, out) != OC_OK) {
        rc = cli_error(out);
        goto done;
    }
    printf("wrote %s: %d samples of %dx%d in a %dx%d grid (augment: %s)\n", out, bt->n,
           o.pp.width, o.pp.height, cols, rows, aug ? aug : "none");
    rc = CLI_OK;
done:
    oc_image_release(&grid);
    oc_loader_free(l);
    free(idx);
    oc_dataset_free(ds);
    return rc;
}

static int cmd_bench(int argc, char **argv)
{
    const char *spec = NULL, *aug = NULL;
    long batch = 128, workers = 2, batches = 0, size = 0;
    oc_dataset *ds = NULL;
    oc_loader *l = NULL;
    oc_loader_opts o;
    int64_t *idx = NULL, count, images = 0;
    double t0, t1, t2, t_load;
    int rc = CLI_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (is_help(a)) {
            fputs(data_usage, stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--augment") && v) {
            aug = v;
            i++;
        } else if (!strcmp(a, "--batch") && v) {
            if (!cli_parse_int(v, 1, 65536, &batch))
                return cli_usage_error("data bench", "bad --batch '%s'", v);
            i++;
        } else if (!strcmp(a, "--workers") && v) {
            if (!cli_parse_int(v, 0, 64, &workers))
                return cli_usage_error("data bench", "bad --workers '%s'", v);
            i++;
        } else if (!strcmp(a, "--batches") && v) {
            if (!cli_parse_int(v, 1, 1L << 30, &batches))
                return cli_usage_error("data bench", "bad --batches '%s'", v);
            i++;
        } else if (!strcmp(a, "--size") && v) {
            if (!cli_parse_int(v, 4, 1024, &size))
                return cli_usage_error("data bench", "bad --size '%s'", v);
            i++;
        } else if (a[0] == '-') {
            return cli_usage_error("data bench", "unknown option or missing value: '%s'", a);
        } else if (!spec) {
            spec = a;
        } else {
            return cli_usage_error("data bench", "unexpected argument '%s'", a);
        }
    }
    if (!spec)
        return cli_usage_error("data bench", "missing dataset SPEC");
    t0 = now_s();
    if (oc_dataset_open(spec, NULL, &ds) != OC_OK)
        return cli_error(spec);
    t1 = now_s();
    oc_loader_opts_default(&o);
    o.batch_size = (int)batch;
    o.workers = (int)workers;
    o.augment = aug;
    o.pp = geometry(ds, (int)size, 0.25f);
    if (oc_dataset_indices(ds, OC_SPLIT_TRAIN, &idx, &count) != OC_OK ||
        oc_loader_new(ds, idx, count, &o, &l) != OC_OK) {
        rc = cli_error("bench");
        goto done;
    }
    if (!batches)
        batches = (long)oc_loader_num_batches(l);
    t_load = t1 - t0;
    t1 = now_s();
    for (long b = 0; b < batches; b++) {
        const oc_batch *bt;
        if (oc_loader_next(l, &bt) != OC_OK) {
            rc = cli_error("bench");
            goto done;
        }
        images += bt->n;
    }
    t2 = now_s();
    printf("dataset load %.2f s; loader: %lld images (%ld batches of %ld, %ldx%ldx%d, %ld "
           "workers, augment %s) in %.2f s = %.0f images/s\n",
           t_load, (long long)images, batches, batch, (long)o.pp.width, (long)o.pp.height,
           o.pp.channels, workers, aug ? aug : "none", t2 - t1, (double)images / (t2 - t1));
    rc = CLI_OK;
done:
    oc_loader_free(l);
    free(idx);
    oc_dataset_free(ds);
    return rc;
}

/* ---------------------------------------------------------------- fetch */

typedef struct {
    const char *name, *md5;
} member_sum;

#define CIFAR10_URL "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
#define CIFAR10_MD5 "c32a1d4ab5d03f1284b67883e8d87530"
/* Per-file sums of the official archive's members (third-party checksum lists that agree with
 * each other; ../shared/data/cifar10/README.md). */
static const member_sum cifar10_members[] = {
    {"data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"},
    {"data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"},
    {"data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"},
    {"data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"},
    {"data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"},
    {"test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"},
};
#define FASHION_URL "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
static const member_sum fashion_files[] = {
    {"train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
    {"train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"},
    {"t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"},
    {"t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"},
};

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int mkdir_p(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* Runs curl to download url to path; returns 0 on success. */
static int download(const char *url, const char *path)
{
    char *args[] = {"curl", "-fL", "--retry", "2", "--connect-timeout", "20", "-sS", "-o",
                    (char *)path, (char *)url, NULL};
    pid_t pid;
    int status;
    fprintf(stderr, "ocelot: downloading %s\n", url);
    if (posix_spawnp(&pid, "curl", NULL, NULL, args, environ) != 0) {
        fprintf(stderr, "ocelot data fetch: curl is not installed; download %s yourself and run "
                        "with --from FILE\n", url);
        return -1;
    }
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "ocelot data fetch: download of %s failed (no network?); download it "
                        "yourself and run with --from FILE\n", url);
        remove(path);
        return -1;
    }
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b;
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    if (!a)
        return -1;
    b = fopen(to, "wb");
    if (!b) {
        fclose(a);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        ok &= fwrite(buf, 1, n, b) == n;
    fclose(a);
    ok &= fclose(b) == 0;
    return ok ? 0 : -1;
}

/* Checks files dir/<name> against sums; prints each mismatch; returns the number of bad ones. */
static int check_members(const char *dir, const member_sum *sums, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char path[4200], hex[33];
        snprintf(path, sizeof path, "%s/%s", dir, sums[i].name);
        if (oc_md5_file(path, hex) != OC_OK) {
            fprintf(stderr, "ocelot data fetch: %s\n", oc_last_error());
            bad++;
        } else if (strcmp(hex, sums[i].md5)) {
            fprintf(stderr, "ocelot data fetch: %s: md5 %s differs from the official %s\n",
                    path, hex, sums[i].md5);
            bad++;
        }
    }
    return bad;
}

static int verify_dataset(const char *spec)
{
    oc_dataset *ds = NULL;
    int64_t b, e, tb, te;
    if (oc_dataset_open(spec, NULL, &ds) != OC_OK)
        return cli_error(spec);
    oc_dataset_split_range(ds, OC_SPLIT_TRAIN, &b, &e);
    oc_dataset_split_range(ds, OC_SPLIT_TEST, &tb, &te);
    printf("ready: %s (%lld train + %lld test images, %d classes)\n", spec, (long long)(e - b),
           (long long)(te - tb), oc_dataset_num_classes(ds));
    oc_dataset_free(ds);
    return CLI_OK;
}

static int fetch_cifar10(const char *from, const char *to, int no_verify)
{
    char archive[4200], dir[4200], spec[4300], hex[33];
    int n = 0, bad;
    if (mkdir_p(to) != 0) {
        fprintf(stderr, "ocelot data fetch: cannot create '%s': %s\n", to, strerror(errno));
        return CLI_FAIL;
    }
    if (from && is_dir(from)) {
        /* an unpacked directory: verify in place */
        snprintf(dir, sizeof dir, "%s", from);
        snprintf(archive, sizeof archive, "%s/cifar-10-batches-bin", from);
        if (is_dir(archive))
            snprintf(dir, sizeof dir, "%s", archive);
    } else {
        if (from) {
            snprintf(archive, sizeof archive, "%s", from);
        } else {
            snprintf(archive, sizeof archive, "%s/cifar-10-binary.tar.gz", to);
            if (download(CIFAR10_URL, archive) != 0)
                return CLI_FAIL;
        }
        if (oc_md5_file(archive, hex) != OC_OK)
            return cli_error("fetch");
        if (!strcmp(hex, CIFAR10_MD5))
            printf("archive md5 %s matches the official cifar-10-binary.tar.gz\n", hex);
        else
            fprintf(stderr, "ocelot data fetch: warning: %s has md5 %s, not the official "
                            "archive's %s; checking its members instead\n", archive, hex,
                    CIFAR10_MD5);
        if (oc_tar_extract(archive, to, &n) != OC_OK)
            return cli_error("fetch");
        printf("unpacked %d files under %s\n", n, to);
        if (!strcmp(hex, CIFAR10_MD5)) {
            snprintf(spec, sizeof spec, "cifar10:%s/cifar-10-batches-bin", to);
            return verify_dataset(spec);
        }
        snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", to);
    }
    bad = check_members(dir, cifar10_members, 6);
    if (bad && !no_verify) {
        fprintf(stderr, "ocelot data fetch: %d file(s) differ from the official CIFAR-10; "
                        "refusing them (rerun with --no-verify to use them anyway)\n", bad);
        return CLI_FAIL;
    }
    if (bad)
        fprintf(stderr, "ocelot data fetch: warning: using %d unverified file(s) "
                        "(--no-verify): results on them are not comparable to published ones\n",
                bad);
    else
        printf("all 6 batch files match the official md5s\n");
    snprintf(spec, sizeof spec, "cifar10:%s", dir);
    return verify_dataset(spec);
}

static int fetch_fashion(const char *from, const char *to, int no_verify)
{
    char dir[4200], src[4300], dst[4300], spec[4300];
    int bad;
    snprintf(dir, sizeof dir, "%s/fashion-mnist", to);
    if (mkdir_p(dir) != 0) {
        fprintf(stderr, "ocelot data fetch: cannot create '%s': %s\n", dir, strerror(errno));
        return CLI_FAIL;
    }
    if (from && !is_dir(from)) {
        fprintf(stderr, "ocelot data fetch: --from for fashion-mnist is a directory holding "
                        "the four .gz files\n");
        return CLI_USAGE;
    }
    for (int i = 0; i < 4; i++) {
        snprintf(dst, sizeof dst, "%s/%s", dir, fashion_files[i].name);
        if (from) {
            snprintf(src, sizeof src, "%s/%s", from, fashion_files[i].name);
            if (copy_file(src, dst) != 0) {
                fprintf(stderr, "ocelot data fetch: copy '%s' -> '%s': %s\n", src, dst,
                        strerror(errno));
                return CLI_FAIL;
            }
        } else {
            char url[512];
            snprintf(url, sizeof url, "%s%s", FASHION_URL, fashion_files[i].name);
            if (download(url, dst) != 0)
                return CLI_FAIL;
        }
    }
    bad = check_members(dir, fashion_files, 4);
    if (bad && !no_verify) {
        for (int i = 0; i < 4; i++) {
            snprintf(dst, sizeof dst, "%s/%s", dir, fashion_files[i].name);
            remove(dst);
        }
        fprintf(stderr, "ocelot data fetch: %d file(s) differ from the official Fashion-MNIST "
                        "archives (repacked or corrupt); removed them (rerun with --no-verify to "
                        "use them anyway)\n", bad);
        return CLI_FAIL;
    }
    if (bad)
        fprintf(stderr, "ocelot data fetch: warning: using %d file(s) whose md5 differs from "
                        "the official one (--no-verify); their contents are checked as IDX only\n",
                bad);
    else
        printf("all 4 files match the official md5s\n");
    snprintf(spec, sizeof spec, "fashion-mnist:%s", dir);
    return verify_dataset(spec);
}

static int cmd_fetch(int argc, char **argv)
{
    const char *name = NULL, *from = NULL, *to = "data";
    int no_verify = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (is_help(a)) {
            fputs(data_usage, stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--from") && v) {
            from = v;
            i++;
        } else if (!strcmp(a, "--to") && v) {
            to = v;
            i++;
        } else if (!strcmp(a, "--no-verify")) {
            no_verify = 1;
        } else if (a[0] == '-') {
            return cli_usage_error("data fetch", "unknown option or missing value: '%s'", a);
        } else if (!name) {
            name = a;
        } else {
            return cli_usage_error("data fetch", "unexpected argument '%s'", a);
        }
    }
    if (!name)
        return cli_usage_error("data fetch", "which dataset? cifar10 or fashion-mnist");
    if (!strcmp(name, "cifar10"))
        return fetch_cifar10(from, to, no_verify);
    if (!strcmp(name, "fashion-mnist"))
        return fetch_fashion(from, to, no_verify);
    return cli_usage_error("data fetch", "unknown dataset '%s' (cifar10 or fashion-mnist)", name);
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("data", "missing subcommand: info, preview, bench, fetch or export");
    if (is_help(argv[1])) {
        fputs(data_usage, stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "preview"))
        return cmd_preview(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(argv[1], "fetch"))
        return cmd_fetch(argc - 1, argv + 1);
    if (!strcmp(argv[1], "export"))
        return cmd_data_export(argc - 1, argv + 1);
    return cli_usage_error("data", "unknown subcommand '%s' (info, preview, bench, fetch, export)",
                           argv[1]);
}
