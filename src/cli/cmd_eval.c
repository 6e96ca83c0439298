/* ocelot eval: score a model on a dataset (metrics, confusion matrix, JSON, HTML report). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_MISTAKES 24

static void eval_help(FILE *out)
{
    fprintf(out,
            "usage: ocelot eval MODEL --data SPEC [options]\n\n"
            "Scores MODEL on a dataset: accuracy, top-5, per-class precision / recall / F1 /\n"
            "support, macro and weighted averages, calibration (ECE) and the confusion matrix.\n"
            "Which images: the official test split when the dataset has one; otherwise, for the\n"
            "dataset the model was trained on, exactly the held-out validation part recorded in\n"
            "the model; otherwise every image.\n\n"
            "options:\n"
            "  --data SPEC        the dataset (see 'ocelot train --help')\n"
            "  --split WHICH      test, val (the recorded held-out part) or all\n"
            "  --first N          score only the first N images of that split (e.g. the 1000\n"
            "                     exact test records of a partly re-encoded CIFAR-10 copy)\n"
            "  --json             print the metrics as JSON (schema ocelot.eval/1)\n"
            "  --report FILE      write a self-contained HTML report (curves, confusion heat\n"
            "                     map, per-class bars, most confident mistakes)\n"
            "  --tta[=LEVEL]      test-time augmentation, averaging the logits of several views:\n"
            "                     1 (plain --tta) the image and its mirror; 2 also the four\n"
            "                     one-pixel diagonal shifts of both (airbench's six views)\n"
            "  --predictions FILE write each image's result as CSV:\n"
            "                     index,label,predicted,confidence (index into the dataset)\n"
            "  --batch N          images per forward pass (default 256)\n"
            "  --threads N        compute threads (default: one per core)\n"
            "  -h, --help         this help\n");
}

/* The held-out indices recorded by `train` when `spec` is the dataset the model saw. */
static int recorded_val(oc_model *m, oc_dataset *ds, const char *spec, int64_t **idx,
                        int64_t *n)
{
    const char *text = oc_model_get_meta(m, "split");
    cJSON *sp = text ? cJSON_Parse(text) : NULL;
    const cJSON *dataset = cJSON_GetObjectItemCaseSensitive(sp, "dataset");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(sp, "kind");
    const cJSON *frac = cJSON_GetObjectItemCaseSensitive(sp, "fraction");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(sp, "seed");
    int64_t *all = NULL, n_all, *train = NULL, n_train;
    int ok = 0;
    if (cJSON_IsString(dataset) && !strcmp(dataset->valuestring, spec) && cJSON_IsString(kind) &&
        !strcmp(kind->valuestring, "stratified") && cJSON_IsNumber(frac) &&
        cJSON_IsString(seed) &&
        oc_dataset_indices(ds, oc_dataset_has_test_split(ds) ? OC_SPLIT_TRAIN : OC_SPLIT_ALL,
                           &all, &n_all) == OC_OK &&
        oc_split_stratified(ds, all, n_all, frac->valuedouble,
                            strtoull(seed->valuestring, NULL, 10), &train, &n_train, idx,
                            n) == OC_OK)
        ok = 1;
    free(all);
    free(train);
    cJSON_Delete(sp);
    return ok;
}

