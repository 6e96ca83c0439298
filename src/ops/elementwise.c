/* Elementwise and structural ops: dropout with a given mask, add, gradient accumulation,
 * the option-A ResNet shortcut, channel concatenation and its split, and the channel-wise
 * multiply of squeeze-and-excitation.
 *
 * All are single passes over memory. Large ones split their outer dimension over the thread
 * pool; none reduces across threads, so results do not depend on the thread count.
 * Beyond ops.h, a NULL gradient output means "not wanted" and is skipped: dx in
 * oc_dropout_bwd and oc_accumulate, dx[k] in oc_concat_bwd, dx or ds in oc_channel_mul_bwd. */

/* See act.c: lets GCC vectorise these loops at -O2 without changing results. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")
#endif

#include "core/core.h"
#include "ops.h"

#include <string.h>

/* Elements per thread below which one thread is faster than waking the pool. */
#define EW_GRAIN 32768

/* The loops in AVX-512, AVX2 and baseline builds, chosen at load time (the library's baseline
 * is SSE2): the same operations per element in each, so the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define EW_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EW_CLONES
#endif

static int ew_threads(int64_t work)
{
    int64_t t = work / EW_GRAIN;
    return t < 1 ? 1 : (t > 1024 ? 1024 : (int)t);
}

/* ---- flat binary ops: out = a * b, out = a + b, out += a, out += a * b, and the last two
 * setting out to 0 + a, 0 + a * b (the bits of adding to zeros: -0 becomes +0) ---- */

typedef enum { EW_MUL, EW_ADD, EW_ACC, EW_ACC_MUL, EW_SET, EW_SET_MUL } ew_kind;

typedef struct {
    ew_kind kind;
    int64_t n;
    const float *a, *b;
    float *out;
} ew_job;

/* No restrict: callers may run these in place (dropout or add with y == x); GCC versions the
 * loops with a run-time overlap check instead. */
EW_CLONES static void ew_range(ew_kind kind, int64_t n, const float *a, const float *b,
                               float *out)
{
    switch (kind) {
    case EW_MUL:
        for (int64_t i = 0; i < n; i++)
            out[i] = a[i] * b[i];
        break;
    case EW_ADD:
        for (int64_t i = 0; i < n; i++)
            out[i] = a[i] + b[i];
        break;
    case EW_ACC:
        for (int64_t i = 0; i < n; i++)
            out[i] += a[i];
        break;
    case EW_ACC_MUL:
        for (int64_t i = 0; i < n; i++)
            out[i] += a[i] * b[i];
        break;
    case EW_SET:
        for (int64_t i = 0; i < n; i++)
            out[i] = 0.0f + a[i];
        break;
    case EW_SET_MUL:
        for (int64_t i = 0; i < n; i++)
            out[i] = 0.0f + a[i] * b[i];
        break;
    }
}

static void ew_task(void *ctx, int tid, int nt)
{
    const ew_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->n, tid, nt, &b, &e);
    if (e > b)
        ew_range(j->kind, e - b, j->a + b, j->b ? j->b + b : NULL, j->out + b);
}

static void ew_run(ew_kind kind, int64_t n, const float *a, const float *b, float *out)
{
    ew_job j = {kind, n, a, b, out};
    if (n <= 0 || !out)
        return;
    if (n < 2 * EW_GRAIN)
        ew_range(kind, n, a, b, out);
    else
        oc_parallel_n(ew_task, &j, ew_threads(n));
}

void oc_dropout_fwd(int64_t n, const float *x, const float *mask, float *y)
{
    ew_run(EW_MUL, n, x, mask, y);
}

void oc_dropout_bwd(int64_t n, const float *mask, const float *dy, float *dx)
{
    ew_run(EW_ACC_MUL, n, dy, mask, dx);
}

void oc_dropout_bwd_set(int64_t n, const float *mask, const float *dy, float *dx)
{
    ew_run(EW_SET_MUL, n, dy, mask, dx);
}

void oc_add_fwd(int64_t n, const float *a, const float *b, float *y)
{
    ew_run(EW_ADD, n, a, b, y);
}

