/* eval metrics: accuracy, top-k, confusion matrix, precision / recall / F1 and their averages,
 * calibration, mistakes, against scikit-learn 1.2 (tests/ref/gen_metrics.py); batching, JSON
 * round trip, text rendering and argument checks. */
#include "test.h"
#include "eval/eval.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Reference figures are float64 stored as float32: 6e-8 of rounding on values <= 1, so 1e-6 is
 * tight enough to catch any real difference (one sample in 300 moves accuracy by 3e-3). */
#define TOL 1e-6

typedef struct {
    int k, logits, n;
    int32_t *labels;
    float *scores;
} fx_case;

static int load_case(oc_fixture *fx, int c, fx_case *out)
{
    char key[64];
    oc_fixture_array *a;
    snprintf(key, sizeof key, "c%d_k", c);
    if (!(a = oc_fixture_get(fx, key)))
        return 0;
    out->k = ((int32_t *)a->data)[0];
    snprintf(key, sizeof key, "c%d_logits", c);
    if (!(a = oc_fixture_get(fx, key)))
        return 0;
    out->logits = ((int32_t *)a->data)[0];
    snprintf(key, sizeof key, "c%d_labels", c);
    if (!(a = oc_fixture_get(fx, key)))
        return 0;
    out->n = (int)a->numel;
    out->labels = a->data;
    snprintf(key, sizeof key, "c%d_scores", c);
    if (!(a = oc_fixture_get(fx, key)))
        return 0;
    out->scores = a->data;
    return a->numel == (int64_t)out->n * out->k;
}

static oc_fixture_array *get(oc_fixture *fx, int c, const char *what)
{
    char key[64];
    snprintf(key, sizeof key, "c%d_%s", c, what);
    return oc_fixture_get(fx, key);
}

/* The reference figures of one case; NULL members mean the fixture lacks them (a failure is
 * then already recorded). */
typedef struct {
    oc_fixture_array *accuracy, *top5, *topk, *confusion, *precision, *recall, *f1, *support,
        *macro, *weighted, *ece, *mean_conf, *nll, *mistakes, *confusions;
} fx_ref;

static int load_ref(oc_fixture *fx, int c, fx_ref *r)
{
    r->accuracy = get(fx, c, "accuracy");
    r->top5 = get(fx, c, "top5");
    r->topk = get(fx, c, "topk");
    r->confusion = get(fx, c, "confusion");
    r->precision = get(fx, c, "precision");
    r->recall = get(fx, c, "recall");
    r->f1 = get(fx, c, "f1");
    r->support = get(fx, c, "support");
    r->macro = get(fx, c, "macro");
    r->weighted = get(fx, c, "weighted");
    r->ece = get(fx, c, "ece");
    r->mean_conf = get(fx, c, "mean_conf");
    r->nll = get(fx, c, "nll");
    r->mistakes = get(fx, c, "mistakes");
    r->confusions = get(fx, c, "confusions");
    return r->accuracy && r->top5 && r->topk && r->confusion && r->precision && r->recall &&
           r->f1 && r->support && r->macro && r->weighted && r->ece && r->mean_conf && r->nll &&
           r->mistakes && r->confusions;
}

#define F32(arr) ((const float *)(arr)->data)
#define I32(arr) ((const int32_t *)(arr)->data)

/* Adds the case in uneven batches (1, 7, 13, 29, ... samples) to exercise streaming. */
static oc_metrics *build(const fx_case *fc, int max_mistakes)
{
    oc_metrics *m = NULL;
    int done = 0, step = 1;
    if (oc_metrics_new(&m, fc->k, NULL, max_mistakes) != OC_OK) {
        T_CHECK(0, "new: %s", oc_last_error());
        return NULL;
    }
    while (done < fc->n) {
        int b = fc->n - done < step ? fc->n - done : step;
        oc_status st = oc_metrics_add(m, fc->labels + done, fc->scores + (size_t)done * fc->k, b,
                                      fc->logits ? OC_SCORES_LOGITS : OC_SCORES_PROBS);
        T_CHECK(st == OC_OK, "add: %s", oc_last_error());
        done += b;
        step = step * 2 + 5;
    }
    return m;
}

