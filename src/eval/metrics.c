/* Classification metrics accumulated over batches of predictions: accuracy, top-k, confusion
 * matrix, per-class precision / recall / F1 with macro and weighted averages, calibration,
 * the most confident mistakes; JSON and terminal renderings. Conventions in ocelot.h. */
#include "eval/eval.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Probabilities below this count as this in the NLL, so one confident mistake cannot make the
 * mean infinite: -log(1e-12) = 27.6. */
#define NLL_P_MIN 1e-12
/* How far a probability row's sum may be from 1: float32 softmax outputs of 1000 classes sum
 * to 1 within ~1e-5, while a row of logits almost never lands this close. */
#define PROB_SUM_TOL 1e-3
#define JSON_TOP_CONFUSIONS 10

struct oc_metrics {
    int classes;
    char **names;             /* [classes] */
    int64_t count;
    int64_t *confusion;       /* [classes][classes], rows = true */
    int64_t *rank_hist;       /* [classes]: samples whose true class ranked r (0 = arg-max) */
    int64_t bin_count[OC_METRICS_ECE_BINS];
    int64_t bin_correct[OC_METRICS_ECE_BINS];
    double bin_conf[OC_METRICS_ECE_BINS];
    double sum_conf, sum_nll; /* summed in sample order, so batching does not change them */
    int max_mistakes, n_mistakes;
    oc_mistake *mistakes;     /* [max_mistakes], most confident first */
};

oc_status oc_metrics_new(oc_metrics **out, int classes, const char *const *names,
                         int max_mistakes)
{
    oc_metrics *m;
    size_t cells;

    if (!out)
        return oc_fail(OC_ERR_ARG, "metrics: out is NULL");
    *out = NULL;
    if (classes < 2 || classes > 1000000)
        return oc_fail(OC_ERR_ARG, "metrics: %d classes (need 2 to 1000000)", classes);
    if (max_mistakes < 0 || max_mistakes > 1000000)
        return oc_fail(OC_ERR_ARG, "metrics: max_mistakes %d out of range", max_mistakes);
    if (!oc_mul_ok((size_t)classes, (size_t)classes, &cells) ||
        !oc_mul_ok(cells, sizeof(int64_t), &cells))
        return oc_fail(OC_ERR_NOMEM, "metrics: %d classes overflow", classes);
    m = calloc(1, sizeof *m);
    if (!m)
        return oc_fail(OC_ERR_NOMEM, "metrics: out of memory");
    m->classes = classes;
    m->max_mistakes = max_mistakes;
    m->names = calloc((size_t)classes, sizeof *m->names);
    m->confusion = calloc(1, cells);
    m->rank_hist = calloc((size_t)classes, sizeof *m->rank_hist);
    m->mistakes = calloc((size_t)max_mistakes + 1, sizeof *m->mistakes);
    if (!m->names || !m->confusion || !m->rank_hist || !m->mistakes)
        goto nomem;
    for (int i = 0; i < classes; i++) {
        char num[16];
        const char *src = names && names[i] ? names[i] : num;
        snprintf(num, sizeof num, "%d", i);
        m->names[i] = strdup(src);
        if (!m->names[i])
            goto nomem;
    }
    *out = m;
    return OC_OK;

nomem:
    oc_metrics_free(m);
    return oc_fail(OC_ERR_NOMEM, "metrics: out of memory");
}

void oc_metrics_free(oc_metrics *m)
{
    if (!m)
        return;
    if (m->names)
        for (int i = 0; i < m->classes; i++)
            free(m->names[i]);
    free(m->names);
    free(m->confusion);
    free(m->rank_hist);
    free(m->mistakes);
    free(m);
}