void oc_accumulate(int64_t n, const float *dy, float *dx)
{
    ew_run(EW_ACC, n, dy, NULL, dx);
}

void oc_accumulate_set(int64_t n, const float *dy, float *dx)
{
    ew_run(EW_SET, n, dy, NULL, dx);
}

/* ---- add fused with a following ReLU / ReLU6 ---- */

typedef struct {
    oc_act act;
    int64_t n;
    const float *a, *b;   /* forward inputs */
    const float *y, *dy;  /* backward: the fused output and its gradient */
    float *out, *da, *db; /* forward output; backward input gradients (either may be NULL) */
    int set_a, set_b;     /* backward: da, db are set (to 0 + the gradient), not added to */
} add_act_job;

/* `act` is a constant after inlining, so each loop vectorises with a select. No restrict:
 * da may be db (x + x), and the forward may run in place. */
static inline __attribute__((always_inline)) void add_act_fwd_range(const add_act_job *j,
                                                                    int64_t i0, int64_t i1,
                                                                    const oc_act act)
{
    for (int64_t i = i0; i < i1; i++) {
        float v = j->a[i] + j->b[i];
        v = v < 0.0f ? 0.0f : v; /* as act.c */
        if (act == OC_ACT_RELU6)
            v = v > 6.0f ? 6.0f : v;
        j->out[i] = v;
    }
}

/* The gradient through the fused activation, from its output y. */
static inline __attribute__((always_inline)) float add_act_grad(oc_act act, float y, float g)
{
    return act == OC_ACT_RELU6 ? (((y > 0.0f) & (y < 6.0f)) ? g : 0.0f) : (y > 0.0f ? g : 0.0f);
}

/* set_a, set_b are constants too: a set gradient is never read. With both outputs, the loop
 * whose pointers may overlap (da == db for x + x, a gradient written in place over dy) stays
 * scalar: gcc does not version a loop with two stores for overlap. */
static inline __attribute__((always_inline)) void add_act_bwd_range(const add_act_job *j,
                                                                    int64_t i0, int64_t i1,
                                                                    const oc_act act,
                                                                    const int set_a,
                                                                    const int set_b)
{
    for (int64_t i = i0; i < i1; i++) {
        float v = add_act_grad(act, j->y[i], j->dy[i]);
        if (j->da)
            j->da[i] = (set_a ? 0.0f : j->da[i]) + v;
        if (j->db)
            j->db[i] = (set_b ? 0.0f : j->db[i]) + v;
    }
}

/* add_act_bwd_range with both outputs, none overlapping another array (add_act_bwd_sets
 * checks): vectorised. The same operations per element. */
static inline __attribute__((always_inline)) void
add_act_bwd_range2(const float *restrict y, const float *restrict dy, float *restrict da,
                   float *restrict db, int64_t i0, int64_t i1, const oc_act act, const int set_a,
                   const int set_b)
{
    for (int64_t i = i0; i < i1; i++) {
        float v = add_act_grad(act, y[i], dy[i]);
        da[i] = (set_a ? 0.0f : da[i]) + v;
        db[i] = (set_b ? 0.0f : db[i]) + v;
    }
}

static inline __attribute__((always_inline)) void add_act_bwd_sets(const add_act_job *j,
                                                                   int64_t i0, int64_t i1,
                                                                   const oc_act act)
{
    const int64_t n = i1 - i0;
    if (j->da && j->db && oc_floats_apart(j->da + i0, j->db + i0, n) &&
        oc_floats_apart(j->da + i0, j->y + i0, n) &&
        oc_floats_apart(j->da + i0, j->dy + i0, n) &&
        oc_floats_apart(j->db + i0, j->y + i0, n) &&
        oc_floats_apart(j->db + i0, j->dy + i0, n)) {
        if (j->set_a && j->set_b)
            add_act_bwd_range2(j->y, j->dy, j->da, j->db, i0, i1, act, 1, 1);
        else if (j->set_a)
            add_act_bwd_range2(j->y, j->dy, j->da, j->db, i0, i1, act, 1, 0);
        else if (j->set_b)
            add_act_bwd_range2(j->y, j->dy, j->da, j->db, i0, i1, act, 0, 1);
        else
            add_act_bwd_range2(j->y, j->dy, j->da, j->db, i0, i1, act, 0, 0);
    } else if (j->set_a && j->set_b)
        add_act_bwd_range(j, i0, i1, act, 1, 1);
    else if (j->set_a)
        add_act_bwd_range(j, i0, i1, act, 1, 0);
    else if (j->set_b)
        add_act_bwd_range(j, i0, i1, act, 0, 1);
    else
        add_act_bwd_range(j, i0, i1, act, 0, 0);
}

