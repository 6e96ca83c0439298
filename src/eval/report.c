/* The self-contained HTML evaluation report: inline CSS, inline SVG charts, thumbnails as PNG
 * data URIs; no scripts and nothing fetched (a Content-Security-Policy meta tag forbids it). */
#include "eval/eval.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Longest class name drawn in an SVG axis label, in code points (the full name is in the
 * cell's tooltip and in the tables). */
#define SVG_NAME_MAX 18
/* Heat-map cells carry their count up to this many classes; above it only the colour and the
 * tooltip do, as the digits would not fit. */
#define HEATMAP_COUNTS_MAX 30
/* Thumbnails are scaled by an integer factor towards this size in CSS pixels. */
#define THUMB_PX 112
#define MAX_HISTORY_ROWS 100000
#define REPORT_TOP_CONFUSIONS 10

static const char *const palette_train = "#1f77b4", *const palette_val = "#e8710a";

/* ---------------------------------------------------------------- training history */

enum { H_EPOCH, H_TRAIN_LOSS, H_TRAIN_ACC, H_VAL_LOSS, H_VAL_ACC, H_LR, H_SECONDS, H_NCOLS };
static const char *const history_cols[H_NCOLS] = {"epoch",   "train_loss", "train_acc", "val_loss",
                                                  "val_acc", "lr",         "seconds"};

typedef struct {
    int n;
    double *v[H_NCOLS]; /* [n] each; NaN where a value is missing */
} history;

static void history_release(history *h)
{
    for (int c = 0; c < H_NCOLS; c++)
        free(h->v[c]);
    memset(h, 0, sizeof *h);
}

static oc_status history_alloc(history *h, int n)
{
    h->n = n;
    for (int c = 0; c < H_NCOLS; c++) {
        h->v[c] = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
        if (!h->v[c])
            return oc_fail(OC_ERR_NOMEM, "history: out of memory");
        for (int i = 0; i < n; i++)
            h->v[c][i] = NAN;
    }
    return OC_OK;
}

/* Splits one CSV line in place into at most `max` fields (double quotes may wrap a field that
 * holds commas; "" inside quotes is a quote). Returns the number of fields. */
static int csv_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            while (*p) {
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            while (*p && *p != ',')
                p++;
        } else {
            while (*p && *p != ',')
                p++;
            out = p;
        }
        char sep = *p;
        *out = 0;
        if (n < max)
            fields[n++] = start;
        if (!sep)
            return n;
        p++;
    }
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = 0;
    return s;
}

static oc_status history_from_csv(const char *text, history *h)
{
    enum { MAX_FIELDS = 64 };
    char *copy = strdup(text), *line, *save = NULL, *fields[MAX_FIELDS];
    int col_of[MAX_FIELDS], nf, rows = 0, lineno = 1, known = 0;
    oc_status st = OC_OK;

    if (!copy)
        return oc_fail(OC_ERR_NOMEM, "history: out of memory");
    for (const char *p = text; *p; p++)
        rows += *p == '\n';
    if (rows + 1 > MAX_HISTORY_ROWS) {
        st = oc_fail(OC_ERR_FORMAT, "history: more than %d rows", MAX_HISTORY_ROWS);
        goto cleanup;
    }
    st = history_alloc(h, rows + 1);
    if (st != OC_OK)
        goto cleanup;
    h->n = 0;

    line = strtok_r(copy, "\n", &save);
    while (line && *trim(line) == 0) {
        line = strtok_r(NULL, "\n", &save);
        lineno++;
    }
    if (!line) {
        st = oc_fail(OC_ERR_FORMAT, "history: empty");
        goto cleanup;
    }
    nf = csv_split(line, fields, MAX_FIELDS);
    for (int f = 0; f < nf; f++) {
        char *name = trim(fields[f]);
        col_of[f] = -1;
        for (int c = 0; c < H_NCOLS; c++)
            if (strcmp(name, history_cols[c]) == 0) {
                col_of[f] = c;
                known++;
            }
    }
    if (!known) {
        st = oc_fail(OC_ERR_FORMAT, "history: the header names none of epoch, train_loss, "
                                    "train_acc, val_loss, val_acc, lr, seconds");
        goto cleanup;
    }
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        int n;
        lineno++;
        if (*trim(line) == 0)
            continue;
        n = csv_split(line, fields, MAX_FIELDS);
        for (int f = 0; f < n && f < nf; f++) {
            char *v = trim(fields[f]), *end;
            double x;
            if (col_of[f] < 0 || *v == 0)
                continue;
            errno = 0;
            x = strtod(v, &end);
            if (*end || end == v) {
                st = oc_fail(OC_ERR_FORMAT, "history line %d: '%s' is not a number (column %s)",
                             lineno, v, history_cols[col_of[f]]);
                goto cleanup;
            }
            h->v[col_of[f]][h->n] = x;
        }
        h->n++;
    }

cleanup:
    free(copy);
    return st;
}