void oc_metrics_reset(oc_metrics *m)
{
    size_t k = (size_t)m->classes;
    m->count = 0;
    memset(m->confusion, 0, k * k * sizeof *m->confusion);
    memset(m->rank_hist, 0, k * sizeof *m->rank_hist);
    memset(m->bin_count, 0, sizeof m->bin_count);
    memset(m->bin_correct, 0, sizeof m->bin_correct);
    memset(m->bin_conf, 0, sizeof m->bin_conf);
    m->sum_conf = m->sum_nll = 0;
    m->n_mistakes = 0;
}

int oc_metrics_classes(const oc_metrics *m)
{
    return m->classes;
}

int64_t oc_metrics_count(const oc_metrics *m)
{
    return m->count;
}

const char *oc_metrics_class_name(const oc_metrics *m, int i)
{
    return i >= 0 && i < m->classes ? m->names[i] : "";
}

/* Bin of a confidence in [0, 1]: (b/15, (b+1)/15], 0 in the first. */
static int ece_bin(double conf)
{
    int b = (int)ceil(conf * OC_METRICS_ECE_BINS) - 1;
    return b < 0 ? 0 : b >= OC_METRICS_ECE_BINS ? OC_METRICS_ECE_BINS - 1 : b;
}

/* Keeps the list sorted by probability, descending; equal probabilities keep arrival order,
 * which is ascending index. */
static void keep_mistake(oc_metrics *m, int64_t index, int t, int p, float prob)
{
    int pos = m->n_mistakes;
    if (m->max_mistakes == 0)
        return;
    if (m->n_mistakes == m->max_mistakes && !(prob > m->mistakes[m->n_mistakes - 1].probability))
        return;
    while (pos > 0 && prob > m->mistakes[pos - 1].probability)
        pos--;
    if (m->n_mistakes < m->max_mistakes)
        m->n_mistakes++;
    memmove(&m->mistakes[pos + 1], &m->mistakes[pos],
            (size_t)(m->n_mistakes - 1 - pos) * sizeof *m->mistakes);
    m->mistakes[pos] = (oc_mistake){index, t, p, prob};
}

static oc_status validate(const oc_metrics *m, const int32_t *labels, const float *scores, int n,
                          oc_score_kind kind)
{
    const int k = m->classes;
    for (int i = 0; i < n; i++) {
        const float *row = scores + (size_t)i * (size_t)k;
        double sum = 0;
        if (labels[i] < 0 || labels[i] >= k)
            return oc_fail(OC_ERR_ARG, "metrics: label %d of sample %d outside [0, %d)",
                           (int)labels[i], i, k);
        for (int j = 0; j < k; j++) {
            if (!isfinite(row[j]))
                return oc_fail(OC_ERR_NUMERIC, "metrics: score [%d][%d] is %g", i, j,
                               (double)row[j]);
            if (kind == OC_SCORES_PROBS && row[j] < 0.0f)
                return oc_fail(OC_ERR_ARG, "metrics: probability [%d][%d] is negative (%g)", i,
                               j, (double)row[j]);
            sum += (double)row[j];
        }
        if (kind == OC_SCORES_PROBS && fabs(sum - 1.0) > PROB_SUM_TOL)
            return oc_fail(OC_ERR_ARG,
                           "metrics: probabilities of sample %d sum to %g, not 1 (logits? use "
                           "OC_SCORES_LOGITS)",
                           i, sum);
    }
    return OC_OK;
}

