/* eval HTML report: sections present, every string escaped, tags balanced, thumbnails that
 * decode back to their pixels, history parsing, atomic writes, argument checks.
 * `test_report --sample FILE` writes a demonstration report (tests/e2e/test_report_browser.sh
 * renders it in Chromium). */
#include "test.h"
#include "eval/eval.h"

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { K = 10, N = 600, NIMG = 8, SIDE = 32 };

static const char *const class_names[K] = {"airplane", "automobile", "bird", "cat", "deer",
                                           "dog", "frog", "<b>&\"x", "ship", "caf\xc3\xa9"};

static const char *const history_csv =
    "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"
    "1,2.10,0.22,1.95,0.29,0.1,12.5\n"
    "2,1.71,0.38,1.62,0.41,0.1,12.1\n"
    "3,1.40,0.50,1.41,0.49,0.1,12.0\n"
    "4,1.18,0.58,1.30,0.54,0.05,12.2\n"
    "5,1.02,0.64,1.21,0.58,0.05,12.3\n"
    "6,0.90,0.68,1.18,0.60,0.025,12.1\n"
    "7,0.81,0.72,1.17,0.61,0.0125,12.0\n"
    "8,0.76,0.74,1.16,0.62,0.00625,12.4\n";

typedef struct {
    oc_metrics *m;
    uint8_t *pixels;             /* NIMG images of SIDE x SIDE x 3 */
    oc_report_image images[NIMG];
    int n_images;
} sample;

/* Predictions with class-dependent skill (class 0 good, class 9 poor), then a synthetic
 * picture per kept mistake: a coloured disc on a gradient, different per true class. */
static int sample_make(sample *sp, int max_mistakes)
{
    int32_t labels[N];
    float *scores = malloc(sizeof(float) * N * K);
    const oc_mistake *e;
    oc_rng rng;
    int n;

    memset(sp, 0, sizeof *sp);
    if (!scores)
        return 0;
    oc_rng_seed(&rng, 3, 0);
    for (int i = 0; i < N; i++) {
        float sum = 0;
        labels[i] = (int32_t)oc_rng_below(&rng, K);
        for (int j = 0; j < K; j++) {
            float z = 1.2f * oc_rng_normal(&rng) +
                      (j == labels[i] ? 3.2f - 0.25f * (float)labels[i] : 0.0f);
            scores[i * K + j] = expf(z);
            sum += scores[i * K + j];
        }
        for (int j = 0; j < K; j++)
            scores[i * K + j] /= sum;
    }
    if (oc_metrics_new(&sp->m, K, class_names, max_mistakes) != OC_OK ||
        oc_metrics_add(sp->m, labels, scores, N, OC_SCORES_PROBS) != OC_OK) {
        T_CHECK(0, "metrics: %s", oc_last_error());
        free(scores);
        return 0;
    }
    free(scores);
    e = oc_metrics_mistakes(sp->m, &n);
    n = n < NIMG ? n : NIMG;
    sp->pixels = malloc((size_t)NIMG * SIDE * SIDE * 3);
    if (!sp->pixels)
        return 0;
    for (int i = 0; i < n; i++) {
        uint8_t *px = sp->pixels + (size_t)i * SIDE * SIDE * 3;
        int t = e[i].true_label;
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++) {
                int dx = x - SIDE / 2, dy = y - SIDE / 2, in = dx * dx + dy * dy < 81 + 9 * t;
                uint8_t *p = px + (y * SIDE + x) * 3;
                p[0] = (uint8_t)(in ? 40 + 20 * t : 8 * x);
                p[1] = (uint8_t)(in ? 230 - 18 * t : 8 * y);
                p[2] = (uint8_t)(in ? 60 + 15 * (t % 5) : 128);
            }
        sp->images[i] = (oc_report_image){px, SIDE, SIDE, 3, e[i].true_label, e[i].pred_label,
                                          e[i].probability, e[i].index};
    }
    sp->n_images = n;
    return 1;
}

static void sample_free(sample *sp)
{
    oc_metrics_free(sp->m);
    free(sp->pixels);
}