static oc_status history_from_json(const char *text, history *h)
{
    cJSON *root = cJSON_Parse(text);
    oc_status st = OC_OK;
    int n;
    if (!root || !cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return oc_fail(OC_ERR_FORMAT, "history: not a JSON array of objects");
    }
    n = cJSON_GetArraySize(root);
    if (n > MAX_HISTORY_ROWS) {
        st = oc_fail(OC_ERR_FORMAT, "history: more than %d rows", MAX_HISTORY_ROWS);
        goto cleanup;
    }
    st = history_alloc(h, n);
    if (st != OC_OK)
        goto cleanup;
    for (int i = 0; i < n; i++) {
        const cJSON *row = cJSON_GetArrayItem(root, i);
        if (!cJSON_IsObject(row)) {
            st = oc_fail(OC_ERR_FORMAT, "history: entry %d is not an object", i);
            goto cleanup;
        }
        for (int c = 0; c < H_NCOLS; c++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, history_cols[c]);
            if (cJSON_IsNumber(v))
                h->v[c][i] = v->valuedouble;
        }
    }
cleanup:
    cJSON_Delete(root);
    return st;
}

static oc_status history_parse(const char *text, history *h)
{
    oc_status st;
    const char *p = text;
    memset(h, 0, sizeof *h);
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    st = *p == '[' ? history_from_json(p, h) : history_from_csv(p, h);
    if (st != OC_OK) {
        history_release(h);
        return st;
    }
    for (int i = 0; i < h->n; i++)
        if (isnan(h->v[H_EPOCH][i]))
            h->v[H_EPOCH][i] = i + 1;
    return OC_OK;
}

/* ---------------------------------------------------------------- SVG helpers */

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks. */
static double nice_step(double range, int target)
{
    double raw = range / target, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * mag;
}

/* Prints a tick value without trailing zeros. */
static void put_tick(oc_sb *s, double v, double step)
{
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    oc_sb_printf(s, "%.*f", decimals > 6 ? 6 : decimals, fabs(v) < step * 1e-9 ? 0.0 : v);
}

/* Appends a name for an SVG label: cut to SVG_NAME_MAX code points with an ellipsis. */
static void put_svg_name(oc_sb *s, const char *name)
{
    size_t cut = oc_utf8_prefix(name, SVG_NAME_MAX);
    if (name[cut] == 0) {
        oc_sb_html(s, name);
        return;
    }
    char *tmp = strndup(name, oc_utf8_prefix(name, SVG_NAME_MAX - 1));
    if (!tmp) {
        s->failed = true;
        return;
    }
    oc_sb_html(s, tmp);
    oc_sb_puts(s, "\xe2\x80\xa6");
    free(tmp);
}

typedef struct {
    const char *name;
    const double *y;
    const char *color;
    int dashed;
} series;

/* A line chart of up to 4 series over x[n]; NaN values leave gaps. */
static void line_chart(oc_sb *s, const char *title, const char *ylabel, const double *x, int n,
                       const series *sr, int ns, const char *cls)
{
    const double W = 480, H = 300, L = 56, R = 14, T = 40, B = 44;
    const double pw = W - L - R, ph = H - T - B;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY, step;

    for (int i = 0; i < n; i++) {
        int any = 0;
        for (int k = 0; k < ns; k++)
            if (isfinite(sr[k].y[i])) {
                ymin = fmin(ymin, sr[k].y[i]);
                ymax = fmax(ymax, sr[k].y[i]);
                any = 1;
            }
        if (any && isfinite(x[i])) {
            xmin = fmin(xmin, x[i]);
            xmax = fmax(xmax, x[i]);
        }
    }
    if (!isfinite(ymin) || !isfinite(xmin))
        return;
    if (ymax - ymin < 1e-12) {
        ymin -= 0.5 * fmax(fabs(ymin), 1e-3);
        ymax += 0.5 * fmax(fabs(ymax), 1e-3);
    }
    if (xmax - xmin < 1e-12) {
        xmin -= 1;
        xmax += 1;
    }
    step = nice_step(ymax - ymin, 5);
    ymin = floor(ymin / step) * step;
    ymax = ceil(ymax / step) * step;
#define PX(v) (L + ((v) - xmin) / (xmax - xmin) * pw)
#define PY(v) (T + ph - ((v) - ymin) / (ymax - ymin) * ph)

    oc_sb_printf(s, "<figure class=\"chart %s\"><svg class=\"chart\" viewBox=\"0 0 %.0f %.0f\" "
                    "role=\"img\" aria-label=\"",
                 cls, W, H);
    oc_sb_html(s, title);
    oc_sb_puts(s, "\" xmlns=\"http://www.w3.org/2000/svg\">");
    oc_sb_printf(s, "<text x=\"%.0f\" y=\"18\" class=\"ct\">", L);
    oc_sb_html(s, title);
    oc_sb_puts(s, "</text>");
    /* y grid and ticks */
    for (double v = ymin; v <= ymax + step * 0.5; v += step) {
        oc_sb_printf(s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>",
                     L, L + pw, PY(v), PY(v));
        oc_sb_printf(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"end\">", L - 6,
                     PY(v) + 4);
        put_tick(s, v, step);
        oc_sb_puts(s, "</text>");
    }
    /* x ticks */
    {
        double xs = nice_step(xmax - xmin, 6);
        if (xs < 1 && xmax - xmin >= 1)
            xs = 1;
        for (double v = ceil(xmin / xs) * xs; v <= xmax + xs * 1e-9; v += xs) {
            oc_sb_printf(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"middle\">",
                         PX(v), T + ph + 16);
            put_tick(s, v, xs);
            oc_sb_puts(s, "</text>");
        }
    }
    oc_sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>",
                 L, T, pw, ph);
    oc_sb_printf(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"al\" text-anchor=\"middle\">epoch</text>",
                 L + pw / 2, H - 8);
    oc_sb_printf(s, "<text transform=\"translate(14 %.1f) rotate(-90)\" class=\"al\" "
                    "text-anchor=\"middle\">",
                 T + ph / 2);
    oc_sb_html(s, ylabel);
    oc_sb_puts(s, "</text>");

    for (int k = 0; k < ns; k++) {
        int open = 0, points = 0;
        for (int i = 0; i < n; i++)
            points += isfinite(sr[k].y[i]) && isfinite(x[i]);
        if (!points)
            continue;
        for (int i = 0; i < n; i++) {
            if (!isfinite(sr[k].y[i]) || !isfinite(x[i])) {
                if (open)
                    oc_sb_puts(s, "\"/>");
                open = 0;
                continue;
            }
            if (!open)
                oc_sb_printf(s, "<polyline class=\"ln%s\" stroke=\"%s\" points=\"",
                             sr[k].dashed ? " dash" : "", sr[k].color);
            oc_sb_printf(s, "%s%.1f,%.1f", open ? " " : "", PX(x[i]), PY(sr[k].y[i]));
            open = 1;
        }
        if (open)
            oc_sb_puts(s, "\"/>");
        if (points <= 40)
            for (int i = 0; i < n; i++)
                if (isfinite(sr[k].y[i]) && isfinite(x[i]))
                    oc_sb_printf(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\">"
                                    "<title>epoch %g: %.4g</title></circle>",
                                 PX(x[i]), PY(sr[k].y[i]), sr[k].color, x[i], sr[k].y[i]);
        /* legend entry */
        double lx = L + 8 + 120 * k;
        oc_sb_printf(s, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"30\" y2=\"30\" stroke=\"%s\" "
                        "class=\"ln%s\"/><text x=\"%.0f\" y=\"34\" class=\"lg\">",
                     lx, lx + 18, sr[k].color, sr[k].dashed ? " dash" : "", lx + 23);
        oc_sb_html(s, sr[k].name);
        oc_sb_puts(s, "</text>");
    }
    oc_sb_puts(s, "</svg></figure>\n");