/* Compares a double against a float32 reference and tracks the worst error. */
static void close1(const char *what, int c, double got, float want, double *worst)
{
    double d = fabs(got - (double)want);
    *worst = d > *worst ? d : *worst;
    T_CHECK(d <= TOL, "case %d %s: got %.9f want %.9f", c, what, got, (double)want);
}

static void matches_sklearn(void)
{
    oc_fixture *fx = oc_fixture_load("metrics");
    oc_fixture_array *nc;
    double worst = 0;
    if (!fx || !(nc = oc_fixture_get(fx, "n_cases")))
        goto done;
    for (int c = 0; c < I32(nc)[0]; c++) {
        fx_case fc;
        fx_ref r;
        oc_metrics *m;
        oc_metrics_summary s;
        if (!load_case(fx, c, &fc) || !load_ref(fx, c, &r)) {
            T_CHECK(0, "case %d incomplete", c);
            continue;
        }
        m = build(&fc, 12);
        if (!m)
            continue;
        oc_metrics_summarize(m, &s);
        T_CHECK(s.count == fc.n, "case %d count %lld", c, (long long)s.count);
        close1("accuracy", c, s.accuracy, F32(r.accuracy)[0], &worst);
        close1("top5", c, s.top5, F32(r.top5)[0], &worst);
        for (int k = 1; k <= fc.k; k++)
            close1("top-k", c, oc_metrics_topk(m, k), F32(r.topk)[k - 1], &worst);

        {
            const int64_t *cm = oc_metrics_confusion(m);
            int bad = 0;
            for (int i = 0; i < fc.k * fc.k; i++)
                bad += cm[i] != I32(r.confusion)[i];
            T_CHECK(bad == 0, "case %d: %d confusion cells differ", c, bad);
        }
        for (int i = 0; i < fc.k; i++) {
            oc_class_metrics cm;
            oc_metrics_class(m, i, &cm);
            close1("precision", c, cm.precision, F32(r.precision)[i], &worst);
            close1("recall", c, cm.recall, F32(r.recall)[i], &worst);
            close1("f1", c, cm.f1, F32(r.f1)[i], &worst);
            T_CHECK(cm.support == I32(r.support)[i], "case %d class %d support %lld want %d", c,
                    i, (long long)cm.support, (int)I32(r.support)[i]);
        }
        close1("macro precision", c, s.macro_precision, F32(r.macro)[0], &worst);
        close1("macro recall", c, s.macro_recall, F32(r.macro)[1], &worst);
        close1("macro f1", c, s.macro_f1, F32(r.macro)[2], &worst);
        close1("weighted precision", c, s.weighted_precision, F32(r.weighted)[0], &worst);
        close1("weighted recall", c, s.weighted_recall, F32(r.weighted)[1], &worst);
        close1("weighted f1", c, s.weighted_f1, F32(r.weighted)[2], &worst);
        close1("ece", c, s.ece, F32(r.ece)[0], &worst);
        close1("mean confidence", c, s.mean_confidence, F32(r.mean_conf)[0], &worst);
        /* the mean NLL is a few units, so its float32 reference carries ~2e-7 of rounding:
         * compare relative to its size */
        close1("nll (relative)", c, s.nll / (double)F32(r.nll)[0], 1.0f, &worst);

        {
            int n;
            const oc_mistake *e = oc_metrics_mistakes(m, &n);
            T_CHECK(n == r.mistakes->numel, "case %d: %d mistakes kept, want %lld", c, n,
                    (long long)r.mistakes->numel);
            for (int i = 0; i < n && i < r.mistakes->numel; i++) {
                T_CHECK(e[i].index == I32(r.mistakes)[i], "case %d mistake %d: index %lld want %d",
                        c, i, (long long)e[i].index, (int)I32(r.mistakes)[i]);
                T_CHECK(e[i].true_label == fc.labels[e[i].index] &&
                            e[i].pred_label != e[i].true_label,
                        "case %d mistake %d: labels %d/%d", c, i, e[i].true_label,
                        e[i].pred_label);
                T_CHECK(i == 0 || e[i].probability <= e[i - 1].probability,
                        "case %d: mistakes not sorted at %d", c, i);
            }
        }
        {
            oc_confusion top[10];
            int n = oc_metrics_top_confusions(m, top, 10);
            const int32_t *want = I32(r.confusions);
            T_CHECK(n == r.confusions->shape[0], "case %d: %d top confusions, want %lld", c, n,
                    (long long)r.confusions->shape[0]);
            for (int i = 0; i < n && i < r.confusions->shape[0]; i++)
                T_CHECK(top[i].true_label == want[3 * i] && top[i].pred_label == want[3 * i + 1] &&
                            top[i].count == want[3 * i + 2],
                        "case %d confusion %d: (%d,%d,%lld) want (%d,%d,%d)", c, i,
                        top[i].true_label, top[i].pred_label, (long long)top[i].count,
                        (int)want[3 * i], (int)want[3 * i + 1], (int)want[3 * i + 2]);
        }
        oc_test_note("case %d: K=%d N=%d %s accuracy %.4f macro-F1 %.4f ECE %.4f", c, fc.k, fc.n,
                     fc.logits ? "logits" : "probs", s.accuracy, s.macro_f1, s.ece);
        oc_metrics_free(m);
    }
    oc_test_note("max |ocelot - sklearn/numpy| over every figure: %.3g", worst);
done:
    oc_fixture_free(fx);
}