static oc_report_info sample_info(const sample *sp)
{
    oc_report_info info = {0};
    info.title = "Evaluation <script>alert(1)</script>";
    info.model_name = "resnet20 & \"friends\"";
    info.dataset = "cifar10:/data/<test>";
    info.date = "2024-06-11 12:00";
    info.history = history_csv;
    info.images = sp->images;
    info.n_images = sp->n_images;
    return info;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

/* Checks that every non-void element is closed in order (the report is written so that an
 * XML-style check applies: SVG children self-close with "/>"). Returns 1 when balanced. */
static int tags_balanced(const char *html, char *why, size_t why_len)
{
    static const char *const void_tags[] = {"meta", "img", "br", "hr", "link", "input", NULL};
    char stack[256][16];
    int depth = 0;
    for (const char *p = strchr(html, '<'); p; p = strchr(p + 1, '<')) {
        char name[16];
        size_t n = 0;
        int closing = p[1] == '/', self = 0, is_void = 0;
        const char *q = p + 1 + closing, *end;
        if (p[1] == '!')
            continue;
        while ((q[n] >= 'a' && q[n] <= 'z') || (q[n] >= '0' && q[n] <= '9'))
            n++;
        if (n == 0 || n >= sizeof name) {
            snprintf(why, why_len, "bad tag at offset %td", p - html);
            return 0;
        }
        memcpy(name, q, n);
        name[n] = 0;
        end = strchr(q, '>');
        if (!end) {
            snprintf(why, why_len, "unterminated <%s", name);
            return 0;
        }
        self = end[-1] == '/';
        for (int i = 0; void_tags[i]; i++)
            is_void |= strcmp(name, void_tags[i]) == 0;
        if (self || is_void)
            continue;
        if (!closing) {
            if (depth == 256) {
                snprintf(why, why_len, "nesting too deep");
                return 0;
            }
            memcpy(stack[depth++], name, n + 1);
            /* style contents are CSS, not markup */
            if (strcmp(name, "style") == 0 || strcmp(name, "title") == 0) {
                const char *close = strstr(end, strcmp(name, "style") == 0 ? "</style>"
                                                                            : "</title>");
                if (!close) {
                    snprintf(why, why_len, "<%s> never closed", name);
                    return 0;
                }
                p = close - 1;
            }
        } else if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
            snprintf(why, why_len, "</%s> closes <%s> at offset %td", name,
                     depth ? stack[depth - 1] : "(nothing)", p - html);
            return 0;
        } else {
            depth--;
        }
    }
    if (depth != 0) {
        snprintf(why, why_len, "%d elements left open, innermost <%s>", depth, stack[depth - 1]);
        return 0;
    }
    return 1;
}