#undef PX
#undef PY
}

static int has_values(const double *v, int n)
{
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]))
            return 1;
    return 0;
}

static void curves_section(oc_sb *s, const history *h)
{
    oc_sb_puts(s, "<section id=\"curves\"><h2>Training curves</h2>\n");
    if (h->n == 0) {
        oc_sb_puts(s, "<p class=\"note\">No training history was given.</p></section>\n");
        return;
    }
    oc_sb_puts(s, "<div class=\"charts\">\n");
    {
        series loss[2] = {{"train", h->v[H_TRAIN_LOSS], palette_train, 0},
                          {"validation", h->v[H_VAL_LOSS], palette_val, 1}};
        series acc[2] = {{"train", h->v[H_TRAIN_ACC], palette_train, 0},
                         {"validation", h->v[H_VAL_ACC], palette_val, 1}};
        series lr[1] = {{"learning rate", h->v[H_LR], "#6a3d9a", 0}};
        if (has_values(h->v[H_TRAIN_LOSS], h->n) || has_values(h->v[H_VAL_LOSS], h->n))
            line_chart(s, "Loss", "loss", h->v[H_EPOCH], h->n, loss, 2, "loss");
        if (has_values(h->v[H_TRAIN_ACC], h->n) || has_values(h->v[H_VAL_ACC], h->n))
            line_chart(s, "Accuracy", "accuracy", h->v[H_EPOCH], h->n, acc, 2, "acc");
        if (has_values(h->v[H_LR], h->n))
            line_chart(s, "Learning rate", "lr", h->v[H_EPOCH], h->n, lr, 1, "lr");
    }
    oc_sb_puts(s, "</div>\n");
    if (has_values(h->v[H_SECONDS], h->n)) {
        double total = 0;
        for (int i = 0; i < h->n; i++)
            total += isfinite(h->v[H_SECONDS][i]) ? h->v[H_SECONDS][i] : 0.0;
        oc_sb_printf(s, "<p class=\"note\">%d epochs, %.1f s of training in total.</p>\n", h->n,
                     total);
    }
    oc_sb_puts(s, "</section>\n");
}

/* ---------------------------------------------------------------- confusion matrix */

/* Rough width of a label in SVG user units at 12px (average glyph ~0.6 em). */
static double label_width(const char *name)
{
    size_t w = oc_utf8_width(name);
    return 7.2 * (double)(w < SVG_NAME_MAX ? w : SVG_NAME_MAX);
}