EW_CLONES static void add_act_fwd_rows(const add_act_job *j, int64_t b, int64_t e)
{
    if (j->act == OC_ACT_RELU6)
        add_act_fwd_range(j, b, e, OC_ACT_RELU6);
    else
        add_act_fwd_range(j, b, e, OC_ACT_RELU);
}

EW_CLONES static void add_act_bwd_rows(const add_act_job *j, int64_t b, int64_t e)
{
    if (j->act == OC_ACT_RELU6)
        add_act_bwd_sets(j, b, e, OC_ACT_RELU6);
    else
        add_act_bwd_sets(j, b, e, OC_ACT_RELU);
}

static void add_act_fwd_task(void *ctx, int tid, int nt)
{
    const add_act_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->n, tid, nt, &b, &e);
    add_act_fwd_rows(j, b, e);
}

static void add_act_bwd_task(void *ctx, int tid, int nt)
{
    const add_act_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->n, tid, nt, &b, &e);
    add_act_bwd_rows(j, b, e);
}

void oc_add_act_fwd(int64_t n, const float *a, const float *b, oc_act act, float *y)
{
    add_act_job j = {act, n, a, b, NULL, NULL, y, NULL, NULL, 0, 0};
    if (act != OC_ACT_RELU && act != OC_ACT_RELU6) {
        oc_add_fwd(n, a, b, y);
        if (act != OC_ACT_IDENTITY)
            oc_act_fwd(act, 0.0f, n, y, y);
        return;
    }
    if (n > 0)
        oc_parallel_n(add_act_fwd_task, &j, ew_threads(n));
}

void oc_add_act_bwd(int64_t n, oc_act act, const float *y, const float *dy, float *da,
                    float *db)
{
    oc_add_act_bwd_set(n, act, y, dy, da, db, 0, 0);
}

void oc_add_act_bwd_set(int64_t n, oc_act act, const float *y, const float *dy, float *da,
                        float *db, int set_a, int set_b)
{
    add_act_job j = {act, n, NULL, NULL, y, dy, NULL, da, db, set_a, set_b};
    OC_ASSERT(!(da && da == db && (set_a || set_b)));
    if (act == OC_ACT_IDENTITY) {
        ew_run(set_a ? EW_SET : EW_ACC, n, dy, NULL, da);
        ew_run(set_b ? EW_SET : EW_ACC, n, dy, NULL, db);
        return;
    }
    OC_ASSERT(act == OC_ACT_RELU || act == OC_ACT_RELU6);
    if (n > 0 && (da || db))
        oc_parallel_n(add_act_bwd_task, &j, ew_threads(n));
}

/* ---- option-A shortcut: strided sampling and zero channel padding ---- */

typedef struct {
    int N, H, W, C, stride, Co, Ho, Wo, set;
    const float *x; /* forward input, or backward dy */
    float *y;       /* forward output, or backward dx */
} shortcut_job;

/* Output rows (n, p) of the forward. */
static void shortcut_fwd_task(void *ctx, int tid, int nt)
{
    const shortcut_job *j = ctx;
    const int lo = (j->Co - j->C) / 2, C = j->C, Co = j->Co;
    int64_t a, e;
    oc_split_range((int64_t)j->N * j->Ho, tid, nt, &a, &e);
    for (int64_t r = a; r < e; r++) {
        const int64_t n = r / j->Ho, h = r % j->Ho * j->stride;
        const float *xr = j->x + (n * j->H + h) * j->W * C;
        float *restrict y = j->y + r * j->Wo * Co;
        for (int q = 0; q < j->Wo; q++, y += Co) {
            const float *restrict src = xr + (int64_t)q * j->stride * C;
            for (int c = 0; c < lo; c++)
                y[c] = 0.0f;
            for (int c = 0; c < C; c++)
                y[lo + c] = src[c];
            for (int c = lo + C; c < Co; c++)
                y[c] = 0.0f;
        }
    }
}