static void report_has_every_section(void)
{
    sample sp;
    oc_report_info info;
    char *html = NULL;
    size_t len = 0;
    if (!sample_make(&sp, 20))
        goto cleanup;
    info = sample_info(&sp);
    T_CHECK(oc_report_html(sp.m, &info, &html, &len) == OC_OK, "%s", oc_last_error());
    if (!html)
        goto cleanup;
    T_CHECK(len == strlen(html), "length %zu vs strlen %zu", len, strlen(html));
    T_CHECK(strncmp(html, "<!DOCTYPE html>", 15) == 0, "no doctype");
    T_CHECK(strstr(html, "name=\"viewport\"") != NULL, "no viewport meta (phones)");
    for (int i = 0; i < 5; i++) {
        static const char *const ids[] = {"curves", "confusion", "per-class", "calibration",
                                          "mistakes"};
        char want[64];
        snprintf(want, sizeof want, "<section id=\"%s\">", ids[i]);
        T_CHECK(strstr(html, want) != NULL, "section %s missing", ids[i]);
    }
    T_CHECK(count(html, "<svg") == 6, "%zu <svg> elements, want 6 (loss, accuracy, lr, heat "
            "map, bars, calibration)", count(html, "<svg"));
    T_CHECK(count(html, "class=\"heatmap\"") == 1, "no heat map");
    T_CHECK(count(html, "<polyline") >= 5, "%zu curves", count(html, "<polyline"));
    T_CHECK(count(html, "data:image/png;base64,") == (size_t)sp.n_images && sp.n_images == NIMG,
            "%zu thumbnails, %d images", count(html, "data:image/png;base64,"), sp.n_images);
    T_CHECK(strstr(html, "image-rendering:pixelated") != NULL, "thumbnails not pixelated");
    /* the header's summary figures */
    {
        oc_metrics_summary s;
        char want[64];
        oc_metrics_summarize(sp.m, &s);
        snprintf(want, sizeof want, "%.2f%%</span><span class=\"l\">accuracy", 100 * s.accuracy);
        T_CHECK(strstr(html, want) != NULL, "accuracy card '%s' missing", want);
        snprintf(want, sizeof want, "%.4f</span><span class=\"l\">macro F1", s.macro_f1);
        T_CHECK(strstr(html, want) != NULL, "macro-F1 card '%s' missing", want);
        snprintf(want, sizeof want, "%.2f%%</span><span class=\"l\">top-5", 100 * s.top5);
        T_CHECK(strstr(html, want) != NULL, "top-5 card '%s' missing", want);
    }
    /* self-contained: no scripts, no external references (the SVG namespace URI is a name,
     * never fetched) */
    T_CHECK(strstr(html, "<script") == NULL, "a <script> element");
    T_CHECK(count(html, "http://") + count(html, "https://") ==
                count(html, "xmlns=\"http://www.w3.org/2000/svg\""),
            "a URL other than the SVG namespace");
    T_CHECK(strstr(html, "src=\"http") == NULL && strstr(html, "href=") == NULL &&
                strstr(html, "url(") == NULL && strstr(html, "@import") == NULL,
            "external reference");
    /* the history's learning-rate points and a loss value appear as tooltips */
    T_CHECK(strstr(html, "<title>epoch 8: 1.16</title>") != NULL, "val_loss of epoch 8 missing");
    T_CHECK(strstr(html, "8 epochs, 97.6 s of training") != NULL, "epoch count / time missing");
    oc_test_note("report %zu bytes, %d thumbnails, %zu SVG elements", len, sp.n_images,
                 count(html, "<svg"));
cleanup:
    free(html);
    sample_free(&sp);
}

static void every_string_is_escaped(void)
{
    sample sp;
    oc_report_info info;
    char *html = NULL;
    if (!sample_make(&sp, 20))
        goto cleanup;
    info = sample_info(&sp);
    if (oc_report_html(sp.m, &info, &html, NULL) != OC_OK) {
        T_CHECK(0, "%s", oc_last_error());
        goto cleanup;
    }
    T_CHECK(strstr(html, "<b>&\"x") == NULL, "raw class name <b>&\"x in the HTML");
    T_CHECK(strstr(html, "&lt;b&gt;&amp;&quot;x") != NULL, "escaped class name missing");
    /* the name is in the heat map (both axes), the bars, the table and tooltips */
    T_CHECK(count(html, "&lt;b&gt;&amp;&quot;x") >= 5, "escaped name appears %zu times",
            count(html, "&lt;b&gt;&amp;&quot;x"));
    T_CHECK(strstr(html, "<script>alert") == NULL, "title not escaped");
    T_CHECK(strstr(html, "Evaluation &lt;script&gt;alert(1)&lt;/script&gt;") != NULL,
            "escaped title missing");
    T_CHECK(strstr(html, "resnet20 &amp; &quot;friends&quot;") != NULL, "model name");
    T_CHECK(strstr(html, "cifar10:/data/&lt;test&gt;") != NULL, "dataset");
    T_CHECK(strstr(html, "caf\xc3\xa9") != NULL, "UTF-8 name mangled");
cleanup:
    free(html);
    sample_free(&sp);
}

static void tags_are_balanced(void)
{
    sample sp;
    oc_report_info info;
    char *html = NULL, why[160] = "";
    if (!sample_make(&sp, 20))
        goto cleanup;
    info = sample_info(&sp);
    if (oc_report_html(sp.m, &info, &html, NULL) != OC_OK) {
        T_CHECK(0, "%s", oc_last_error());
        goto cleanup;
    }
    T_CHECK(count(html, "<svg") == count(html, "</svg>"), "<svg> %zu, </svg> %zu",
            count(html, "<svg"), count(html, "</svg>"));
    T_CHECK(tags_balanced(html, why, sizeof why), "unbalanced: %s", why);
    /* and the checker itself catches a broken document */
    T_CHECK(!tags_balanced("<div><svg><g></svg></div>", why, sizeof why), "checker blind");
cleanup:
    free(html);
    sample_free(&sp);
}