static void heatmap_section(oc_sb *s, const oc_metrics *m)
{
    const int k = oc_metrics_classes(m);
    const int64_t *cm = oc_metrics_confusion(m);
    const double cs = k <= 10 ? 44 : k <= 20 ? 30 : k <= 40 ? 18 : fmax(5, 720.0 / k);
    const int counts = k <= HEATMAP_COUNTS_MAX;
    double lw = 0, L, T = 30, B, W, H;

    for (int i = 0; i < k; i++)
        lw = fmax(lw, label_width(oc_metrics_class_name(m, i)));
    if (cs < 10)
        lw = 0; /* too dense for names: the tooltips carry them */
    L = 30 + lw + 8;
    B = lw * 0.72 + 40;  /* column labels run at -45 degrees */
    W = L + cs * k + 12 + lw * 0.72;
    H = T + cs * k + B;

    oc_sb_puts(s, "<section id=\"confusion\"><h2>Confusion matrix</h2>\n"
                  "<p class=\"note\">Rows: true class; columns: predicted class. Colour: share "
                  "of the true class's samples; numbers: counts.</p>\n<div class=\"scroll\">");
    oc_sb_printf(s, "<svg class=\"heatmap\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
                    "xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" "
                    "aria-label=\"confusion matrix\">",
                 W, H, W);
    oc_sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "class=\"hbg\"/>",
                 L, T, cs * k, cs * k);
    for (int t = 0; t < k; t++) {
        int64_t row = 0;
        for (int p = 0; p < k; p++)
            row += cm[(size_t)t * (size_t)k + (size_t)p];
        for (int p = 0; p < k; p++) {
            int64_t c = cm[(size_t)t * (size_t)k + (size_t)p];
            double f = row ? (double)c / (double)row : 0.0;
            /* white -> deep blue (#08306b); the diagonal is outlined */
            int r = (int)lround(255 - f * (255 - 8)), g = (int)lround(255 - f * (255 - 48)),
                b = (int)lround(255 - f * (255 - 107));
            double x = L + cs * p, y = T + cs * t;
            /* with many classes most cells are empty: leave them to the background */
            if (c == 0 && t != p && !counts)
                continue;
            oc_sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                            "fill=\"#%02x%02x%02x\"%s><title>",
                         x, y, cs, cs, r, g, b, t == p ? " class=\"diag\"" : "");
            oc_sb_html(s, oc_metrics_class_name(m, t));
            oc_sb_puts(s, " \xe2\x86\x92 ");
            oc_sb_html(s, oc_metrics_class_name(m, p));
            oc_sb_printf(s, ": %lld (%.1f%% of the true class)</title></rect>", (long long)c,
                         100.0 * f);
            if (counts && c > 0)
                oc_sb_printf(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"cnt%s\" "
                                "text-anchor=\"middle\">%lld</text>",
                             x + cs / 2, y + cs / 2 + 4, f > 0.5 ? " inv" : "", (long long)c);
        }
    }
    if (lw > 0)
        for (int i = 0; i < k; i++) {
            oc_sb_printf(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"lb\" text-anchor=\"end\">",
                         L - 6, T + cs * i + cs / 2 + 4);
            put_svg_name(s, oc_metrics_class_name(m, i));
            oc_sb_printf(s, "</text><text transform=\"translate(%.1f %.1f) rotate(-45)\" "
                            "class=\"lb\" text-anchor=\"end\">",
                         L + cs * i + cs / 2 + 4, T + cs * k + 10);
            put_svg_name(s, oc_metrics_class_name(m, i));
            oc_sb_puts(s, "</text>");
        }
    oc_sb_printf(s, "<text x=\"%.1f\" y=\"18\" class=\"al\" text-anchor=\"middle\">predicted"
                    "</text>",
                 L + cs * k / 2);
    oc_sb_printf(s, "<text transform=\"translate(14 %.1f) rotate(-90)\" class=\"al\" "
                    "text-anchor=\"middle\">true</text>",
                 T + cs * k / 2);
    oc_sb_puts(s, "</svg></div>\n");

    {
        oc_confusion top[REPORT_TOP_CONFUSIONS];
        int n = oc_metrics_top_confusions(m, top, REPORT_TOP_CONFUSIONS);
        if (n > 0) {
            oc_sb_puts(s, "<h3>Most frequent confusions</h3><div class=\"scroll\"><table>"
                          "<thead><tr><th>true</th><th>predicted as</th><th class=\"num\">count"
                          "</th><th class=\"num\">share of true class</th></tr></thead><tbody>");
            for (int i = 0; i < n; i++) {
                oc_class_metrics c;
                oc_metrics_class(m, top[i].true_label, &c);
                oc_sb_puts(s, "<tr><td>");
                oc_sb_html(s, oc_metrics_class_name(m, top[i].true_label));
                oc_sb_puts(s, "</td><td>");
                oc_sb_html(s, oc_metrics_class_name(m, top[i].pred_label));
                oc_sb_printf(s, "</td><td class=\"num\">%lld</td><td class=\"num\">%.1f%%</td>"
                                "</tr>",
                             (long long)top[i].count,
                             c.support ? 100.0 * (double)top[i].count / (double)c.support : 0.0);
            }
            oc_sb_puts(s, "</tbody></table></div>\n");
        }
    }
    oc_sb_puts(s, "</section>\n");
}

/* ---------------------------------------------------------------- per-class bars */