oc_status oc_metrics_add(oc_metrics *m, const int32_t *labels, const float *scores, int n,
                         oc_score_kind kind)
{
    const int k = m ? m->classes : 0;
    oc_status st;

    if (!m || n < 0 || (n > 0 && (!labels || !scores)))
        return oc_fail(OC_ERR_ARG, "metrics: bad arguments to add (n = %d)", n);
    if (kind != OC_SCORES_PROBS && kind != OC_SCORES_LOGITS)
        return oc_fail(OC_ERR_ARG, "metrics: unknown score kind %d", (int)kind);
    st = validate(m, labels, scores, n, kind);
    if (st != OC_OK)
        return st;

    for (int i = 0; i < n; i++) {
        const float *row = scores + (size_t)i * (size_t)k;
        const int t = labels[i];
        int pred = 0, rank = 0;
        double conf, p_true;

        for (int j = 1; j < k; j++)
            if (row[j] > row[pred])
                pred = j;
        for (int j = 0; j < k; j++)
            rank += row[j] > row[t] || (row[j] == row[t] && j < t);

        if (kind == OC_SCORES_LOGITS) {
            /* softmax in double after subtracting the max, so large logits cannot overflow */
            double zmax = (double)row[pred], sum = 0;
            for (int j = 0; j < k; j++)
                sum += exp((double)row[j] - zmax);
            conf = 1.0 / sum;
            p_true = exp((double)row[t] - zmax) / sum;
        } else {
            conf = (double)row[pred];
            p_true = (double)row[t];
        }

        const int b = ece_bin(conf);
        m->confusion[(size_t)t * (size_t)k + (size_t)pred]++;
        m->rank_hist[rank]++;
        m->bin_count[b]++;
        m->bin_correct[b] += pred == t;
        m->bin_conf[b] += conf;
        m->sum_conf += conf;
        m->sum_nll += -log(p_true > NLL_P_MIN ? p_true : NLL_P_MIN);
        if (pred != t)
            keep_mistake(m, m->count, t, pred, (float)conf);
        m->count++;
    }
    return OC_OK;
}

void oc_metrics_class(const oc_metrics *m, int i, oc_class_metrics *out)
{
    const size_t k = (size_t)m->classes;
    int64_t tp = m->confusion[(size_t)i * k + (size_t)i], support = 0, predicted = 0;
    double p, r;
    for (size_t j = 0; j < k; j++) {
        support += m->confusion[(size_t)i * k + j];
        predicted += m->confusion[j * k + (size_t)i];
    }
    p = predicted ? (double)tp / (double)predicted : 0.0;
    r = support ? (double)tp / (double)support : 0.0;
    out->precision = p;
    out->recall = r;
    out->f1 = p + r > 0 ? 2.0 * p * r / (p + r) : 0.0;
    out->support = support;
    out->predicted = predicted;
}

double oc_metrics_topk(const oc_metrics *m, int k)
{
    int64_t hits = 0;
    if (m->count == 0 || k < 1)
        return 0.0;
    for (int r = 0; r < k && r < m->classes; r++)
        hits += m->rank_hist[r];
    return (double)hits / (double)m->count;
}

void oc_metrics_summarize(const oc_metrics *m, oc_metrics_summary *out)
{
    const int k = m->classes;
    const double n = (double)m->count;
    double ece = 0;

    memset(out, 0, sizeof *out);
    out->count = m->count;
    out->classes = k;
    if (m->count == 0)
        return;
    out->accuracy = oc_metrics_topk(m, 1);
    out->top5 = oc_metrics_topk(m, 5);
    for (int i = 0; i < k; i++) {
        oc_class_metrics c;
        oc_metrics_class(m, i, &c);
        out->macro_precision += c.precision;
        out->macro_recall += c.recall;
        out->macro_f1 += c.f1;
        out->weighted_precision += c.precision * (double)c.support;
        out->weighted_recall += c.recall * (double)c.support;
        out->weighted_f1 += c.f1 * (double)c.support;
    }
    out->macro_precision /= k;
    out->macro_recall /= k;
    out->macro_f1 /= k;
    out->weighted_precision /= n;
    out->weighted_recall /= n;
    out->weighted_f1 /= n;
    for (int b = 0; b < OC_METRICS_ECE_BINS; b++) {
        if (m->bin_count[b] == 0)
            continue;
        double cnt = (double)m->bin_count[b];
        ece += cnt / n * fabs((double)m->bin_correct[b] / cnt - m->bin_conf[b] / cnt);
    }
    out->ece = ece;
    out->mean_confidence = m->sum_conf / n;
    out->nll = m->sum_nll / n;
}