static void softmax_into(const float *logits, int n, int k, float *probs)
{
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * k;
        float *p = probs + (size_t)i * k, mx = l[0];
        double s = 0;
        for (int j = 1; j < k; j++)
            mx = l[j] > mx ? l[j] : mx;
        for (int j = 0; j < k; j++)
            s += exp((double)(l[j] - mx));
        for (int j = 0; j < k; j++) {
            float v = (float)(exp((double)(l[j] - mx)) / s);
            p[j] = v;
        }
    }
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, NULL, 'D'},
                                         {"split", required_argument, NULL, 's'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"report", required_argument, NULL, 'r'},
                                         {"tta", optional_argument, NULL, 'T'},
                                         {"predictions", required_argument, NULL, 'P'},
                                         {"first", required_argument, NULL, 'F'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *data = NULL, *split = NULL, *report = NULL, *pred_path = NULL, *model_path;
    FILE *pred_out = NULL;
    int json = 0, tta = 0, batch = 256, c, rc = CLI_FAIL, h, w, ch, k;
    long first = 0;
    long v;
    oc_model *m = NULL;
    oc_dataset *ds = NULL;
    oc_loader *ld = NULL;
    oc_metrics *met = NULL;
    int64_t *idx = NULL, n = 0;
    float *probs = NULL, *tta_x = NULL, *tta_logits = NULL;
    const char *which = "all";
    oc_loader_opts lo;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'D': data = optarg; break;
        case 's':
            if (strcmp(optarg, "test") && strcmp(optarg, "val") && strcmp(optarg, "all"))
                return cli_usage_error("eval", "--split is test, val or all, not '%s'", optarg);
            split = optarg;
            break;
        case 'j': json = 1; break;
        case 'r': report = optarg; break;
        case 'T':
            if (!optarg)
                tta = 1;
            else if (cli_parse_int(optarg, 0, 2, &v))
                tta = (int)v;
            else
                return cli_usage_error("eval", "--tta takes a level 0-2 (--tta=2), not '%s'",
                                       optarg);
            break;
        case 'P': pred_path = optarg; break;
        case 'F':
            if (!cli_parse_int(optarg, 1, 2000000000, &first))
                return cli_usage_error("eval", "--first must be a positive count, not '%s'",
                                       optarg);
            break;
        case 'b':
            if (!cli_parse_int(optarg, 1, 4096, &v))
                return cli_usage_error("eval", "--batch must be 1-4096, not '%s'", optarg);
            batch = (int)v;
            break;
        case 't':
            if (!cli_parse_int(optarg, 1, 256, &v))
                return cli_usage_error("eval", "--threads must be 1-256, not '%s'", optarg);
            oc_set_threads((int)v);
            break;
        case 'h': eval_help(stdout); return CLI_OK;
        default: return cli_usage_error("eval", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("eval", "name one model file");
    if (!data)
        return cli_usage_error("eval", "--data is required");
    model_path = argv[optind];
    if (oc_model_load(model_path, &m) != OC_OK) {
        fprintf(stderr, "ocelot eval: cannot load model '%s': %s\n", model_path, oc_last_error());
        return CLI_FAIL;
    }
    oc_model_set_weights_fixed(m, 1); /* never trained here: pack the weights once */
    if (oc_dataset_open(data, NULL, &ds) != OC_OK) {
        cli_error("eval");
        goto done;
    }
    k = oc_model_num_classes(m);
    if (oc_dataset_num_classes(ds) != k) {
        fprintf(stderr, "ocelot eval: the model has %d classes but '%s' has %d\n", k, data,
                oc_dataset_num_classes(ds));
        goto done;
    }
    if ((!split && oc_dataset_has_test_split(ds)) || (split && !strcmp(split, "test"))) {
        if (!oc_dataset_has_test_split(ds)) {
            fprintf(stderr, "ocelot eval: '%s' has no official test split; use --split val "
                            "or --split all\n", data);
            goto done;
        }
        which = "test";
        if (oc_dataset_indices(ds, OC_SPLIT_TEST, &idx, &n) != OC_OK) {
            cli_error("eval");
            goto done;
        }
    } else if (!split || !strcmp(split, "val")) {
        if (recorded_val(m, ds, data, &idx, &n)) {
            which = "val";
        } else if (split) {
            fprintf(stderr, "ocelot eval: the model records no validation split of '%s'\n",
                    data);
            goto done;
        }
    }
    if (!idx) {
        which = "all";
        if (oc_dataset_indices(ds, OC_SPLIT_ALL, &idx, &n) != OC_OK) {
            cli_error("eval");
            goto done;
        }
    }
    if (first > 0 && first < n)
        n = first;
    oc_model_input_shape(m, &h, &w, &ch);
    oc_loader_opts_default(&lo);
    lo.batch_size = batch;
    lo.shuffle = 0;
    lo.pp = *oc_model_preprocess(m);
    lo.pp.height = h;
    lo.pp.width = w;
    lo.pp.channels = ch;
    probs = malloc((size_t)batch * (size_t)k * sizeof *probs);
    if (tta) {
        tta_x = malloc((size_t)batch * (size_t)h * (size_t)w * (size_t)ch * sizeof *tta_x);
        tta_logits = malloc((size_t)batch * (size_t)k * sizeof *tta_logits);
        if (!tta_x || !tta_logits) {
            fprintf(stderr, "ocelot eval: out of memory\n");
            goto done;
        }
    }
    {
        const char **names = malloc((size_t)k * sizeof *names);
        oc_status st = names ? OC_OK : OC_ERR_NOMEM;
        for (int i = 0; names && i < k; i++)
            names[i] = oc_model_class_name(m, i);
        if (st == OC_OK)
            st = oc_metrics_new(&met, k, names, MAX_MISTAKES);
        free(names);
        if (st != OC_OK || !probs || oc_loader_new(ds, idx, n, &lo, &ld) != OC_OK ||
            oc_model_plan(m, batch, 0) != OC_OK) {
            cli_error("eval");
            goto done;
        }
    }
    if (pred_path) {
        pred_out = fopen(pred_path, "w");
        if (!pred_out) {
            fprintf(stderr, "ocelot eval: cannot write '%s': %s\n", pred_path, strerror(errno));
            goto done;
        }
        fprintf(pred_out, "index,label,predicted,confidence\n");
    }
    for (int64_t b = 0; b < oc_loader_num_batches(ld); b++) {
        const oc_batch *bt;
        const float *logits;
        if (oc_loader_next(ld, &bt) != OC_OK ||
            (tta ? oc_model_forward_tta(m, bt->x, bt->n, tta, tta_x, tta_logits)
                 : oc_model_forward(m, bt->x, bt->n, 0, &logits)) != OC_OK) {
            cli_error("eval");
            goto done;
        }
        softmax_into(tta ? tta_logits : logits, bt->n, k, probs);
        for (int i = 0; pred_out && i < bt->n; i++) {
            const float *p = probs + (size_t)i * k;
            int best = 0;
            for (int j = 1; j < k; j++)
                best = p[j] > p[best] ? j : best;
            fprintf(pred_out, "%lld,%d,%d,%.6f\n", (long long)bt->indices[i], bt->labels[i], best,
                    (double)p[best]);
        }
        if (oc_metrics_add(met, bt->labels, probs, bt->n, OC_SCORES_PROBS) != OC_OK) {
            cli_error("eval");
            goto done;
        }
        if (!json && isatty(2))
            fprintf(stderr, "\revaluating: %lld/%lld", (long long)(b + 1),
                    (long long)oc_loader_num_batches(ld));
    }
    if (!json && isatty(2))
        fprintf(stderr, "\r\033[K");
    if (json) {
        char *text = oc_metrics_to_json(met);
        if (!text) {
            cli_error("eval");
            goto done;
        }
        printf("%s\n", text);
        free(text);
    } else {
        char *text = oc_metrics_to_text(met);
        if (!text) {
            cli_error("eval");
            goto done;
        }
        printf("%s on %s (%s split, %lld images%s)\n\n%s", model_path, data, which,
               (long long)n, tta == 1 ? ", flip TTA" : tta == 2 ? ", flip + shift TTA" : "",
               text);
        free(text);
    }
    if (report) {
        oc_report_info info;
        oc_report_image imgs[MAX_MISTAKES];
        oc_image pix[MAX_MISTAKES];
        int n_mis = 0, n_img = 0;
        const oc_mistake *mis = oc_metrics_mistakes(met, &n_mis);
        const char *hist_meta = oc_model_get_meta(m, "history");
        cJSON *hist = hist_meta ? cJSON_Parse(hist_meta) : NULL;
        oc_status st;
        memset(&info, 0, sizeof info);
        memset(pix, 0, sizeof pix);
        info.model_name = model_path;
        info.dataset = data;
        info.history = cJSON_IsString(hist) ? hist->valuestring : NULL;
        for (int i = 0; i < n_mis && n_img < MAX_MISTAKES; i++) {
            int32_t label;
            if (oc_dataset_get(ds, idx[mis[i].index], &pix[n_img], &label) != OC_OK)
                continue;
            imgs[n_img].pixels = pix[n_img].data;
            imgs[n_img].height = pix[n_img].height;
            imgs[n_img].width = pix[n_img].width;
            imgs[n_img].channels = pix[n_img].channels;
            imgs[n_img].true_label = mis[i].true_label;
            imgs[n_img].pred_label = mis[i].pred_label;
            imgs[n_img].probability = mis[i].probability;
            imgs[n_img].index = idx[mis[i].index];
            n_img++;
        }
        info.images = imgs;
        info.n_images = n_img;
        st = oc_report_write(met, &info, report);
        for (int i = 0; i < MAX_MISTAKES; i++)
            oc_image_release(&pix[i]);
        cJSON_Delete(hist);
        if (st != OC_OK) {
            cli_error("eval: writing the report");
            goto done;
        }
        if (!json)
            printf("\nreport written to %s\n", report);
    }
    rc = CLI_OK;
done:
    if (pred_out && fclose(pred_out) != 0 && rc == CLI_OK) {
        fprintf(stderr, "ocelot eval: writing '%s' failed\n", pred_path);
        rc = CLI_FAIL;
    }
    oc_loader_free(ld);
    oc_metrics_free(met);
    oc_dataset_free(ds);
    oc_model_free(m);
    free(idx);
    free(probs);
    free(tta_x);
    free(tta_logits);
    return rc;
}