/* Input rows (n, h) of the backward: a sampled row takes dy at its sampled pixels; with set,
 * every other value of the row becomes 0. */
static void shortcut_bwd_task(void *ctx, int tid, int nt)
{
    const shortcut_job *j = ctx;
    const int lo = (j->Co - j->C) / 2, C = j->C, s = j->stride;
    int64_t a, e;
    oc_split_range((int64_t)j->N * j->H, tid, nt, &a, &e);
    for (int64_t r = a; r < e; r++) {
        const int64_t n = r / j->H, h = r % j->H;
        float *restrict dx = j->y + r * j->W * C;
        if (h % s) {
            if (j->set)
                memset(dx, 0, (size_t)j->W * C * sizeof *dx);
            continue;
        }
        const float *dyr = j->x + (n * j->Ho + h / s) * j->Wo * j->Co + lo;
        for (int w = 0; w < j->W; w++, dx += C) {
            const float *restrict g = dyr + (int64_t)(w / s) * j->Co;
            if (w % s) {
                if (j->set)
                    for (int c = 0; c < C; c++)
                        dx[c] = 0.0f;
            } else if (j->set) {
                for (int c = 0; c < C; c++)
                    dx[c] = 0.0f + g[c];
            } else {
                for (int c = 0; c < C; c++)
                    dx[c] += g[c];
            }
        }
    }
}

void oc_shortcut_pad_fwd(int N, int H, int W, int C, int stride, int Co, const float *x,
                         float *y)
{
    shortcut_job j = {N, H, W, C, stride, Co, (H + stride - 1) / stride,
                      (W + stride - 1) / stride, 0, x, y};
    oc_parallel_n(shortcut_fwd_task, &j, ew_threads((int64_t)N * j.Ho * j.Wo * Co));
}

void oc_shortcut_pad_bwd(int N, int H, int W, int C, int stride, int Co, const float *dy,
                         float *dx, int set)
{
    shortcut_job j = {N, H, W, C, stride, Co, (H + stride - 1) / stride,
                      (W + stride - 1) / stride, set, dy, dx};
    oc_parallel_n(shortcut_bwd_task, &j, ew_threads((int64_t)N * H * W * C));
}

/* ---- concat over channels ---- */

typedef struct {
    int64_t M;
    int n_in;
    const int *C_in;
    int C_out;
    const float *const *x; /* forward inputs */
    const float *y;        /* backward: dy */
    float *const *dx;      /* backward outputs */
    float *out;            /* forward output */
} concat_job;

static void concat_fwd_task(void *ctx, int tid, int nt)
{
    const concat_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->M, tid, nt, &b, &e);
    for (int64_t m = b; m < e; m++) {
        float *yr = j->out + m * j->C_out;
        for (int k = 0; k < j->n_in; k++) {
            int ck = j->C_in[k];
            memcpy(yr, j->x[k] + m * ck, (size_t)ck * sizeof *yr);
            yr += ck;
        }
    }
}

static void concat_bwd_task(void *ctx, int tid, int nt)
{
    const concat_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->M, tid, nt, &b, &e);
    for (int64_t m = b; m < e; m++) {
        const float *restrict gr = j->y + m * j->C_out;
        for (int k = 0; k < j->n_in; k++) {
            int ck = j->C_in[k];
            float *restrict dr = j->dx[k] ? j->dx[k] + m * ck : NULL;
            if (dr)
                for (int c = 0; c < ck; c++)
                    dr[c] += gr[c];
            gr += ck;
        }
    }
}

static int concat_width(int n_in, const int *C_in)
{
    int C = 0;
    for (int k = 0; k < n_in; k++)
        C += C_in[k];
    return C;
}