static void per_class_section(oc_sb *s, const oc_metrics *m)
{
    static const char *const names[3] = {"precision", "recall", "F1"};
    static const char *const colors[3] = {"#4e79a7", "#f28e2b", "#59a14f"};
    const int k = oc_metrics_classes(m);
    const double bh = 8, gap = 12, rowh = 3 * bh + gap, T = 34, W = 520;
    double lw = 0, L, pw, H;

    for (int i = 0; i < k; i++)
        lw = fmax(lw, label_width(oc_metrics_class_name(m, i)));
    L = lw + 14;
    pw = W - L - 48;
    H = T + rowh * k + 24;

    oc_sb_puts(s, "<section id=\"per-class\"><h2>Per-class precision, recall and F1</h2>\n");
    oc_sb_printf(s, "<svg class=\"bars\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
                    "xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" "
                    "aria-label=\"per-class precision, recall and F1\">",
                 W, H, W * 1.25);
    for (int j = 0; j < 3; j++)
        oc_sb_printf(s, "<rect x=\"%.0f\" y=\"10\" width=\"12\" height=\"10\" fill=\"%s\"/>"
                        "<text x=\"%.0f\" y=\"19\" class=\"lg\">%s</text>",
                     L + 100.0 * j, colors[j], L + 100.0 * j + 16, names[j]);
    for (double v = 0; v <= 1.0001; v += 0.25)
        oc_sb_printf(s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.1f\" class=\"grid\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"middle\">%g"
                        "</text>",
                     L + v * pw, L + v * pw, T - 4, T + rowh * k, L + v * pw, T + rowh * k + 14,
                     v);
    for (int i = 0; i < k; i++) {
        oc_class_metrics c;
        double y = T + rowh * i, vals[3];
        oc_metrics_class(m, i, &c);
        vals[0] = c.precision;
        vals[1] = c.recall;
        vals[2] = c.f1;
        oc_sb_printf(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"lb\" text-anchor=\"end\">", L - 6,
                     y + 1.5 * bh + 4);
        put_svg_name(s, oc_metrics_class_name(m, i));
        oc_sb_puts(s, "</text>");
        for (int j = 0; j < 3; j++) {
            oc_sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                            "fill=\"%s\"><title>",
                         L, y + bh * j, fmax(vals[j] * pw, 0.5), bh - 1, colors[j]);
            oc_sb_html(s, oc_metrics_class_name(m, i));
            oc_sb_printf(s, " %s %.4f</title></rect><text x=\"%.1f\" y=\"%.1f\" class=\"v\">"
                            "%.2f</text>",
                         names[j], vals[j], L + vals[j] * pw + 3, y + bh * j + bh - 1.5, vals[j]);
        }
    }
    oc_sb_puts(s, "</svg>\n");

    oc_sb_puts(s, "<div class=\"scroll\"><table><thead><tr><th>class</th>"
                  "<th class=\"num\">precision</th><th class=\"num\">recall</th>"
                  "<th class=\"num\">F1</th><th class=\"num\">support</th></tr></thead><tbody>");
    for (int i = 0; i < k; i++) {
        oc_class_metrics c;
        oc_metrics_class(m, i, &c);
        oc_sb_puts(s, "<tr><td>");
        oc_sb_html(s, oc_metrics_class_name(m, i));
        oc_sb_printf(s, "</td><td class=\"num\">%.4f</td><td class=\"num\">%.4f</td>"
                        "<td class=\"num\">%.4f</td><td class=\"num\">%lld</td></tr>",
                     c.precision, c.recall, c.f1, (long long)c.support);
    }
    {
        oc_metrics_summary sm;
        oc_metrics_summarize(m, &sm);
        oc_sb_printf(s, "</tbody><tfoot><tr><td>macro avg</td><td class=\"num\">%.4f</td>"
                        "<td class=\"num\">%.4f</td><td class=\"num\">%.4f</td>"
                        "<td class=\"num\">%lld</td></tr><tr><td>weighted avg</td>"
                        "<td class=\"num\">%.4f</td><td class=\"num\">%.4f</td>"
                        "<td class=\"num\">%.4f</td><td class=\"num\">%lld</td></tr></tfoot>",
                     sm.macro_precision, sm.macro_recall, sm.macro_f1, (long long)sm.count,
                     sm.weighted_precision, sm.weighted_recall, sm.weighted_f1,
                     (long long)sm.count);
    }
    oc_sb_puts(s, "</table></div></section>\n");
}

/* ---------------------------------------------------------------- calibration */