/* Random probability rows with some signal towards the label. */
static void synth(oc_rng *rng, int n, int k, int32_t *labels, float *scores)
{
    for (int i = 0; i < n; i++) {
        float sum = 0;
        labels[i] = (int32_t)oc_rng_below(rng, (uint64_t)k);
        for (int j = 0; j < k; j++) {
            float z = 2.0f * oc_rng_normal(rng) + (j == labels[i] ? 2.0f : 0.0f);
            scores[(size_t)i * k + j] = expf(z);
            sum += scores[(size_t)i * k + j];
        }
        for (int j = 0; j < k; j++)
            scores[(size_t)i * k + j] /= sum;
    }
}

static void batching_does_not_change_results(void)
{
    enum { N = 500, K = 7 };
    int32_t *labels = malloc(N * sizeof *labels);
    float *scores = malloc((size_t)N * K * sizeof *scores);
    oc_metrics *a = NULL, *b = NULL;
    oc_metrics_summary sa, sb;
    char *ja = NULL, *jb = NULL;
    oc_rng rng;
    oc_rng_seed(&rng, 7, 0);
    synth(&rng, N, K, labels, scores);
    T_CHECK(oc_metrics_new(&a, K, NULL, 20) == OC_OK, "new: %s", oc_last_error());
    T_CHECK(oc_metrics_new(&b, K, NULL, 20) == OC_OK, "new: %s", oc_last_error());
    if (!a || !b)
        goto cleanup;
    T_CHECK(oc_metrics_add(a, labels, scores, N, OC_SCORES_PROBS) == OC_OK, "%s", oc_last_error());
    for (int i = 0; i < N; i++)
        T_CHECK(oc_metrics_add(b, labels + i, scores + (size_t)i * K, 1, OC_SCORES_PROBS) == OC_OK,
                "%s", oc_last_error());
    T_CHECK(oc_metrics_add(b, labels, scores, 0, OC_SCORES_PROBS) == OC_OK, "empty batch");
    oc_metrics_summarize(a, &sa);
    oc_metrics_summarize(b, &sb);
    T_CHECK(memcmp(&sa, &sb, sizeof sa) == 0,
            "summaries differ: accuracy %.17g vs %.17g, ece %.17g vs %.17g", sa.accuracy,
            sb.accuracy, sa.ece, sb.ece);
    ja = oc_metrics_to_json(a);
    jb = oc_metrics_to_json(b);
    T_CHECK(ja && jb && strcmp(ja, jb) == 0, "JSON differs between one batch and %d", N);
    oc_test_note("N=%d K=%d accuracy %.4f top-5 %.4f ECE %.4f: identical in 1 and %d batches", N,
                 K, sa.accuracy, sa.top5, sa.ece, N);
    oc_metrics_reset(b);
    oc_metrics_summarize(b, &sb);
    T_CHECK(sb.count == 0 && sb.accuracy == 0.0, "reset kept samples");
    T_CHECK(oc_metrics_add(b, labels, scores, N, OC_SCORES_PROBS) == OC_OK, "%s", oc_last_error());
    oc_metrics_summarize(b, &sb);
    T_CHECK(memcmp(&sa, &sb, sizeof sa) == 0, "results after reset differ");
cleanup:
    free(ja);
    free(jb);
    oc_metrics_free(a);
    oc_metrics_free(b);
    free(labels);
    free(scores);
}