const int64_t *oc_metrics_confusion(const oc_metrics *m)
{
    return m->confusion;
}

int oc_metrics_top_confusions(const oc_metrics *m, oc_confusion *out, int max)
{
    const int k = m->classes;
    int n = 0;
    if (max <= 0)
        return 0;
    /* insertion into a short sorted list: cells are visited in (true, pred) order, so a strict
     * comparison keeps ties in that order */
    for (int t = 0; t < k; t++) {
        for (int p = 0; p < k; p++) {
            int64_t c = m->confusion[(size_t)t * (size_t)k + (size_t)p];
            int pos;
            if (t == p || c == 0 || (n == max && c <= out[n - 1].count))
                continue;
            pos = n < max ? n : max - 1;
            while (pos > 0 && c > out[pos - 1].count) {
                out[pos] = out[pos - 1];
                pos--;
            }
            out[pos] = (oc_confusion){t, p, c};
            if (n < max)
                n++;
        }
    }
    return n;
}

const oc_mistake *oc_metrics_mistakes(const oc_metrics *m, int *n)
{
    *n = m->n_mistakes;
    return m->mistakes;
}

void oc_metrics_calibration(const oc_metrics *m, int b, oc_calibration_bin *out)
{
    memset(out, 0, sizeof *out);
    if (b < 0 || b >= OC_METRICS_ECE_BINS)
        return;
    out->lower = (double)b / OC_METRICS_ECE_BINS;
    out->upper = (double)(b + 1) / OC_METRICS_ECE_BINS;
    out->count = m->bin_count[b];
    if (out->count) {
        out->accuracy = (double)m->bin_correct[b] / (double)out->count;
        out->confidence = m->bin_conf[b] / (double)out->count;
    }
}

/* ---------------------------------------------------------------- JSON */