static void calibration_section(oc_sb *s, const oc_metrics *m)
{
    const double W = 360, H = 300, L = 48, R = 12, T = 16, B = 44;
    const double pw = W - L - R, ph = H - T - B;
    oc_metrics_summary sm;
    oc_metrics_summarize(m, &sm);

    oc_sb_printf(s, "<section id=\"calibration\"><h2>Calibration</h2>\n<p class=\"note\">"
                    "Expected calibration error (15 bins): <b>%.4f</b>; mean confidence %.4f "
                    "against accuracy %.4f; mean negative log-likelihood %.4f.</p>\n",
                 sm.ece, sm.mean_confidence, sm.accuracy, sm.nll);
    oc_sb_printf(s, "<svg class=\"calib\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
                    "xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" "
                    "aria-label=\"reliability diagram\">",
                 W, H, W * 1.25);
    for (double v = 0; v <= 1.0001; v += 0.25)
        oc_sb_printf(s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"end\">%g</text>"
                        "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"middle\">%g"
                        "</text>",
                     L, L + pw, T + ph - v * ph, T + ph - v * ph, L - 5, T + ph - v * ph + 4, v,
                     L + v * pw, T + ph + 15, v);
    for (int b = 0; b < OC_METRICS_ECE_BINS; b++) {
        oc_calibration_bin cb;
        oc_metrics_calibration(m, b, &cb);
        if (!cb.count)
            continue;
        oc_sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                        "class=\"cbar\"><title>confidence (%.3f, %.3f]: %lld samples, accuracy "
                        "%.3f, mean confidence %.3f</title></rect>",
                     L + cb.lower * pw + 1, T + ph - cb.accuracy * ph,
                     (cb.upper - cb.lower) * pw - 2, cb.accuracy * ph, cb.lower, cb.upper,
                     (long long)cb.count, cb.accuracy, cb.confidence);
    }
    oc_sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ideal\"/>",
                 L, T + ph, L + pw, T);
    oc_sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>",
                 L, T, pw, ph);
    oc_sb_printf(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"al\" text-anchor=\"middle\">confidence"
                    "</text><text transform=\"translate(13 %.1f) rotate(-90)\" class=\"al\" "
                    "text-anchor=\"middle\">accuracy</text></svg></section>\n",
                 L + pw / 2, H - 8, T + ph / 2);
}

/* ---------------------------------------------------------------- mistakes */

static oc_status mistakes_section(oc_sb *s, const oc_metrics *m, const oc_report_info *info)
{
    oc_sb_puts(s, "<section id=\"mistakes\"><h2>Most confident mistakes</h2>\n");
    if (info->n_images == 0) {
        int n;
        const oc_mistake *e = oc_metrics_mistakes(m, &n);
        if (n == 0) {
            oc_sb_puts(s, "<p class=\"note\">None to show.</p></section>\n");
            return OC_OK;
        }
        /* no pixels: list them */
        oc_sb_puts(s, "<div class=\"scroll\"><table><thead><tr><th class=\"num\">sample</th>"
                      "<th>true</th><th>predicted</th><th class=\"num\">probability</th></tr>"
                      "</thead><tbody>");
        for (int i = 0; i < n; i++) {
            oc_sb_printf(s, "<tr><td class=\"num\">%lld</td><td>", (long long)e[i].index);
            oc_sb_html(s, oc_metrics_class_name(m, e[i].true_label));
            oc_sb_puts(s, "</td><td>");
            oc_sb_html(s, oc_metrics_class_name(m, e[i].pred_label));
            oc_sb_printf(s, "</td><td class=\"num\">%.1f%%</td></tr>",
                         100.0 * (double)e[i].probability);
        }
        oc_sb_puts(s, "</tbody></table></div></section>\n");
        return OC_OK;
    }
    oc_sb_puts(s, "<div class=\"thumbs\">\n");
    for (int i = 0; i < info->n_images; i++) {
        const oc_report_image *im = &info->images[i];
        uint8_t *png = NULL;
        size_t png_len = 0;
        int side = im->height > im->width ? im->height : im->width;
        int scale = THUMB_PX / side > 1 ? THUMB_PX / side : 1;
        double dw = (double)im->width * scale, dh = (double)im->height * scale;
        oc_status st;
        if (dw > 2 * THUMB_PX) { /* large images shrink to fit */
            dh = dh * 2 * THUMB_PX / dw;
            dw = 2 * THUMB_PX;
        }
        st = oc_png_encode(im->pixels, im->height, im->width, im->channels, &png, &png_len);
        if (st != OC_OK)
            return oc_fail_context(st, "report image %d", i);
        oc_sb_printf(s, "<figure class=\"thumb\"><img alt=\"sample\" width=\"%.0f\" "
                        "height=\"%.0f\" src=\"data:image/png;base64,",
                     dw, dh);
        oc_sb_base64(s, png, png_len);
        free(png);
        oc_sb_puts(s, "\"><figcaption><span class=\"t\">true: ");
        oc_sb_html(s, oc_metrics_class_name(m, im->true_label));
        oc_sb_puts(s, "</span><span class=\"p\">predicted: ");
        oc_sb_html(s, oc_metrics_class_name(m, im->pred_label));
        oc_sb_printf(s, " (%.1f%%)</span>", 100.0 * (double)im->probability);
        if (im->index >= 0)
            oc_sb_printf(s, "<span class=\"i\">sample %lld</span>", (long long)im->index);
        oc_sb_puts(s, "</figcaption></figure>\n");
    }
    oc_sb_puts(s, "</div></section>\n");
    return OC_OK;
}

/* ---------------------------------------------------------------- the page */