static int same(double a, double b)
{
    return fabs(a - b) <= 1e-15 * fabs(b);
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    T_CHECK(cJSON_IsNumber(it), "JSON: '%s' missing or not a number", key);
    return cJSON_IsNumber(it) ? it->valuedouble : (double)NAN;
}

static void json_parses_back_to_same_numbers(void)
{
    enum { N = 240, K = 5 };
    const char *names[K] = {"cat", "dog", "<b>&\"x", "caf\xc3\xa9", "bird"};
    int32_t labels[N];
    float scores[N * K];
    oc_metrics *m = NULL;
    oc_metrics_summary s;
    char *text = NULL;
    cJSON *root = NULL;
    const cJSON *arr;
    oc_rng rng;
    int n_mistakes;
    const oc_mistake *mist;

    oc_rng_seed(&rng, 11, 0);
    synth(&rng, N, K, labels, scores);
    if (oc_metrics_new(&m, K, names, 6) != OC_OK) {
        T_CHECK(0, "new: %s", oc_last_error());
        return;
    }
    T_CHECK(oc_metrics_add(m, labels, scores, N, OC_SCORES_PROBS) == OC_OK, "%s", oc_last_error());
    oc_metrics_summarize(m, &s);
    text = oc_metrics_to_json(m);
    T_CHECK(text != NULL, "to_json returned NULL");
    root = text ? cJSON_Parse(text) : NULL;
    T_CHECK(root != NULL, "JSON does not parse");
    if (!root)
        goto cleanup;
    T_CHECK(cJSON_IsString(cJSON_GetObjectItem(root, "schema")) &&
                strcmp(cJSON_GetObjectItem(root, "schema")->valuestring, "ocelot.eval/1") == 0,
            "schema tag");
    /* cJSON prints 15 significant digits and keeps them when they read back within
     * DBL_EPSILON relative, so compare with SAME (1e-15 relative), not == */
    T_CHECK(same(num(root, "count"), (double)N), "count");
    T_CHECK(same(num(root, "accuracy"), s.accuracy), "accuracy %.17g vs %.17g",
            num(root, "accuracy"), s.accuracy);
    T_CHECK(same(num(root, "top5"), s.top5), "top5");
    T_CHECK(same(num(root, "ece"), s.ece), "ece");
    T_CHECK(same(num(root, "mean_confidence"), s.mean_confidence), "mean_confidence");
    T_CHECK(same(num(root, "nll"), s.nll), "nll");
    arr = cJSON_GetObjectItem(root, "macro_avg");
    T_CHECK(same(num(arr, "precision"), s.macro_precision) &&
                same(num(arr, "recall"), s.macro_recall) && same(num(arr, "f1"), s.macro_f1) &&
                same(num(arr, "support"), (double)N),
            "macro_avg");
    arr = cJSON_GetObjectItem(root, "weighted_avg");
    T_CHECK(same(num(arr, "precision"), s.weighted_precision) &&
                same(num(arr, "recall"), s.weighted_recall) && same(num(arr, "f1"), s.weighted_f1),
            "weighted_avg");

    arr = cJSON_GetObjectItem(root, "per_class");
    T_CHECK(cJSON_GetArraySize(arr) == K, "per_class has %d entries", cJSON_GetArraySize(arr));
    for (int i = 0; i < K && i < cJSON_GetArraySize(arr); i++) {
        const cJSON *o = cJSON_GetArrayItem(arr, i), *name = cJSON_GetObjectItem(o, "name");
        oc_class_metrics c;
        oc_metrics_class(m, i, &c);
        T_CHECK(cJSON_IsString(name) && strcmp(name->valuestring, names[i]) == 0,
                "class %d name", i);
        T_CHECK(same(num(o, "precision"), c.precision) && same(num(o, "recall"), c.recall) &&
                    same(num(o, "f1"), c.f1) && same(num(o, "support"), (double)c.support),
                "class %d figures", i);
    }
    arr = cJSON_GetObjectItem(root, "confusion_matrix");
    T_CHECK(cJSON_GetArraySize(arr) == K, "confusion rows %d", cJSON_GetArraySize(arr));
    for (int t = 0; t < K && t < cJSON_GetArraySize(arr); t++) {
        const cJSON *row = cJSON_GetArrayItem(arr, t);
        T_CHECK(cJSON_GetArraySize(row) == K, "row %d size", t);
        for (int p = 0; p < K && p < cJSON_GetArraySize(row); p++)
            T_CHECK(same(cJSON_GetArrayItem(row, p)->valuedouble,
                         (double)oc_metrics_confusion(m)[t * K + p]),
                    "confusion[%d][%d]", t, p);
    }
    T_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(root, "calibration")) == OC_METRICS_ECE_BINS,
            "calibration bins");
    T_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(root, "classes")) == K, "classes");
    T_CHECK(cJSON_IsArray(cJSON_GetObjectItem(root, "top_confusions")), "top_confusions");
    mist = oc_metrics_mistakes(m, &n_mistakes);
    arr = cJSON_GetObjectItem(root, "mistakes");
    T_CHECK(cJSON_GetArraySize(arr) == n_mistakes && n_mistakes == 6, "mistakes %d/%d",
            cJSON_GetArraySize(arr), n_mistakes);
    for (int i = 0; i < n_mistakes && i < cJSON_GetArraySize(arr); i++) {
        const cJSON *o = cJSON_GetArrayItem(arr, i);
        T_CHECK(same(num(o, "index"), (double)mist[i].index) &&
                    (float)num(o, "probability") == mist[i].probability,
                "mistake %d", i);
    }
    oc_test_note("JSON %zu bytes, accuracy %.4f, macro-F1 %.4f", strlen(text), s.accuracy,
                 s.macro_f1);