void oc_concat_fwd(int64_t M, int n_in, const int *C_in, const float *const *x, float *y)
{
    concat_job j = {M, n_in, C_in, concat_width(n_in, C_in), x, NULL, NULL, y};
    if (M <= 0 || j.C_out <= 0)
        return;
    oc_parallel_n(concat_fwd_task, &j, ew_threads(M * j.C_out));
}

void oc_concat_bwd(int64_t M, int n_in, const int *C_in, const float *dy, float *const *dx)
{
    concat_job j = {M, n_in, C_in, concat_width(n_in, C_in), NULL, dy, dx, NULL};
    if (M <= 0 || j.C_out <= 0)
        return;
    oc_parallel_n(concat_bwd_task, &j, ew_threads(M * j.C_out));
}

/* ---- channel multiply (squeeze-and-excitation) ---- */

/* Channels per tile of the ds reduction; its double accumulators sit on the stack. */
#define CM_TILE 256

typedef struct {
    int N, HW, C;
    const float *x, *s, *dy;
    float *out, *ds;
} cmul_job;

static void cmul_fwd_image(const cmul_job *j, int n)
{
    const float *s = j->s + (int64_t)n * j->C; /* y may be x (in place): no restrict */
    for (int64_t p = 0; p < j->HW; p++) {
        const float *xr = j->x + ((int64_t)n * j->HW + p) * j->C;
        float *yr = j->out + ((int64_t)n * j->HW + p) * j->C;
        for (int c = 0; c < j->C; c++)
            yr[c] = xr[c] * s[c];
    }
}

/* dx += dy * s; ds[n][c] += sum_hw dy * x, summed in double per channel tile. */
static void cmul_bwd_image(const cmul_job *j, int n)
{
    const float *restrict s = j->s + (int64_t)n * j->C;
    if (j->out) {
        for (int64_t p = 0; p < j->HW; p++) {
            const float *restrict gr = j->dy + ((int64_t)n * j->HW + p) * j->C;
            float *restrict dr = j->out + ((int64_t)n * j->HW + p) * j->C;
            for (int c = 0; c < j->C; c++)
                dr[c] += gr[c] * s[c];
        }
    }
    if (j->ds) {
        double acc[CM_TILE];
        for (int c0 = 0; c0 < j->C; c0 += CM_TILE) {
            int ct = j->C - c0 < CM_TILE ? j->C - c0 : CM_TILE;
            for (int c = 0; c < ct; c++)
                acc[c] = 0.0;
            for (int64_t p = 0; p < j->HW; p++) {
                const float *restrict gr = j->dy + ((int64_t)n * j->HW + p) * j->C + c0;
                const float *restrict xr = j->x + ((int64_t)n * j->HW + p) * j->C + c0;
                for (int c = 0; c < ct; c++)
                    acc[c] += (double)gr[c] * (double)xr[c];
            }
            for (int c = 0; c < ct; c++)
                j->ds[(int64_t)n * j->C + c0 + c] += (float)acc[c];
        }
    }
}

static void cmul_fwd_task(void *ctx, int tid, int nt)
{
    const cmul_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->N, tid, nt, &b, &e);
    for (int64_t n = b; n < e; n++)
        cmul_fwd_image(j, (int)n);
}

static void cmul_bwd_task(void *ctx, int tid, int nt)
{
    const cmul_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->N, tid, nt, &b, &e);
    for (int64_t n = b; n < e; n++)
        cmul_bwd_image(j, (int)n);
}

void oc_channel_mul_fwd(int N, int HW, int C, const float *x, const float *s, float *y)
{
    cmul_job j = {N, HW, C, x, s, NULL, y, NULL};
    int64_t work = (int64_t)N * HW * C;
    int nt = ew_threads(work);
    if (work <= 0)
        return;
    oc_parallel_n(cmul_fwd_task, &j, nt < N ? nt : N);
}

void oc_channel_mul_bwd(int N, int HW, int C, const float *x, const float *s, const float *dy,
                        float *dx, float *ds)
{
    cmul_job j = {N, HW, C, x, s, dy, dx, ds};
    int64_t work = (int64_t)N * HW * C;
    int nt = ew_threads(work);
    if (work <= 0)
        return;
    oc_parallel_n(cmul_bwd_task, &j, nt < N ? nt : N);
}