/* {"name"?, "precision", "recall", "f1", "support"}; name NULL leaves it out. */
static cJSON *avg_object(const char *name, double p, double r, double f1, int64_t support)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if ((name && !cJSON_AddStringToObject(o, "name", name)) ||
        !cJSON_AddNumberToObject(o, "precision", p) || !cJSON_AddNumberToObject(o, "recall", r) ||
        !cJSON_AddNumberToObject(o, "f1", f1) ||
        !cJSON_AddNumberToObject(o, "support", (double)support)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Adds `item` to `arr`; false (and `item` freed) when either is NULL. */
static int push(cJSON *arr, cJSON *item)
{
    if (!arr || !item) {
        cJSON_Delete(item);
        return 0;
    }
    return cJSON_AddItemToArray(arr, item) ? 1 : (cJSON_Delete(item), 0);
}

/* Adds `item` to object `o` under `key`; false (and `item` freed) when it is NULL. */
static int add_item(cJSON *o, const char *key, cJSON *item)
{
    if (!item)
        return 0;
    return cJSON_AddItemToObject(o, key, item) ? 1 : (cJSON_Delete(item), 0);
}

char *oc_metrics_to_json(const oc_metrics *m)
{
    const int k = m->classes;
    oc_metrics_summary s;
    oc_confusion top[JSON_TOP_CONFUSIONS];
    cJSON *root = cJSON_CreateObject(), *arr;
    char *text = NULL;
    int ok = root != NULL, n_top;

    oc_metrics_summarize(m, &s);
    ok = ok && cJSON_AddStringToObject(root, "schema", "ocelot.eval/1");
    ok = ok && cJSON_AddNumberToObject(root, "count", (double)s.count);
    ok = ok && (arr = cJSON_AddArrayToObject(root, "classes"));
    for (int i = 0; ok && i < k; i++)
        ok = push(arr, cJSON_CreateString(m->names[i]));
    ok = ok && cJSON_AddNumberToObject(root, "accuracy", s.accuracy);
    ok = ok && cJSON_AddNumberToObject(root, "top5", s.top5);
    ok = ok && cJSON_AddNumberToObject(root, "ece", s.ece);
    ok = ok && cJSON_AddNumberToObject(root, "mean_confidence", s.mean_confidence);
    ok = ok && cJSON_AddNumberToObject(root, "nll", s.nll);

    ok = ok && (arr = cJSON_AddArrayToObject(root, "per_class"));
    for (int i = 0; ok && i < k; i++) {
        oc_class_metrics c;
        oc_metrics_class(m, i, &c);
        ok = push(arr, avg_object(m->names[i], c.precision, c.recall, c.f1, c.support));
    }
    ok = ok && add_item(root, "macro_avg", avg_object(NULL, s.macro_precision, s.macro_recall,
                                                      s.macro_f1, s.count));
    ok = ok && add_item(root, "weighted_avg", avg_object(NULL, s.weighted_precision,
                                                         s.weighted_recall, s.weighted_f1,
                                                         s.count));

    ok = ok && (arr = cJSON_AddArrayToObject(root, "confusion_matrix"));
    for (int t = 0; ok && t < k; t++) {
        cJSON *row = cJSON_CreateArray();
        for (int p = 0; row && p < k; p++)
            if (!push(row, cJSON_CreateNumber((double)m->confusion[(size_t)t * (size_t)k +
                                                                    (size_t)p]))) {
                cJSON_Delete(row);
                row = NULL;
            }
        ok = push(arr, row);
    }

    ok = ok && (arr = cJSON_AddArrayToObject(root, "calibration"));
    for (int b = 0; ok && b < OC_METRICS_ECE_BINS; b++) {
        oc_calibration_bin cb;
        cJSON *o = cJSON_CreateObject();
        oc_metrics_calibration(m, b, &cb);
        ok = o && cJSON_AddNumberToObject(o, "lower", cb.lower) &&
             cJSON_AddNumberToObject(o, "upper", cb.upper) &&
             cJSON_AddNumberToObject(o, "count", (double)cb.count) &&
             cJSON_AddNumberToObject(o, "accuracy", cb.accuracy) &&
             cJSON_AddNumberToObject(o, "confidence", cb.confidence);
        ok = push(arr, o) && ok;
    }

    n_top = oc_metrics_top_confusions(m, top, JSON_TOP_CONFUSIONS);
    ok = ok && (arr = cJSON_AddArrayToObject(root, "top_confusions"));
    for (int i = 0; ok && i < n_top; i++) {
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddStringToObject(o, "true", m->names[top[i].true_label]) &&
             cJSON_AddStringToObject(o, "predicted", m->names[top[i].pred_label]) &&
             cJSON_AddNumberToObject(o, "count", (double)top[i].count);
        ok = push(arr, o) && ok;
    }

    ok = ok && (arr = cJSON_AddArrayToObject(root, "mistakes"));
    for (int i = 0; ok && i < m->n_mistakes; i++) {
        const oc_mistake *e = &m->mistakes[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddNumberToObject(o, "index", (double)e->index) &&
             cJSON_AddStringToObject(o, "true", m->names[e->true_label]) &&
             cJSON_AddStringToObject(o, "predicted", m->names[e->pred_label]) &&
             cJSON_AddNumberToObject(o, "probability", (double)e->probability);
        ok = push(arr, o) && ok;
    }

    if (ok)
        text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* ---------------------------------------------------------------- terminal text */

/* Longest class name shown in full in the report's first column. */
#define TEXT_NAME_MAX 24
/* Width of a confusion-matrix column header (names are cut to it). */
#define TEXT_CELL_NAME_MAX 6

/* Appends `text` cut to `cols` code points, padded with spaces to `cols` on the left (right
 * alignment) or on the right. */
static void put_cell(oc_sb *s, const char *text, size_t cols, int right)
{
    size_t bytes = oc_utf8_prefix(text, cols);
    size_t w = oc_utf8_width(text);
    size_t pad = cols - (w < cols ? w : cols);
    if (right)
        oc_sb_pad(s, ' ', pad);
    oc_sb_putn(s, text, bytes);
    if (!right)
        oc_sb_pad(s, ' ', pad);
}

static void report_row(oc_sb *s, size_t name_w, const char *name, double p, double r, double f1,
                       int64_t support)
{
    put_cell(s, name, name_w, 1);
    oc_sb_printf(s, " %9.4f %9.4f %9.4f %9lld\n", p, r, f1, (long long)support);
}

char *oc_metrics_to_text(const oc_metrics *m)
{
    const int k = m->classes;
    oc_metrics_summary sum;
    oc_sb s;
    size_t name_w = strlen("weighted avg"), cell_w = 3, longest = 0;
    int64_t max_count = 0;
    char num[32];

    oc_sb_init(&s);
    oc_metrics_summarize(m, &sum);
    for (int i = 0; i < k; i++) {
        size_t w = oc_utf8_width(m->names[i]);
        longest = w > longest ? w : longest;
    }
    if (longest > name_w)
        name_w = longest < TEXT_NAME_MAX ? longest : TEXT_NAME_MAX;

    oc_sb_pad(&s, ' ', name_w);
    oc_sb_printf(&s, " %9s %9s %9s %9s\n\n", "precision", "recall", "f1-score", "support");
    for (int i = 0; i < k; i++) {
        oc_class_metrics c;
        oc_metrics_class(m, i, &c);
        report_row(&s, name_w, m->names[i], c.precision, c.recall, c.f1, c.support);
    }
    oc_sb_puts(&s, "\n");
    put_cell(&s, "accuracy", name_w, 1);
    oc_sb_printf(&s, " %9s %9s %9.4f %9lld\n", "", "", sum.accuracy, (long long)sum.count);
    put_cell(&s, "top-5", name_w, 1);
    oc_sb_printf(&s, " %9s %9s %9.4f %9lld\n", "", "", sum.top5, (long long)sum.count);
    report_row(&s, name_w, "macro avg", sum.macro_precision, sum.macro_recall, sum.macro_f1,
               sum.count);
    report_row(&s, name_w, "weighted avg", sum.weighted_precision, sum.weighted_recall,
               sum.weighted_f1, sum.count);
    oc_sb_printf(&s, "\nECE (15 bins) %.4f   mean confidence %.4f   NLL %.4f\n", sum.ece,
                 sum.mean_confidence, sum.nll);

    /* confusion matrix: every column as wide as the largest count or the cut names */
    for (size_t i = 0; i < (size_t)k * (size_t)k; i++)
        max_count = m->confusion[i] > max_count ? m->confusion[i] : max_count;
    cell_w = (size_t)snprintf(num, sizeof num, "%lld", (long long)max_count);
    if (cell_w < 3)
        cell_w = 3;
    {
        size_t name_cols = longest < TEXT_CELL_NAME_MAX ? longest : TEXT_CELL_NAME_MAX;
        cell_w = name_cols > cell_w ? name_cols : cell_w;
    }
    oc_sb_puts(&s, "\nconfusion matrix (rows: true class, columns: predicted class)\n");
    oc_sb_pad(&s, ' ', name_w);
    for (int p = 0; p < k; p++) {
        oc_sb_puts(&s, " ");
        put_cell(&s, m->names[p], cell_w, 1);
    }
    oc_sb_puts(&s, "\n");
    for (int t = 0; t < k; t++) {
        put_cell(&s, m->names[t], name_w, 1);
        for (int p = 0; p < k; p++) {
            snprintf(num, sizeof num, "%lld",
                     (long long)m->confusion[(size_t)t * (size_t)k + (size_t)p]);
            oc_sb_puts(&s, " ");
            put_cell(&s, num, cell_w, 1);
        }
        oc_sb_puts(&s, "\n");
    }
    return oc_sb_take(&s, NULL);
}