cleanup:
    cJSON_Delete(root);
    free(text);
    oc_metrics_free(m);
}

/* Display width of one line (code points up to '\n'). */
static size_t line_width(const char *p)
{
    size_t w = 0;
    for (; *p && *p != '\n'; p++)
        w += ((unsigned char)*p & 0xC0) != 0x80;
    return w;
}

static void text_report_is_aligned(void)
{
    enum { K = 4 };
    const char *names[K] = {"airplane", "caf\xc3\xa9", "a-very-long-class-name-that-gets-cut",
                            "x"};
    int32_t labels[] = {0, 0, 1, 1, 2, 2, 3, 3, 0, 2};
    int32_t preds[] = {0, 1, 1, 1, 2, 0, 3, 2, 0, 2};
    float scores[10 * K] = {0};
    oc_metrics *m = NULL;
    char *text = NULL;
    const char *cm, *line;
    size_t width = 0;
    int rows = 0;

    for (int i = 0; i < 10; i++)
        scores[i * K + preds[i]] = 1.0f;
    if (oc_metrics_new(&m, K, names, 0) != OC_OK ||
        oc_metrics_add(m, labels, scores, 10, OC_SCORES_PROBS) != OC_OK) {
        T_CHECK(0, "setup: %s", oc_last_error());
        goto cleanup;
    }
    text = oc_metrics_to_text(m);
    T_CHECK(text != NULL, "to_text returned NULL");
    if (!text)
        goto cleanup;
    T_CHECK(strstr(text, "precision") && strstr(text, "recall") && strstr(text, "f1-score") &&
                strstr(text, "support"),
            "header missing");
    T_CHECK(strstr(text, "macro avg") && strstr(text, "weighted avg") && strstr(text, "accuracy"),
            "averages missing");
    T_CHECK(strstr(text, "   airplane") && strstr(text, "caf\xc3\xa9"), "class names missing");
    /* accuracy 7/10; airplane: 3 predicted, 3 true, 2 right -> precision 0.6667 */
    T_CHECK(strstr(text, "0.7000") != NULL, "accuracy 0.7000 not shown:\n%s", text);
    T_CHECK(strstr(text, "0.6667") != NULL, "airplane precision not shown");
    cm = strstr(text, "confusion matrix");
    T_CHECK(cm != NULL, "confusion matrix missing");
    if (!cm)
        goto cleanup;
    line = strchr(cm, '\n') + 1;
    while (*line) {
        size_t w = line_width(line);
        if (rows == 0)
            width = w;
        T_CHECK(w == width, "confusion line %d is %zu columns wide, header %zu", rows, w, width);
        rows++;
        line += strcspn(line, "\n");
        if (*line)
            line++;
    }
    T_CHECK(rows == K + 1, "confusion matrix has %d lines", rows);
    oc_test_note("text report %zu bytes, confusion matrix %d lines x %zu columns", strlen(text),
                 rows, width);
cleanup:
    free(text);
    oc_metrics_free(m);
}