/* Decodes the first data URI's base64 and PNG and compares with the image's pixels. */
static void thumbnails_decode_to_their_pixels(void)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    sample sp;
    oc_report_info info;
    char *html = NULL;
    const char *p, *q;
    uint8_t *bytes = NULL;
    size_t nb = 0;
    png_image img;
    uint8_t *px = NULL;
    if (!sample_make(&sp, 20))
        goto cleanup;
    info = sample_info(&sp);
    if (oc_report_html(sp.m, &info, &html, NULL) != OC_OK) {
        T_CHECK(0, "%s", oc_last_error());
        goto cleanup;
    }
    p = strstr(html, "data:image/png;base64,");
    T_CHECK(p != NULL, "no data URI");
    if (!p)
        goto cleanup;
    p += strlen("data:image/png;base64,");
    q = strchr(p, '"');
    bytes = malloc((size_t)(q - p));
    for (uint32_t acc = 0, bits = 0; p < q && *p != '='; p++) {
        const char *c = strchr(b64, *p);
        T_CHECK(c != NULL, "bad base64 character %c", *p);
        if (!c)
            goto cleanup;
        acc = acc << 6 | (uint32_t)(c - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes[nb++] = (uint8_t)(acc >> bits);
        }
    }
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    T_CHECK(png_image_begin_read_from_memory(&img, bytes, nb), "libpng: %s", img.message);
    T_CHECK(img.width == SIDE && img.height == SIDE, "decoded %ux%u", img.width, img.height);
    img.format = PNG_FORMAT_RGB;
    px = malloc(PNG_IMAGE_SIZE(img));
    T_CHECK(px && png_image_finish_read(&img, NULL, px, 0, NULL), "libpng: %s", img.message);
    T_CHECK(memcmp(px, sp.images[0].pixels, SIDE * SIDE * 3) == 0,
            "decoded pixels differ from the image");
    oc_test_note("first thumbnail: %zu PNG bytes for %d raw", nb, SIDE * SIDE * 3);
cleanup:
    png_image_free(&img);
    free(px);
    free(bytes);
    free(html);
    sample_free(&sp);
}

static void base64_matches_rfc4648(void)
{
    /* RFC 4648 section 10 test vectors */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                       "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        oc_sb s;
        char *got;
        oc_sb_init(&s);
        oc_sb_base64(&s, (const uint8_t *)in[i], strlen(in[i]));
        got = oc_sb_take(&s, NULL);
        T_CHECK(got && strcmp(got, want[i]) == 0, "base64(\"%s\") = \"%s\", want \"%s\"", in[i],
                got ? got : "(null)", want[i]);
        free(got);
    }
}

