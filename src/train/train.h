/* Private helpers shared by the training files (optimizers, schedules, EMA). */
#ifndef OC_TRAIN_H
#define OC_TRAIN_H

#include <stddef.h>

/* Runs fn(ctx, b, e) over [0, n) split across the thread pool in whole cache lines (16 floats,
 * so no two threads write one line), or on the calling thread when n is small. For elementwise
 * updates only: the result must not depend on how [0, n) is cut. */
typedef void (*oc_range_fn)(void *ctx, size_t b, size_t e);
void oc_train_parallel_range(size_t n, oc_range_fn fn, void *ctx);

#endif /* OC_TRAIN_H */