static void rejects_bad_input_without_counting(void)
{
    int32_t labels[2] = {0, 1};
    float good[6] = {0.7f, 0.2f, 0.1f, 0.1f, 0.8f, 0.1f};
    float bad[6];
    oc_metrics *m = NULL;
    T_CHECK(oc_metrics_new(&m, 1, NULL, 0) == OC_ERR_ARG && m == NULL, "1 class accepted");
    T_CHECK(oc_metrics_new(&m, 3, NULL, -1) == OC_ERR_ARG, "negative max_mistakes accepted");
    if (oc_metrics_new(&m, 3, NULL, 4) != OC_OK) {
        T_CHECK(0, "new: %s", oc_last_error());
        return;
    }
    T_CHECK(oc_metrics_add(m, labels, good, 2, OC_SCORES_PROBS) == OC_OK, "%s", oc_last_error());

    labels[1] = 3;
    T_CHECK(oc_metrics_add(m, labels, good, 2, OC_SCORES_PROBS) == OC_ERR_ARG, "label 3 of 3");
    T_CHECK(strstr(oc_last_error(), "label") != NULL, "message: %s", oc_last_error());
    labels[1] = -1;
    T_CHECK(oc_metrics_add(m, labels, good, 2, OC_SCORES_PROBS) == OC_ERR_ARG, "label -1");
    labels[1] = 1;
    memcpy(bad, good, sizeof bad);
    bad[4] = NAN;
    T_CHECK(oc_metrics_add(m, labels, bad, 2, OC_SCORES_LOGITS) == OC_ERR_NUMERIC, "NaN logit");
    bad[4] = INFINITY;
    T_CHECK(oc_metrics_add(m, labels, bad, 2, OC_SCORES_PROBS) == OC_ERR_NUMERIC, "Inf prob");
    memcpy(bad, good, sizeof bad);
    bad[3] = 1.1f; /* row sums to 2 */
    T_CHECK(oc_metrics_add(m, labels, bad, 2, OC_SCORES_PROBS) == OC_ERR_ARG, "row sum 2");
    T_CHECK(strstr(oc_last_error(), "sum") != NULL, "message: %s", oc_last_error());
    T_CHECK(oc_metrics_add(m, labels, bad, 2, OC_SCORES_LOGITS) == OC_OK, "same row as logits");
    bad[3] = -0.1f;
    bad[4] = 1.0f;
    T_CHECK(oc_metrics_add(m, labels, bad, 2, OC_SCORES_PROBS) == OC_ERR_ARG, "negative prob");
    T_CHECK(oc_metrics_add(m, labels, good, -1, OC_SCORES_PROBS) == OC_ERR_ARG, "n = -1");
    T_CHECK(oc_metrics_add(m, NULL, good, 2, OC_SCORES_PROBS) == OC_ERR_ARG, "NULL labels");
    T_CHECK(oc_metrics_add(m, labels, good, 2, (oc_score_kind)7) == OC_ERR_ARG, "bad kind");
    T_CHECK(oc_metrics_count(m) == 4, "rejected batches were counted: %lld",
            (long long)oc_metrics_count(m));
    oc_metrics_free(m);
    oc_metrics_free(NULL);
}

