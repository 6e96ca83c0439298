/* Softmax cross-entropy, as torch.nn.CrossEntropyLoss(reduction='mean', label_smoothing=eps).
 *
 * Per row, with lse = log sum_k exp(x_k) and target distribution q:
 *   loss = -sum_k q_k (x_k - lse),   dloss/dx_k = p_k * sum_j q_j - q_k,   p = softmax(x).
 * Hard labels use q = (1 - eps) onehot(label) + eps / K (PyTorch's smoothing); soft targets
 * use q as given (sum_j q_j is kept in the gradient, so unnormalised targets still get the
 * exact derivative of the loss above). Everything is averaged over the N rows.
 *
 * The row work is O(K) and N*K is small next to the network (at most a few hundred thousand
 * values), so this runs on the calling thread, in double. */
#include "ops.h"

#include <math.h>

/* Returns NAN when N or K is not positive, or when any label is outside [0, K) (the rows with
 * a bad label get zero probs / dlogits; the others are filled normally), so the caller's
 * finiteness check on the loss catches bad input without this kernel failing. */
double oc_softmax_xent(int N, int K, const float *logits, const int32_t *labels,
                       const float *target, float smoothing, float *probs, float *dlogits)
{
    const double eps = (double)smoothing;
    double inv_n, total = 0.0;
    int bad = 0;

    if (N <= 0 || K <= 0)
        return (double)NAN;
    inv_n = 1.0 / (double)N;
    for (int n = 0; n < N; n++) {
        const float *x = logits + (int64_t)n * K;
        float *p = probs ? probs + (int64_t)n * K : NULL;
        float *d = dlogits ? dlogits + (int64_t)n * K : NULL;
        const float *q = target ? target + (int64_t)n * K : NULL;
        int32_t y = target ? 0 : labels[n];
        float mx = x[0];
        double sum = 0.0, lse, qsum = 0.0, row = 0.0;

        if (!target && (y < 0 || y >= K)) {
            bad = 1;
            for (int k = 0; k < K; k++) {
                if (p)
                    p[k] = 0.0f;
                if (d)
                    d[k] = 0.0f;
            }
            continue;
        }
        /* Subtract the row max before exp: logits from an untrained or diverging net can pass
         * 88, where expf overflows to inf and the softmax turns into NaN. */
        for (int k = 1; k < K; k++)
            mx = x[k] > mx ? x[k] : mx;
        for (int k = 0; k < K; k++)
            sum += exp((double)x[k] - (double)mx);
        lse = (double)mx + log(sum);

        if (target) {
            for (int k = 0; k < K; k++) {
                qsum += (double)q[k];
                row -= (double)q[k] * ((double)x[k] - lse);
            }
        } else {
            double logp_sum = 0.0;
            for (int k = 0; k < K; k++)
                logp_sum += (double)x[k] - lse;
            row = -(1.0 - eps) * ((double)x[y] - lse) - eps / (double)K * logp_sum;
            qsum = 1.0;
        }
        total += row;

        if (p || d) {
            for (int k = 0; k < K; k++) {
                double pk = exp((double)x[k] - lse);
                double qk = target ? (double)q[k]
                                   : (k == y ? 1.0 - eps : 0.0) + eps / (double)K;
                if (p)
                    p[k] = (float)pk;
                if (d)
                    d[k] = (float)((pk * qsum - qk) * inv_n);
            }
        }
    }
    return bad ? (double)NAN : total * inv_n;
}
