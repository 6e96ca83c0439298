/* data: the augmentation spec parser and each op's effect, and per-sample determinism. */
#include "test.h"
#include "ocelot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { H = 9, W = 11, C = 3, N = H * W * C };

static oc_preprocess pp_raw(void)
{
    /* mean 0, std 1/255: the floats are the uint8 values, so pixels compare exactly */
    oc_preprocess pp = {.height = H, .width = W, .channels = C, .resize = OC_RESIZE_STRETCH};
    for (int c = 0; c < 4; c++)
        pp.std[c] = 1.0f / 255.0f;
    return pp;
}

static void pattern(oc_image *img)
{
    oc_image_alloc(img, H, W, C);
    for (int i = 0; i < N; i++)
        img->data[i] = (uint8_t)(1 + (i * 31) % 250);
}

/* Runs `spec` on the pattern with rng (seed, 0, index) into out[N]. */
static oc_status run(const char *spec, uint64_t seed, int64_t index, float *out)
{
    oc_augment *a = NULL;
    oc_image img = {0}, scratch[2] = {{0}, {0}};
    oc_preprocess pp = pp_raw();
    oc_rng r;
    oc_status st = oc_augment_parse(spec, &a);
    if (st != OC_OK)
        return st;
    pattern(&img);
    oc_augment_rng(&r, seed, 0, index);
    st = oc_augment_sample(a, &img, &pp, &r, scratch, out);
    oc_image_release(&img);
    oc_image_release(&scratch[0]);
    oc_image_release(&scratch[1]);
    oc_augment_free(a);
    return st;
}

static float px(const float *v, int y, int x, int c)
{
    return v[(y * W + x) * C + c];
}

static void parser_rejects_bad_specs(void)
{
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        {"blur", "unknown op 'blur'"},
        {"crop:pad=x", "bad value 'x' for pad"},
        {"crop:pad=2.5", "bad value"},
        {"crop:mode=wrap", "zero, reflect or edge"},
        {"flip:q=1", "no parameter 'q'"},
        {"flip:2", "probability"},
        {"rotate:500", "degrees"},
        {"scale:1.2-0.8", "above HI"},
        {"color:brightness=3", "strength"},
        {"cutout:0", "1..4096"},
        {"mixup:0", "Beta"},
        {"flip,flip", "appears twice"},
        {"crop:pad=4,,flip", "empty op"},
    };
    oc_augment *a = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        oc_status st = oc_augment_parse(bad[i].spec, &a);
        T_CHECK(st == OC_ERR_ARG && a == NULL, "'%s' accepted", bad[i].spec);
        T_CHECK(strstr(oc_last_error(), bad[i].msg) != NULL, "'%s': message '%s' lacks '%s'",
                bad[i].spec, oc_last_error(), bad[i].msg);
    }
    T_CHECK(oc_augment_parse("crop:pad=4,flip,rotate:15,scale:0.9-1.1,color:0.2,cutout:8,"
                             "mixup:0.2", &a) == OC_OK,
            "full spec: %s", oc_last_error());
    T_CHECK(fabsf(oc_augment_mixup_alpha(a) - 0.2f) < 1e-7f, "mixup alpha");
    oc_augment_free(a);
    T_CHECK(oc_augment_parse(" crop:4:mode=reflect , vflip:p=0.3 ", &a) == OC_OK, "spaces: %s",
            oc_last_error());
    oc_augment_free(a);
    T_CHECK(oc_augment_parse("none", &a) == OC_OK && oc_augment_mixup_alpha(a) == 0.0f, "none");
    oc_augment_free(a);
}

static void identities(void)
{
    float base[N], out[N];
    static const char *const ids[] = {"crop:pad=0", "flip:p=0", "vflip:p=0", "rotate:0",
                                      "scale:1-1", "color:0", "cutout:4:p=0", ""};
    T_CHECK(run(NULL, 1, 0, base) == OC_OK, "plain: %s", oc_last_error());
    for (int i = 0; i < N; i++)
        if (base[i] != (float)(1 + (i * 31) % 250)) {
            T_CHECK(0, "no-op pipeline changed pixel %d", i);
            break;
        }
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        T_CHECK(run(ids[k], 5, 3, out) == OC_OK, "%s: %s", ids[k], oc_last_error());
        T_CHECK(!memcmp(out, base, sizeof out), "'%s' is not the identity", ids[k]);
    }
}

static void flips_mirror_exactly(void)
{
    float base[N], out[N];
    int bad = 0;
    run(NULL, 1, 0, base);
    T_CHECK(run("flip:p=1", 1, 0, out) == OC_OK, "flip");
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                bad += px(out, y, x, c) != px(base, y, W - 1 - x, c);
    T_CHECK(bad == 0, "horizontal flip: %d values differ", bad);
    T_CHECK(run("vflip:p=1", 1, 0, out) == OC_OK, "vflip");
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                bad += px(out, y, x, c) != px(base, H - 1 - y, x, c);
    T_CHECK(bad == 0, "vertical flip: %d values differ", bad);
    /* p=0.5 flips some samples and not others */
    {
        int flipped = 0;
        for (int s = 0; s < 64; s++) {
            run("flip", 9, s, out);
            flipped += memcmp(out, base, sizeof out) != 0;
        }
        T_CHECK(flipped > 16 && flipped < 48, "flip p=0.5 flipped %d of 64", flipped);
        oc_test_note("flip p=0.5: %d of 64 flipped", flipped);
    }
}