static void extreme_logits_and_ties(void)
{
    enum { K = 4 };
    int32_t labels[K] = {0, 1, 2, 3};
    float flat[K * K] = {0};    /* all ties: the arg-max is class 0 and label t ranks t */
    float huge[2 * K] = {1000.0f, -1000.0f, 0.0f, 999.0f, -3e38f, 3e38f, 0.0f, 0.0f};
    oc_metrics *m = NULL;
    oc_metrics_summary s;
    if (oc_metrics_new(&m, K, NULL, 8) != OC_OK) {
        T_CHECK(0, "new: %s", oc_last_error());
        return;
    }
    T_CHECK(oc_metrics_add(m, labels, flat, K, OC_SCORES_LOGITS) == OC_OK, "%s", oc_last_error());
    for (int k = 1; k <= K + 1; k++) {
        double want = (k < K ? k : K) / (double)K;
        T_CHECK(oc_metrics_topk(m, k) == want, "tied top-%d %.4f want %.4f", k,
                oc_metrics_topk(m, k), want);
    }
    T_CHECK(oc_metrics_confusion(m)[3 * K + 0] == 1, "tie did not predict class 0");
    oc_metrics_summarize(m, &s);
    T_CHECK(fabs(s.mean_confidence - 0.25) < 1e-12, "uniform confidence %.17g", s.mean_confidence);
    T_CHECK(fabs(s.nll - log(4.0)) < 1e-12, "uniform NLL %.17g", s.nll);

    oc_metrics_reset(m);
    T_CHECK(oc_metrics_add(m, labels, huge, 2, OC_SCORES_LOGITS) == OC_OK, "%s", oc_last_error());
    oc_metrics_summarize(m, &s);
    T_CHECK(isfinite(s.nll) && isfinite(s.ece) && isfinite(s.mean_confidence),
            "non-finite figure: nll %g ece %g conf %g", s.nll, s.ece, s.mean_confidence);
    /* sample 0 right with p = 1/(1+e^-1); sample 1 right with p = 1 */
    T_CHECK(s.accuracy == 1.0, "accuracy %g", s.accuracy);
    T_CHECK(fabs(s.nll - 0.5 * log1p(exp(-1.0))) < 1e-12, "nll %.17g", s.nll);
    oc_test_note("logits up to 3e38: nll %.6f ece %.6f", s.nll, s.ece);
    oc_metrics_free(m);
}

static void keeps_only_the_most_confident_mistakes(void)
{
    enum { N = 50, K = 3 };
    int32_t labels[N];
    float scores[N * K];
    oc_metrics *m = NULL;
    const oc_mistake *e;
    int n;
    /* sample i is wrong (predicts class 1 for label 0) with confidence rising in i, except that
     * every 5th is right; the 3 kept must be samples 49, 48, 47 */
    for (int i = 0; i < N; i++) {
        float c = 0.4f + 0.01f * (float)i;
        labels[i] = i % 5 == 0 ? 1 : 0;
        scores[i * K + 0] = (1.0f - c) * 0.75f;
        scores[i * K + 1] = c;
        scores[i * K + 2] = (1.0f - c) * 0.25f;
    }
    if (oc_metrics_new(&m, K, NULL, 3) != OC_OK) {
        T_CHECK(0, "new: %s", oc_last_error());
        return;
    }
    T_CHECK(oc_metrics_add(m, labels, scores, N, OC_SCORES_PROBS) == OC_OK, "%s", oc_last_error());
    e = oc_metrics_mistakes(m, &n);
    T_CHECK(n == 3, "kept %d", n);
    for (int i = 0; i < n; i++)
        T_CHECK(e[i].index == 49 - i &&
                    e[i].true_label == 0 && e[i].pred_label == 1,
                "mistake %d: index %lld (%d -> %d, p %.3f)", i, (long long)e[i].index,
                e[i].true_label, e[i].pred_label, (double)e[i].probability);
    oc_metrics_free(m);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"matches_sklearn", matches_sklearn},
        {"batching_does_not_change_results", batching_does_not_change_results},
        {"json_parses_back_to_same_numbers", json_parses_back_to_same_numbers},
        {"text_report_is_aligned", text_report_is_aligned},
        {"rejects_bad_input_without_counting", rejects_bad_input_without_counting},
        {"extreme_logits_and_ties", extreme_logits_and_ties},
        {"keeps_only_the_most_confident_mistakes", keeps_only_the_most_confident_mistakes},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