static const char *const css =
    ":root{--fg:#1d2330;--mute:#5b6475;--bg:#fff;--card:#f3f5f9;--line:#d9dee8}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--fg);"
    "font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}"
    "main{max-width:1000px;margin:0 auto;padding:12px 14px 40px}"
    "h1{font-size:1.5em;margin:.3em 0 .1em;overflow-wrap:anywhere}"
    "h2{font-size:1.2em;margin:1.6em 0 .4em;padding-bottom:.2em;"
    "border-bottom:1px solid var(--line)}"
    "h3{font-size:1em;margin:1.2em 0 .3em}"
    ".meta,.note{color:var(--mute);margin:.2em 0;overflow-wrap:anywhere}"
    ".cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}"
    ".card{background:var(--card);border-radius:8px;padding:10px 14px;min-width:120px;"
    "flex:1 1 120px}"
    ".card .v{display:block;font-size:1.6em;font-weight:600}"
    ".card .l{color:var(--mute);font-size:.9em}"
    ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:12px}"
    "figure{margin:0}"
    "svg{max-width:100%;height:auto;display:block}"
    "svg text{font-family:inherit;fill:var(--fg)}"
    ".ct{font-size:15px;font-weight:600}.tk{font-size:11px;fill:var(--mute)}"
    ".al{font-size:12px;fill:var(--mute)}.lg{font-size:12px}.lb{font-size:12px}"
    ".v{font-size:9px;fill:var(--mute)}"
    ".grid{stroke:#e6e9f0;stroke-width:1}.frame{fill:none;stroke:#b9c0cc}"
    ".ln{fill:none;stroke-width:2}.ln.dash{stroke-dasharray:6 3}"
    "line.ln{stroke-width:2}"
    ".heatmap rect{stroke:#fff;stroke-width:1}.heatmap rect.hbg{fill:#fff;stroke:#d9dee8}"
    ".heatmap rect.diag{stroke:#333;stroke-width:1.2}"
    ".cnt{font-size:11px}.cnt.inv{fill:#fff}"
    ".cbar{fill:#4e79a7;opacity:.85}.ideal{stroke:#c33;stroke-dasharray:5 4;stroke-width:1.5}"
    ".scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}"
    "table{border-collapse:collapse;margin:8px 0;font-size:.92em}"
    "th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:left;"
    "overflow-wrap:break-word}"
    "th{background:var(--card)}td.num,th.num{text-align:right;white-space:nowrap;"
    "font-variant-numeric:tabular-nums}"
    "tfoot td{font-weight:600}"
    ".thumbs{display:flex;flex-wrap:wrap;gap:12px}"
    ".thumb{background:var(--card);border-radius:6px;padding:8px;width:min(46%,260px);"
    "flex:0 1 auto}"
    ".thumb img{display:block;margin:0 auto 6px;max-width:100%;height:auto;"
    "image-rendering:pixelated;background:#000}"
    "figcaption{font-size:.85em;line-height:1.3;overflow-wrap:anywhere}"
    "figcaption span{display:block}.thumb .p{color:#b3261e}.thumb .i{color:var(--mute)}"
    "footer{margin-top:2em;color:var(--mute);font-size:.85em}"
    "@media (max-width:520px){body{font-size:14px}.card .v{font-size:1.3em}th,td{padding:3px 6px}"
    ".thumb{width:calc(50% - 6px)}}";

static void header_section(oc_sb *s, const oc_metrics *m, const oc_report_info *info,
                           const char *title, const char *date)
{
    oc_metrics_summary sm;
    oc_metrics_summarize(m, &sm);
    oc_sb_puts(s, "<header><h1>");
    oc_sb_html(s, title);
    oc_sb_puts(s, "</h1>\n<p class=\"meta\">");
    if (info->model_name) {
        oc_sb_puts(s, "model <b>");
        oc_sb_html(s, info->model_name);
        oc_sb_puts(s, "</b> \xc2\xb7 ");
    }
    if (info->dataset) {
        oc_sb_puts(s, "data <b>");
        oc_sb_html(s, info->dataset);
        oc_sb_puts(s, "</b> \xc2\xb7 ");
    }
    oc_sb_printf(s, "%lld samples \xc2\xb7 %d classes \xc2\xb7 ", (long long)sm.count,
                 sm.classes);
    oc_sb_html(s, date);
    oc_sb_puts(s, "</p>\n<div class=\"cards\">");
    oc_sb_printf(s, "<div class=\"card\"><span class=\"v\">%.2f%%</span>"
                    "<span class=\"l\">accuracy</span></div>",
                 100.0 * sm.accuracy);
    oc_sb_printf(s, "<div class=\"card\"><span class=\"v\">%.2f%%</span>"
                    "<span class=\"l\">top-5 accuracy</span></div>",
                 100.0 * sm.top5);
    oc_sb_printf(s, "<div class=\"card\"><span class=\"v\">%.4f</span>"
                    "<span class=\"l\">macro F1</span></div>",
                 sm.macro_f1);
    oc_sb_printf(s, "<div class=\"card\"><span class=\"v\">%.4f</span>"
                    "<span class=\"l\">weighted F1</span></div>",
                 sm.weighted_f1);
    oc_sb_printf(s, "<div class=\"card\"><span class=\"v\">%.4f</span>"
                    "<span class=\"l\">calibration error</span></div>",
                 sm.ece);
    oc_sb_puts(s, "</div></header>\n");
}