static void history_csv_and_json(void)
{
    sample sp;
    oc_report_info info = {0};
    char *html = NULL;
    /* shuffled columns, an unknown quoted column, CRLF, a missing value, no epoch column */
    const char *csv = "val_acc,\"note, with comma\",train_loss\r\n"
                      "0.5,\"a,b\",2.0\r\n"
                      ",x,1.5\r\n"
                      "\r\n"
                      "0.7,y,1.25\r\n";
    const char *json = "[{\"epoch\":1,\"train_loss\":3.5,\"val_acc\":0.25},"
                       " {\"epoch\":2,\"train_loss\":2.75}]";
    if (!sample_make(&sp, 0))
        goto cleanup;
    info.date = "today";
    info.history = csv;
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_OK, "csv: %s", oc_last_error());
    if (html) {
        T_CHECK(strstr(html, "<title>epoch 3: 1.25</title>") != NULL, "train_loss epoch 3");
        T_CHECK(strstr(html, "<title>epoch 3: 0.7</title>") != NULL, "val_acc epoch 3");
        T_CHECK(strstr(html, "<title>epoch 2: 1.5</title>") != NULL, "train_loss epoch 2");
        T_CHECK(count(html, "<circle") == 5, "%zu points, want 5 (one value missing)",
                count(html, "<circle"));
        T_CHECK(strstr(html, "None to show") != NULL, "no-mistakes note");
    }
    free(html);
    html = NULL;
    info.history = json;
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_OK, "json: %s", oc_last_error());
    if (html) {
        T_CHECK(strstr(html, "<title>epoch 2: 2.75</title>") != NULL, "json train_loss");
        T_CHECK(count(html, "<circle") == 3, "%zu json points, want 3", count(html, "<circle"));
    }
    free(html);
    html = NULL;
    info.history = "epoch,train_loss\n1,abc\n";
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_ERR_FORMAT && html == NULL,
            "non-number accepted");
    T_CHECK(strstr(oc_last_error(), "line 2") != NULL, "message: %s", oc_last_error());
    info.history = "a,b,c\n1,2,3\n";
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_ERR_FORMAT, "unknown header accepted");
    info.history = "[1, 2]";
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_ERR_FORMAT, "JSON non-objects");
    info.history = "[{\"epoch\":";
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_ERR_FORMAT, "truncated JSON");
    info.history = NULL;
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_OK, "%s", oc_last_error());
    T_CHECK(html && strstr(html, "No training history") != NULL, "no-history note");
cleanup:
    free(html);
    sample_free(&sp);
}

static void rejects_bad_arguments(void)
{
    sample sp;
    oc_report_info info;
    oc_report_image bad;
    char *html = (char *)"untouched";
    if (!sample_make(&sp, 20))
        goto cleanup;
    info = sample_info(&sp);
    bad = sp.images[0];
    info.images = &bad;
    info.n_images = 1;
    bad.channels = 2;
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_ERR_ARG && html == NULL, "2 channels");
    bad.channels = 3;
    bad.pred_label = K;
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_ERR_ARG, "label K");
    bad.pred_label = 0;
    bad.pixels = NULL;
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_ERR_ARG, "NULL pixels");
    bad = sp.images[0];
    bad.probability = NAN;
    T_CHECK(oc_report_html(sp.m, &info, &html, NULL) == OC_ERR_ARG, "NaN probability");
    T_CHECK(oc_report_html(NULL, &info, &html, NULL) == OC_ERR_ARG, "NULL metrics");
    T_CHECK(oc_report_write(sp.m, &info, "") == OC_ERR_ARG, "empty path");
cleanup:
    sample_free(&sp);
}

static void write_is_atomic_and_complete(void)
{
    sample sp;
    oc_report_info info;
    char dir[] = "/tmp/oc_report_XXXXXX", path[256], *html = NULL, *disk = NULL;
    size_t len = 0;
    FILE *f;
    DIR *d;
    struct dirent *de;
    int entries = 0;
    if (!sample_make(&sp, 20) || !mkdtemp(dir)) {
        T_CHECK(0, "setup");
        goto cleanup;
    }
    info = sample_info(&sp);
    snprintf(path, sizeof path, "%s/report.html", dir);
    f = fopen(path, "w");
    if (f) {
        fputs("old contents", f);
        fclose(f);
    }
    T_CHECK(oc_report_write(sp.m, &info, path) == OC_OK, "%s", oc_last_error());
    T_CHECK(oc_report_html(sp.m, &info, &html, &len) == OC_OK, "%s", oc_last_error());
    f = fopen(path, "rb");
    T_CHECK(f != NULL, "report not written");
    if (f && html) {
        disk = malloc(len + 1);
        T_CHECK(fread(disk, 1, len + 1, f) == len && memcmp(disk, html, len) == 0,
                "file differs from oc_report_html");
    }
    if (f)
        fclose(f);
    d = opendir(dir);
    while (d && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') {
            entries++;
            T_CHECK(strcmp(de->d_name, "report.html") == 0, "stray file %s", de->d_name);
            if (strcmp(de->d_name, "report.html") != 0) {
                char stray[512];
                snprintf(stray, sizeof stray, "%s/%s", dir, de->d_name);
                unlink(stray);
            }
        }
    if (d)
        closedir(d);
    T_CHECK(entries == 1, "%d files in the directory", entries);
    snprintf(path, sizeof path, "%s/missing/report.html", dir);
    T_CHECK(oc_report_write(sp.m, &info, path) == OC_ERR_IO, "missing directory accepted");
    snprintf(path, sizeof path, "%s/report.html", dir);
    unlink(path);
    rmdir(dir);
cleanup:
    free(disk);
    free(html);
    sample_free(&sp);
}

