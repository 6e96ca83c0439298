/* Classifies one image with a model file through the public API alone; prints the top 5.
 *   cc classify.c $(pkg-config --cflags ocelot) -o classify $(pkg-config --libs ocelot)
 *   ./classify model.ocm photo.jpg */
#include <ocelot.h>
#include <stdio.h>

#define TOPK 5

int main(int argc, char **argv)
{
    oc_model *model = NULL;
    oc_prediction preds[TOPK];
    int k;

    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL IMAGE\n", argv[0]);
        return 2;
    }
    if (oc_model_load(argv[1], &model) != OC_OK) {
        fprintf(stderr, "classify: cannot load model '%s': %s\n", argv[1], oc_last_error());
        return 1;
    }
    if (oc_classify_file(model, argv[2], TOPK, preds) != OC_OK) {
        fprintf(stderr, "classify: cannot classify '%s': %s\n", argv[2], oc_last_error());
        oc_model_free(model);
        return 1;
    }
    /* topk is clamped to the class count: a 3-class model fills only 3 rows */
    k = oc_model_num_classes(model) < TOPK ? oc_model_num_classes(model) : TOPK;
    for (int i = 0; i < k; i++)
        printf("%d. %-16s %6.2f%%  (class %d)\n", i + 1, preds[i].label,
               100.0 * (double)preds[i].probability, preds[i].index);
    oc_model_free(model);
    return 0;
}