static void crop_is_a_padded_shift(void)
{
    float base[N], out[N];
    int shifted = 0;
    run(NULL, 1, 0, base);
    for (int s = 0; s < 20; s++) {
        int found = 0;
        run("crop:pad=3", 4, s, out);
        for (int dy = -3; dy <= 3 && !found; dy++)
            for (int dx = -3; dx <= 3 && !found; dx++) {
                int ok = 1;
                for (int y = 0; y < H && ok; y++)
                    for (int x = 0; x < W && ok; x++)
                        for (int c = 0; c < C; c++) {
                            int sy = y + dy, sx = x + dx;
                            float want = sy < 0 || sy >= H || sx < 0 || sx >= W
                                             ? 0.0f : px(base, sy, sx, c);
                            if (px(out, y, x, c) != want) {
                                ok = 0;
                                break;
                            }
                        }
                if (ok) {
                    found = 1;
                    shifted += dy != 0 || dx != 0;
                }
            }
        T_CHECK(found, "sample %d is not a zero-padded shift of at most 3", s);
    }
    T_CHECK(shifted >= 10, "only %d of 20 crops moved", shifted);
}

static void geometric_and_color_ops_change_images_in_range(void)
{
    float base[N], out[N];
    static const char *const ops[] = {"rotate:30", "scale:0.7-1.3", "color:0.5"};
    run(NULL, 1, 0, base);
    for (size_t k = 0; k < 3; k++) {
        double diff = 0;
        int inrange = 1;
        T_CHECK(run(ops[k], 2, 1, out) == OC_OK, "%s: %s", ops[k], oc_last_error());
        for (int i = 0; i < N; i++) {
            diff += fabs((double)out[i] - (double)base[i]);
            inrange &= out[i] >= 0 && out[i] <= 255 && out[i] == floorf(out[i]);
        }
        T_CHECK(diff > 0, "%s left the image unchanged", ops[k]);
        T_CHECK(inrange, "%s produced values outside 0..255 or fractional", ops[k]);
        oc_test_note("%s: mean |change| %.2f", ops[k], diff / N);
    }
}

static void cutout_zeroes_one_square(void)
{
    float base[N], out[N];
    run(NULL, 1, 0, base);
    for (int s = 0; s < 10; s++) {
        int zeros = 0, changed = 0, y0 = H, y1 = -1, x0 = W, x1 = -1;
        run("cutout:4", 3, s, out);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int z = 1;
                for (int c = 0; c < C; c++) {
                    z &= px(out, y, x, c) == 0.0f;
                    changed += px(out, y, x, c) != px(base, y, x, c) && px(out, y, x, c) != 0.0f;
                }
                if (z) {
                    zeros++;
                    y0 = y < y0 ? y : y0;
                    y1 = y > y1 ? y : y1;
                    x0 = x < x0 ? x : x0;
                    x1 = x > x1 ? x : x1;
                }
            }
        T_CHECK(changed == 0, "cutout changed pixels outside its square");
        T_CHECK(zeros >= 4 && zeros <= 16 && zeros == (y1 - y0 + 1) * (x1 - x0 + 1),
                "sample %d: %d zero pixels, box %dx%d", s, zeros, y1 - y0 + 1, x1 - x0 + 1);
    }
}

static void same_seed_same_bytes(void)
{
    const char *spec = "crop:pad=2:mode=reflect,flip,rotate:20,scale:0.8-1.2,color:0.3,cutout:3";
    float a[N], b[N], c[N], d[N];
    T_CHECK(run(spec, 77, 5, a) == OC_OK && run(spec, 77, 5, b) == OC_OK, "run: %s",
            oc_last_error());
    T_CHECK(!memcmp(a, b, sizeof a), "same (seed, epoch, index) gave different bytes");
    run(spec, 78, 5, c);
    run(spec, 77, 6, d);
    T_CHECK(memcmp(a, c, sizeof a) != 0, "a different seed gave the same sample");
    T_CHECK(memcmp(a, d, sizeof a) != 0, "a different sample index gave the same sample");
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"parser_rejects_bad_specs", parser_rejects_bad_specs},
        {"identities", identities},
        {"flips_mirror_exactly", flips_mirror_exactly},
        {"crop_is_a_padded_shift", crop_is_a_padded_shift},
        {"geometric_and_color_ops_change_images_in_range",
         geometric_and_color_ops_change_images_in_range},
        {"cutout_zeroes_one_square", cutout_zeroes_one_square},
        {"same_seed_same_bytes", same_seed_same_bytes},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