static void many_classes_stay_well_formed(void)
{
    enum { KB = 100, NB = 2000 };
    int32_t *labels = malloc(sizeof(int32_t) * NB);
    float *scores = calloc((size_t)NB * KB, sizeof(float));
    oc_metrics *m = NULL;
    char *html = NULL, why[160] = "";
    oc_report_info info = {0};
    oc_rng rng;
    size_t len = 0;
    oc_rng_seed(&rng, 5, 0);
    for (int i = 0; i < NB; i++) {
        int p;
        labels[i] = (int32_t)oc_rng_below(&rng, KB);
        p = oc_rng_uniform(&rng) < 0.6f ? labels[i] : (int)oc_rng_below(&rng, KB);
        for (int j = 0; j < KB; j++)
            scores[(size_t)i * KB + j] = 0.2f / (KB - 1);
        scores[(size_t)i * KB + p] = 0.8f;
    }
    info.date = "today";
    if (oc_metrics_new(&m, KB, NULL, 5) != OC_OK ||
        oc_metrics_add(m, labels, scores, NB, OC_SCORES_PROBS) != OC_OK) {
        T_CHECK(0, "%s", oc_last_error());
        goto cleanup;
    }
    T_CHECK(oc_report_html(m, &info, &html, &len) == OC_OK, "%s", oc_last_error());
    T_CHECK(html && tags_balanced(html, why, sizeof why), "unbalanced: %s", why);
    T_CHECK(html && count(html, "class=\"cnt") == 0, "counts drawn in 100x100 cells");
    if (html && strstr(html, "class=\"heatmap\"")) {
        /* inside the heat map: one rect per non-empty or diagonal cell, plus the background */
        char *hm = strstr(html, "class=\"heatmap\""), *end = strstr(hm, "</svg>");
        size_t want = 1;
        for (int i = 0; i < KB * KB; i++)
            want += oc_metrics_confusion(m)[i] > 0 || i % (KB + 1) == 0;
        if (end)
            *end = 0;
        T_CHECK(count(hm, "<rect") == want, "%zu heat-map rects, want %zu", count(hm, "<rect"),
                want);
    }
    oc_test_note("K=%d report: %zu bytes", KB, len);
cleanup:
    free(html);
    oc_metrics_free(m);
    free(labels);
    free(scores);
}

/* Writes the demonstration report for the browser test. */
static int write_sample(const char *path)
{
    sample sp;
    oc_report_info info;
    oc_status st;
    if (!sample_make(&sp, 20))
        return 1;
    info = sample_info(&sp);
    info.title = "ocelot evaluation report";
    info.model_name = "resnet20";
    info.dataset = "synthetic (600 samples)";
    st = oc_report_write(sp.m, &info, path);
    if (st != OC_OK)
        fprintf(stderr, "test_report: %s\n", oc_last_error());
    sample_free(&sp);
    return st == OC_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"report_has_every_section", report_has_every_section},
        {"every_string_is_escaped", every_string_is_escaped},
        {"tags_are_balanced", tags_are_balanced},
        {"thumbnails_decode_to_their_pixels", thumbnails_decode_to_their_pixels},
        {"base64_matches_rfc4648", base64_matches_rfc4648},
        {"history_csv_and_json", history_csv_and_json},
        {"rejects_bad_arguments", rejects_bad_arguments},
        {"write_is_atomic_and_complete", write_is_atomic_and_complete},
        {"many_classes_stay_well_formed", many_classes_stay_well_formed},
    };
    if (argc == 3 && strcmp(argv[1], "--sample") == 0)
        return write_sample(argv[2]);
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