static oc_status validate_info(const oc_metrics *m, const oc_report_info *info)
{
    const int k = oc_metrics_classes(m);
    if (info->n_images < 0 || (info->n_images > 0 && !info->images))
        return oc_fail(OC_ERR_ARG, "report: %d images but no array", info->n_images);
    for (int i = 0; i < info->n_images; i++) {
        const oc_report_image *im = &info->images[i];
        if (!im->pixels || im->height < 1 || im->width < 1 || im->height > 4096 ||
            im->width > 4096 || (im->channels != 1 && im->channels != 3 && im->channels != 4))
            return oc_fail(OC_ERR_ARG, "report: image %d is %dx%dx%d (need 1..4096 sides, 1/3/4 "
                                       "channels, pixels)",
                           i, im->height, im->width, im->channels);
        if (im->true_label < 0 || im->true_label >= k || im->pred_label < 0 ||
            im->pred_label >= k)
            return oc_fail(OC_ERR_ARG, "report: image %d labels %d/%d outside [0, %d)", i,
                           im->true_label, im->pred_label, k);
        if (!isfinite(im->probability))
            return oc_fail(OC_ERR_ARG, "report: image %d probability is not finite", i);
    }
    return OC_OK;
}

oc_status oc_report_html(const oc_metrics *m, const oc_report_info *info, char **out, size_t *len)
{
    static const oc_report_info none = {0};
    const char *title, *date;
    char now[64];
    history h = {0};
    oc_sb s;
    oc_status st;

    if (!out)
        return oc_fail(OC_ERR_ARG, "report: out is NULL");
    *out = NULL;
    if (len)
        *len = 0;
    if (!m)
        return oc_fail(OC_ERR_ARG, "report: metrics is NULL");
    if (!info)
        info = &none;
    st = validate_info(m, info);
    if (st != OC_OK)
        return st;
    if (info->history) {
        st = history_parse(info->history, &h);
        if (st != OC_OK)
            return st;
    }
    title = info->title ? info->title : "ocelot evaluation report";
    date = info->date;
    if (!date) {
        time_t t = time(NULL);
        struct tm tm;
        if (localtime_r(&t, &tm) && strftime(now, sizeof now, "%Y-%m-%d %H:%M", &tm))
            date = now;
        else
            date = "";
    }

    oc_sb_init(&s);
    oc_sb_puts(&s, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                   "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                   "img-src data:; style-src 'unsafe-inline'\">\n"
                   "<meta name=\"generator\" content=\"ocelot " OC_VERSION_STRING "\">\n<title>");
    oc_sb_html(&s, title);
    if (info->model_name) {
        oc_sb_puts(&s, " \xe2\x80\x94 ");
        oc_sb_html(&s, info->model_name);
    }
    oc_sb_printf(&s, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n", css);
    header_section(&s, m, info, title, date);
    curves_section(&s, &h);
    heatmap_section(&s, m);
    per_class_section(&s, m);
    calibration_section(&s, m);
    st = mistakes_section(&s, m, info);
    if (st != OC_OK)
        goto cleanup;
    oc_sb_puts(&s, "<footer>Generated by ocelot " OC_VERSION_STRING ". Self-contained: no "
                   "scripts, nothing loaded from the network.</footer>\n</main>\n</body>\n"
                   "</html>\n");
    *out = oc_sb_take(&s, len);
    if (!*out)
        st = oc_fail(OC_ERR_NOMEM, "report: out of memory");

cleanup:
    oc_sb_release(&s);
    history_release(&h);
    return st;
}

oc_status oc_report_write(const oc_metrics *m, const oc_report_info *info, const char *path)
{
    char *html = NULL, *tmp = NULL;
    size_t len = 0, off = 0;
    int fd = -1;
    oc_status st;

    if (!path || !*path)
        return oc_fail(OC_ERR_ARG, "report: empty path");
    st = oc_report_html(m, info, &html, &len);
    if (st != OC_OK)
        return st;
    if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
        tmp = NULL;
        st = oc_fail(OC_ERR_NOMEM, "report: out of memory");
        goto cleanup;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        st = oc_fail(OC_ERR_IO, "report: create '%s': %s", tmp, strerror(errno));
        goto free_tmp_name;
    }
    while (off < len) {
        ssize_t w = write(fd, html + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            st = oc_fail(OC_ERR_IO, "report: write '%s': %s", tmp, strerror(errno));
            goto remove_tmp;
        }
        off += (size_t)w;
    }
    /* mkstemp makes the file 0600; a report is meant to be shared */
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        st = oc_fail(OC_ERR_IO, "report: sync '%s': %s", tmp, strerror(errno));
        goto remove_tmp;
    }
    if (close(fd) != 0) {
        fd = -1;
        st = oc_fail(OC_ERR_IO, "report: close '%s': %s", tmp, strerror(errno));
        goto remove_tmp;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        st = oc_fail(OC_ERR_IO, "report: rename to '%s': %s", path, strerror(errno));
        goto remove_tmp;
    }
    goto free_tmp_name;

remove_tmp:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
free_tmp_name:
    free(tmp);
cleanup:
    free(html);
    return st;
}
