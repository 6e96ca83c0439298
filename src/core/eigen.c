/* Symmetric eigen-decomposition by the cyclic Jacobi method (Golub & Van Loan, Matrix
 * Computations, 4th ed., Algorithm 8.5.3): each rotation zeroes one off-diagonal pair; sweeps
 * over all pairs until the off-diagonal mass is negligible. Slower than tridiagonal QR for
 * large n, but short, unconditionally stable and accurate to the last digits for the tiny
 * matrices it serves (eigenvectors orthonormal to rounding). */
#include "core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SWEEPS 64

static double off_diagonal(int n, const double *a)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j)
                s += a[i * n + j] * a[i * n + j];
    return s;
}

/* One rotation in the (p, q) plane that zeroes a[p][q] (Golub & Van Loan's sym.schur2), applied
 * as A = J^T A J, V = V J. */
static void rotate(int n, double *a, double *v, int p, int q)
{
    double apq = a[p * n + q], tau, t, c, s;
    if (apq == 0)
        return;
    tau = (a[q * n + q] - a[p * n + p]) / (2 * apq);
    t = (tau >= 0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1 + tau * tau));
    c = 1 / sqrt(1 + t * t);
    s = t * c;
    for (int k = 0; k < n; k++) { /* columns p and q */
        double akp = a[k * n + p], akq = a[k * n + q];
        a[k * n + p] = c * akp - s * akq;
        a[k * n + q] = s * akp + c * akq;
    }
    for (int k = 0; k < n; k++) { /* rows p and q */
        double apk = a[p * n + k], aqk = a[q * n + k];
        a[p * n + k] = c * apk - s * aqk;
        a[q * n + k] = s * apk + c * aqk;
    }
    for (int k = 0; k < n; k++) {
        double vkp = v[k * n + p], vkq = v[k * n + q];
        v[k * n + p] = c * vkp - s * vkq;
        v[k * n + q] = s * vkp + c * vkq;
    }
}

int oc_eigen_sym(int n, const double *a, double *values, double *vectors)
{
    size_t nn;
    double *w, *v, total = 0;
    int sweeps = -1;
    if (n < 1 || !a || !values || !vectors)
        return -1;
    nn = (size_t)n * (size_t)n;
    w = malloc(2 * nn * sizeof *w);
    if (!w)
        return -1;
    v = w + nn;
    for (size_t i = 0; i < nn; i++) {
        /* symmetrise: callers pass covariances that are symmetric up to summation order */
        size_t r = i / (size_t)n, c = i % (size_t)n;
        w[i] = 0.5 * (a[i] + a[c * (size_t)n + r]);
        total += w[i] * w[i];
        v[i] = r == c;
    }
    for (int sweep = 0; sweep <= MAX_SWEEPS; sweep++) {
        if (off_diagonal(n, w) <= 1e-26 * total || total == 0) {
            sweeps = sweep;
            break;
        }
        if (sweep == MAX_SWEEPS)
            break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++)
                rotate(n, w, v, p, q);
    }
    if (sweeps >= 0) {
        /* selection sort by descending eigenvalue; column j of V is the vector of w[j][j] */
        int *order = malloc((size_t)n * sizeof *order);
        if (!order) {
            free(w);
            return -1;
        }
        for (int i = 0; i < n; i++)
            order[i] = i;
        for (int i = 0; i < n; i++) {
            int best = i;
            for (int j = i + 1; j < n; j++)
                if (w[order[j] * n + order[j]] > w[order[best] * n + order[best]])
                    best = j;
            int t = order[i];
            order[i] = order[best];
            order[best] = t;
        }
        for (int i = 0; i < n; i++) {
            values[i] = w[order[i] * n + order[i]];
            for (int k = 0; k < n; k++)
                vectors[i * n + k] = v[k * n + order[i]];
        }
        free(order);
    }
    free(w);
    return sweeps;
}
