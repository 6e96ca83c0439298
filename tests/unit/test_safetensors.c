/* io: the safetensors container (round trips, the corruption matrix) and atomic writes. */
#include "test.h"
#include "core/core.h"
#include "io/io.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static int make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/oc_st_test_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        T_CHECK(0, "mkdtemp: %s", strerror(errno));
        return 0;
    }
    return 1;
}

/* Number of leftover temporary files (".tmp.") in tmpdir. */
static int count_temp_files(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void remove_tmpdir(void)
{
    oc_test_remove_dir(tmpdir);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f)
        return 0;
    ok = fwrite(buf, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* ---------------------------------------------------------------- a reference file */

enum { N_REF = 8 };
static float ref_f32[15];
static uint16_t ref_bf16[7];
static int8_t ref_i8[18];
static uint8_t ref_u8[5];
static int32_t ref_i32[4];
static int64_t ref_i64[4];
static float ref_scalar[1];

static void ref_tensors(oc_st_tensor *t)
{
    oc_rng r;
    oc_rng_seed(&r, 7, 0);
    for (int i = 0; i < 15; i++)
        ref_f32[i] = oc_rng_normal(&r);
    for (int i = 0; i < 7; i++)
        ref_bf16[i] = (uint16_t)oc_rng_u64(&r);
    for (int i = 0; i < 18; i++)
        ref_i8[i] = (int8_t)(oc_rng_u64(&r) & 0xff);
    for (int i = 0; i < 5; i++)
        ref_u8[i] = (uint8_t)(200 + i);
    for (int i = 0; i < 4; i++)
        ref_i32[i] = -1000000 * (i + 1);
    for (int i = 0; i < 4; i++)
        ref_i64[i] = INT64_C(1) << (40 + i);
    ref_scalar[0] = 3.25f;
    memset(t, 0, sizeof *t * N_REF);
    /* deliberately listed with small element sizes first: the writer reorders for alignment */
    t[0] = (oc_st_tensor){.name = "bytes.u8", .dtype = OC_ST_U8, .ndim = 1, .shape = {5},
                          .data = ref_u8};
    t[1] = (oc_st_tensor){.name = "conv.weight", .dtype = OC_ST_F32, .ndim = 2, .shape = {3, 5},
                          .data = ref_f32};
    t[2] = (oc_st_tensor){.name = "half", .dtype = OC_ST_BF16, .ndim = 1, .shape = {7},
                          .data = ref_bf16};
    t[3] = (oc_st_tensor){.name = "q.i8", .dtype = OC_ST_I8, .ndim = 3, .shape = {2, 3, 3},
                          .data = ref_i8};
    t[4] = (oc_st_tensor){.name = "ints", .dtype = OC_ST_I32, .ndim = 2, .shape = {2, 2},
                          .data = ref_i32};
    t[5] = (oc_st_tensor){.name = "longs", .dtype = OC_ST_I64, .ndim = 1, .shape = {4},
                          .data = ref_i64};
    t[6] = (oc_st_tensor){.name = "scalar", .dtype = OC_ST_F32, .ndim = 0, .data = ref_scalar};
    t[7] = (oc_st_tensor){.name = "empty", .dtype = OC_ST_F32, .ndim = 2, .shape = {0, 4},
                          .data = NULL};
}

static const oc_st_meta ref_meta[] = {
    {"format", "test"},
    {"json", "{\"a\": [1, 2, \"x\\\"y\"], \"b\": null}"},
    {"unicode", "caf\xc3\xa9 \xe7\x8c\xab\n\ttab"},
    {"empty", ""},
};
enum { N_REF_META = 4 };

/* Writes the reference file to tmpdir/<name> and returns its bytes. */
static unsigned char *ref_file(const char *name, size_t *len)
{
    oc_st_tensor t[N_REF];
    char path[256];
    ref_tensors(t);
    tmp_path(path, sizeof path, name);
    if (oc_st_write(path, t, N_REF, ref_meta, N_REF_META) != OC_OK) {
        T_CHECK(0, "write: %s", oc_last_error());
        return NULL;
    }
    return read_file(path, len);
}

static uint64_t header_len(const unsigned char *buf)
{
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)buf[i] << (8 * i);
    return n;
}

static void check_ref_contents(const oc_st_file *f, const char *how)
{
    oc_st_tensor want[N_REF];
    ref_tensors(want);
    T_CHECK(oc_st_num_tensors(f) == N_REF, "%s: %d tensors", how, oc_st_num_tensors(f));
    for (int i = 0; i < N_REF; i++) {
        const oc_st_tensor *g = oc_st_find(f, want[i].name);
        size_t nb = oc_st_dtype_size(want[i].dtype);
        if (!g) {
            T_CHECK(0, "%s: tensor '%s' missing", how, want[i].name);
            continue;
        }
        for (int d = 0; d < want[i].ndim; d++)
            nb *= (size_t)want[i].shape[d];
        T_CHECK(g->dtype == want[i].dtype, "%s: '%s' dtype %d", how, g->name, (int)g->dtype);
        T_CHECK(g->ndim == want[i].ndim, "%s: '%s' ndim %d", how, g->name, g->ndim);
        for (int d = 0; d < want[i].ndim && d < g->ndim; d++)
            T_CHECK(g->shape[d] == want[i].shape[d], "%s: '%s' dim %d = %lld", how, g->name, d,
                    (long long)g->shape[d]);
        T_CHECK(g->nbytes == nb, "%s: '%s' nbytes %zu want %zu", how, g->name, g->nbytes, nb);
        if (nb)
            T_CHECK(g->nbytes == nb && memcmp(g->data, want[i].data, nb) == 0,
                    "%s: '%s' data differs", how, g->name);
        T_CHECK((uintptr_t)g->data % oc_st_dtype_size(g->dtype) == 0, "%s: '%s' misaligned", how,
                g->name);
    }
    T_CHECK(oc_st_num_meta(f) == N_REF_META, "%s: %d metadata entries", how, oc_st_num_meta(f));
    for (int i = 0; i < N_REF_META; i++) {
        const char *v = oc_st_meta_get(f, ref_meta[i].key);
        T_CHECK(v && !strcmp(v, ref_meta[i].value), "%s: metadata '%s' = '%s'", how,
                ref_meta[i].key, v ? v : "(missing)");
    }
    T_CHECK(oc_st_meta_get(f, "nope") == NULL, "%s: absent key found", how);
    T_CHECK(oc_st_find(f, "nope") == NULL, "%s: absent tensor found", how);
}

static void round_trip_dtypes_shapes_metadata(void)
{
    size_t len = 0;
    unsigned char *buf;
    oc_st_file *f = NULL;
    char path[256];
    uint64_t n;
    size_t data_bytes = 0;

    if (!make_tmpdir())
        return;
    buf = ref_file("ref.safetensors", &len);
    if (!buf)
        goto cleanup;
    n = header_len(buf);
    T_CHECK((8 + n) % 64 == 0, "data section starts at %llu, not 64-aligned",
            (unsigned long long)(8 + n));
    T_CHECK(buf[8] == '{', "header does not start with '{'");
    tmp_path(path, sizeof path, "ref.safetensors");
    T_CHECK(oc_st_open(path, &f) == OC_OK, "open: %s", oc_last_error());
    if (f) {
        check_ref_contents(f, "mmap");
        /* data order, packed without gaps (the reference reader rejects gaps) */
        for (int i = 0; i < oc_st_num_tensors(f); i++) {
            const oc_st_tensor *t = oc_st_tensor_at(f, i);
            T_CHECK((const unsigned char *)t->data == (const unsigned char *)oc_st_tensor_at(f, 0)->data + data_bytes ||
                        t->nbytes == 0,
                    "tensor %d ('%s') not packed after the previous one", i, t->name);
            data_bytes += t->nbytes;
        }
        T_CHECK(8 + n + data_bytes == len, "file %zu bytes, header+data %llu", len,
                (unsigned long long)(8 + n + data_bytes));
        oc_st_close(f);
        f = NULL;
    }
    /* the same from memory, in an exactly sized heap buffer (ASan sees any overread) */
    {
        unsigned char *exact = malloc(len);
        memcpy(exact, buf, len);
        T_CHECK(oc_st_open_memory(exact, len, "mem", &f) == OC_OK, "open_memory: %s",
                oc_last_error());
        if (f)
            check_ref_contents(f, "memory");
        oc_st_close(f);
        f = NULL;
        /* misaligned source buffer: data comes back aligned (copied) and equal */
        unsigned char *shifted = malloc(len + 1);
        memcpy(shifted + 1, buf, len);
        T_CHECK(oc_st_open_memory(shifted + 1, len, "shifted", &f) == OC_OK, "shifted: %s",
                oc_last_error());
        if (f)
            check_ref_contents(f, "misaligned buffer");
        oc_st_close(f);
        free(shifted);
        free(exact);
    }
    oc_test_note("file %zu bytes, header %llu bytes (padded), %d tensors", len,
                 (unsigned long long)n, N_REF);
cleanup:
    free(buf);
    remove_tmpdir();
}

static void writer_rejects_bad_input(void)
{
    float x[2] = {1, 2};
    oc_st_tensor t[2] = {
        {.name = "a", .dtype = OC_ST_F32, .ndim = 1, .shape = {2}, .data = x},
        {.name = "a", .dtype = OC_ST_F32, .ndim = 1, .shape = {2}, .data = x},
    };
    oc_st_meta m[2] = {{"k", "v"}, {"k", "w"}};
    char path[256];
    if (!make_tmpdir())
        return;
    tmp_path(path, sizeof path, "w.safetensors");
    T_CHECK(oc_st_write(path, t, 2, NULL, 0) == OC_ERR_ARG, "duplicate name accepted");
    T_CHECK(strstr(oc_last_error(), "duplicate") != NULL, "message: %s", oc_last_error());
    T_CHECK(oc_st_write(path, t, 1, m, 2) == OC_ERR_ARG, "duplicate metadata key accepted");
    t[1].name = "__metadata__";
    T_CHECK(oc_st_write(path, t, 2, NULL, 0) == OC_ERR_ARG, "__metadata__ as a tensor name");
    t[1].name = "b";
    t[1].shape[0] = -2;
    T_CHECK(oc_st_write(path, t, 2, NULL, 0) == OC_ERR_ARG, "negative dim accepted");
    T_CHECK(access(path, F_OK) != 0, "a failed write left a file");
    T_CHECK(count_temp_files() == 0, "temporary files left");
    remove_tmpdir();
}

/* ---------------------------------------------------------------- the corruption matrix */

/* Expects `buf` to be rejected with OC_ERR_FORMAT and a message containing every one of the
 * `want` substrings (NULL-terminated), both through a file (mmap) and from an exactly sized
 * heap copy. */
static void expect_bad_v(const char *label, const void *buf, size_t len, const char *const *want)
{
    char path[256];
    oc_st_file *f = NULL;
    oc_status st;
    void *exact;

    tmp_path(path, sizeof path, "bad.safetensors");
    if (!write_file(path, buf, len)) {
        T_CHECK(0, "%s: cannot write the test file", label);
        return;
    }
    st = oc_st_open(path, &f);
    T_CHECK(st == OC_ERR_FORMAT, "%s: open returned %s (%s)", label, oc_status_name(st),
            oc_last_error());
    T_CHECK(f == NULL, "%s: output not NULL on failure", label);
    oc_st_close(f);
    for (int i = 0; want[i]; i++)
        T_CHECK(strstr(oc_last_error(), want[i]) != NULL, "%s: message lacks '%s': %s", label,
                want[i], oc_last_error());
    T_CHECK(strstr(oc_last_error(), path) != NULL, "%s: message does not name the file: %s",
            label, oc_last_error());

    exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    f = NULL;
    st = oc_st_open_memory(exact, len, "mem", &f);
    T_CHECK(st == OC_ERR_FORMAT, "%s (memory): returned %s", label, oc_status_name(st));
    oc_st_close(f);
    free(exact);
}

#define EXPECT_BAD(label, buf, len, ...)                                                          \
    do {                                                                                          \
        const char *const want_[] = {__VA_ARGS__, NULL};                                          \
        expect_bad_v(label, buf, len, want_);                                                     \
    } while (0)

/* A file from a header text and `data_len` bytes of data; `len_field` overrides the length
 * prefix when non-zero. */
static unsigned char *craft(const char *json, size_t data_len, uint64_t len_field, size_t *len)
{
    size_t n = strlen(json);
    unsigned char *buf = calloc(8 + n + data_len + 1, 1);
    uint64_t h = len_field ? len_field : n;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(h >> (8 * i));
    memcpy(buf + 8, json, n);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + n + i] = (unsigned char)i;
    *len = 8 + n + data_len;
    return buf;
}

#define BAD_JSON(label, json, data_len, ...)                                                      \
    do {                                                                                          \
        size_t l_;                                                                                \
        unsigned char *b_ = craft(json, data_len, 0, &l_);                                        \
        EXPECT_BAD(label, b_, l_, __VA_ARGS__);                                                   \
        free(b_);                                                                                 \
    } while (0)

static void truncated_files_rejected(void)
{
    size_t len = 0, cuts[16];
    unsigned char *buf;
    uint64_t n;
    int k = 0;
    if (!make_tmpdir())
        return;
    buf = ref_file("ref.safetensors", &len);
    if (!buf)
        goto cleanup;
    n = header_len(buf);
    /* inside the length prefix */
    cuts[k++] = 0;
    cuts[k++] = 1;
    cuts[k++] = 4;
    cuts[k++] = 7;
    /* inside the header */
    cuts[k++] = 8;
    cuts[k++] = 9;
    cuts[k++] = 8 + (size_t)n / 3;
    cuts[k++] = 8 + (size_t)n / 2;
    cuts[k++] = 8 + (size_t)n - 20;
    cuts[k++] = 8 + (size_t)n - 1;
    /* inside the data */
    cuts[k++] = 8 + (size_t)n;
    cuts[k++] = 8 + (size_t)n + 1;
    cuts[k++] = 8 + (size_t)n + 31;
    cuts[k++] = 8 + (size_t)n + (len - 8 - (size_t)n) / 2;
    cuts[k++] = len - 9;
    cuts[k++] = len - 1;
    for (int i = 0; i < k; i++) {
        char label[64];
        const char *where = cuts[i] < 8 ? "too short" : cuts[i] < 8 + n ? "past the end of the file"
                                                                        : "past the end of the data";
        snprintf(label, sizeof label, "cut at %zu of %zu", cuts[i], len);
        EXPECT_BAD(label, buf, cuts[i], "truncated", where);
    }
    oc_test_note("%d truncation points rejected; last message: %s", k, oc_last_error());
cleanup:
    free(buf);
    remove_tmpdir();
}

static void bad_headers_rejected(void)
{
    size_t len;
    unsigned char *b;
    if (!make_tmpdir())
        return;

    /* length prefix */
    b = craft("{}", 0, 1000, &len);
    EXPECT_BAD("length > file", b, len, "header length 1000", "past the end");
    free(b);
    b = craft("{}", 0, UINT64_C(1) << 63, &len);
    EXPECT_BAD("absurd length", b, len, "absurd");
    free(b);

    /* JSON syntax and type */
    BAD_JSON("empty header", " ", 0, "not valid JSON");
    BAD_JSON("not JSON", "{\"a\": {\"dtype\": ", 0, "not valid JSON");
    BAD_JSON("garbage bytes", "\x01\xff\xfe\x80garbage", 0, "not valid JSON");
    BAD_JSON("trailing garbage", "{}  x", 0, "garbage after");
    BAD_JSON("array header", "[1, 2]", 0, "not a JSON object");
    BAD_JSON("string header", "\"hello\"", 0, "not a JSON object");

    /* tensor entries */
    BAD_JSON("entry not object", "{\"w\": 3}", 0, "'w'", "not an object");
    BAD_JSON("missing dtype", "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'w'",
             "dtype");
    BAD_JSON("unknown dtype", "{\"w\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}",
             4, "'w'", "unknown dtype 'F16'");
    BAD_JSON("wrong dtype for size",
             "{\"w\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "'w'",
             "holds 8 bytes", "needs 16");
    BAD_JSON("shape not list", "{\"w\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}",
             16, "'w'", "shape", "not a list");
    BAD_JSON("negative dim",
             "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -3], \"data_offsets\": [0, 8]}}", 8,
             "'w'", "non-negative", "negative");
    BAD_JSON("fractional dim",
             "{\"w\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", 8, "'w'",
             "not an integer");
    BAD_JSON("string dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}",
             8, "'w'", "not an integer");
    BAD_JSON("product overflow",
             "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], "
             "\"data_offsets\": [0, 8]}}",
             8, "'w'", "overflow");
    BAD_JSON("huge dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 8]}}",
             8, "'w'", "shape");
    BAD_JSON("too many dims",
             "{\"w\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}",
             1, "'w'", "9 dimensions");
    BAD_JSON("offsets missing", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "'w'",
             "data_offsets");
    BAD_JSON("offsets one value",
             "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4]}}", 4, "'w'",
             "data_offsets must be [begin, end]");
    BAD_JSON("offsets negative",
             "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4, "'w'",
             "data_offsets");
    BAD_JSON("offsets reversed",
             "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8, "'w'",
             "begin > end");
    BAD_JSON("offsets past end",
             "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 12, "'w'",
             "past the end of the data section");
    BAD_JSON("offsets far past end",
             "{\"w\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [9007199254740000, "
             "9007199254740004]}}",
             12, "'w'", "past the end");
    BAD_JSON("overlapping tensors",
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
             12, "overlap", "'a'", "'b'");
    BAD_JSON("contained tensor",
             "{\"a\": {\"dtype\": \"U8\", \"shape\": [12], \"data_offsets\": [0, 12]},"
             " \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [4, 6]}}",
             12, "overlap");
    BAD_JSON("duplicate names",
             "{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]},"
             " \"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [2, 4]}}",
             4, "duplicate tensor name 'a'");

    /* metadata */
    BAD_JSON("metadata number", "{\"__metadata__\": {\"format\": \"pt\", \"epochs\": 3}}", 0,
             "'epochs'", "not a string");
    BAD_JSON("metadata nested", "{\"__metadata__\": {\"x\": {\"y\": \"z\"}}}", 0, "'x'",
             "not a string");
    BAD_JSON("metadata not object", "{\"__metadata__\": [\"a\"]}", 0, "__metadata__",
             "not an object");
    BAD_JSON("duplicate metadata key", "{\"__metadata__\": {\"k\": \"a\", \"k\": \"b\"}}", 0,
             "duplicate metadata key 'k'");
    BAD_JSON("duplicate key among many",
             "{\"__metadata__\": {\"a\": \"1\", \"b\": \"2\", \"c\": \"3\", \"d\": \"4\", "
             "\"e\": \"5\", \"c\": \"6\"}}",
             0, "duplicate metadata key 'c'");

    /* and the same structures, valid, are accepted (so the cases above fail for their reason) */
    {
        oc_st_file *f = NULL;
        b = craft("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                  " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]},"
                  " \"e\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [4, 4]},"
                  " \"__metadata__\": {\"k\": \"v\"}}   ",
                  12, 0, &len);
        T_CHECK(oc_st_open_memory(b, len, "valid", &f) == OC_OK, "valid crafted file rejected: %s",
                oc_last_error());
        if (f) {
            T_CHECK(oc_st_num_tensors(f) == 3, "tensors %d", oc_st_num_tensors(f));
            T_CHECK(oc_st_find(f, "b") && ((const unsigned char *)oc_st_find(f, "b")->data)[0] == 8,
                    "tensor b data");
            T_CHECK(oc_st_meta_get(f, "k") && !strcmp(oc_st_meta_get(f, "k"), "v"), "meta");
        }
        oc_st_close(f);
        free(b);
    }
    remove_tmpdir();
}

/* Replace byte(s) of the header at chosen places: each must give a clear FORMAT error. */
static void flipped_header_bytes_rejected(void)
{
    size_t len = 0;
    unsigned char *buf, *b;
    char *hdr;
    uint64_t n;
    struct {
        const char *find; /* first occurrence in the header */
        int at;           /* offset of the byte to replace within the match */
        char with;
        const char *want;
    } cases[] = {
        {"{", 0, 'X', "not valid JSON"},
        {"{", 0, '[', "not valid JSON"},
        {"\"F32\"", 1, 'G', "unknown dtype 'G32'"},
        {"\"I64\"", 1, 'U', "unknown dtype 'U64'"},
        {"\"shape\":[3,5]", 9, '-', "not valid JSON"},
        {"\"shape\":[3,5]", 11, '7', "F32 shape [3, 7] needs 84"},
        {"\"data_offsets\":[", 15, '{', "not valid JSON"},
        {"\"data_offsets\":[", 0, '\'', "not valid JSON"},
        {"\"__metadata__\":{", 15, '[', "not valid JSON"},
        {"\"format\":\"test\"", 9, '7', "not valid JSON"},
        {"\"format\":\"test\"", 8, '1', "not valid JSON"},
    };
    if (!make_tmpdir())
        return;
    buf = ref_file("ref.safetensors", &len);
    if (!buf)
        goto cleanup;
    n = header_len(buf);
    hdr = calloc((size_t)n + 1, 1);
    memcpy(hdr, buf + 8, (size_t)n);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = strstr(hdr, cases[i].find);
        char label[96];
        if (!p) {
            T_CHECK(0, "header lacks '%s': %s", cases[i].find, hdr);
            continue;
        }
        b = malloc(len);
        memcpy(b, buf, len);
        b[8 + (size_t)(p - hdr) + (size_t)cases[i].at] = (unsigned char)cases[i].with;
        snprintf(label, sizeof label, "'%s'[%d] -> '%c'", cases[i].find, cases[i].at,
                 cases[i].with);
        EXPECT_BAD(label, b, len, cases[i].want);
        free(b);
    }
    free(hdr);
cleanup:
    free(buf);
    remove_tmpdir();
}

/* Random damage to the length prefix and header: every result is OC_OK or OC_ERR_FORMAT, never
 * a crash or an out-of-bounds read (ASan), and an accepted file only points inside itself. */
static void random_garbage_never_crashes(void)
{
    size_t len = 0;
    unsigned char *buf;
    uint64_t n;
    oc_rng r;
    int rejected = 0, accepted = 0, iters = 400;
    if (!make_tmpdir())
        return;
    buf = ref_file("ref.safetensors", &len);
    if (!buf)
        goto cleanup;
    n = header_len(buf);
    oc_rng_seed(&r, 1234, 0);
    for (int it = 0; it < iters; it++) {
        unsigned char *b = malloc(len);
        oc_st_file *f = NULL;
        oc_status st;
        int flips = 1 + (int)oc_rng_below(&r, 4);
        memcpy(b, buf, len);
        for (int k = 0; k < flips; k++) {
            size_t pos = (size_t)oc_rng_below(&r, 8 + n);
            if (it % 2)
                b[pos] ^= (unsigned char)(1u << oc_rng_below(&r, 8));
            else
                b[pos] = (unsigned char)oc_rng_u64(&r);
        }
        st = oc_st_open_memory(b, len, "fuzz", &f);
        T_CHECK(st == OC_OK || st == OC_ERR_FORMAT, "iteration %d: status %s (%s)", it,
                oc_status_name(st), oc_last_error());
        if (st == OC_OK) {
            accepted++;
            for (int i = 0; i < oc_st_num_tensors(f); i++) {
                const oc_st_tensor *t = oc_st_tensor_at(f, i);
                volatile unsigned char sink = 0;
                for (size_t j = 0; j < t->nbytes; j++)
                    sink ^= ((const unsigned char *)t->data)[j];
                (void)sink;
            }
        } else {
            rejected++;
            T_CHECK(strlen(oc_last_error()) > 10, "iteration %d: empty message", it);
        }
        oc_st_close(f);
        free(b);
    }
    /* whole files of noise */
    for (int it = 0; it < 50; it++) {
        size_t l = (size_t)oc_rng_below(&r, 300);
        unsigned char *b = malloc(l + 1);
        oc_st_file *f = NULL;
        for (size_t i = 0; i < l; i++)
            b[i] = (unsigned char)oc_rng_u64(&r);
        if (it % 3 == 0 && l >= 8) { /* a plausible length prefix over noise */
            uint64_t h = l - 8 - oc_rng_below(&r, l - 7);
            for (int i = 0; i < 8; i++)
                b[i] = (unsigned char)(h >> (8 * i));
        }
        T_CHECK(oc_st_open_memory(b, l, "noise", &f) == OC_ERR_FORMAT, "noise %d accepted", it);
        oc_st_close(f);
        free(b);
    }
    T_CHECK(rejected > iters / 2, "only %d of %d damaged headers rejected", rejected, iters);
    oc_test_note("damaged headers: %d rejected, %d still valid (e.g. a changed name)", rejected,
                 accepted);
cleanup:
    free(buf);
    remove_tmpdir();
}

/* ---------------------------------------------------------------- atomic writes */

typedef struct {
    int fail_after;
} failing_ctx;

static oc_status write_then_fail(void *ctx, void *file)
{
    failing_ctx *c = ctx;
    fputs("partial new content", file);
    if (c->fail_after)
        return oc_fail(OC_ERR_IO, "simulated failure");
    return OC_OK;
}

static int file_equals(const char *path, const unsigned char *want, size_t n)
{
    size_t len = 0;
    unsigned char *b = read_file(path, &len);
    int eq = b && len == n && memcmp(b, want, n) == 0;
    free(b);
    return eq;
}

static void atomic_write_keeps_old_file_on_failure(void)
{
    size_t len = 0;
    unsigned char *old;
    char path[256], missing[256];
    float big[4096];
    oc_st_tensor t = {.name = "big", .dtype = OC_ST_F32, .ndim = 1, .shape = {4096}, .data = big};
    failing_ctx fc = {1};
    struct rlimit saved, lim;

    if (!make_tmpdir())
        return;
    memset(big, 0, sizeof big);
    old = ref_file("model.safetensors", &len);
    if (!old)
        goto cleanup;
    tmp_path(path, sizeof path, "model.safetensors");

    /* 1. the content callback fails half-way */
    T_CHECK(oc_atomic_write(path, write_then_fail, &fc) == OC_ERR_IO, "failure not reported");
    T_CHECK(strstr(oc_last_error(), "simulated failure") && strstr(oc_last_error(), path),
            "message: %s", oc_last_error());
    T_CHECK(file_equals(path, old, len), "old file changed after a failed write");
    T_CHECK(count_temp_files() == 0, "temporary file left after a failed write");

    /* 2. the disk "fills up": a file-size limit makes fwrite fail (works as root, unlike a
     *    read-only directory) */
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = 4096;
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        oc_status st = oc_st_write(path, &t, 1, NULL, 0);
        setrlimit(RLIMIT_FSIZE, &saved);
        T_CHECK(st == OC_ERR_IO, "write past the size limit returned %s", oc_status_name(st));
        T_CHECK(strstr(oc_last_error(), path) != NULL, "message lacks the path: %s",
                oc_last_error());
        oc_test_note("size-limited write: %s", oc_last_error());
        T_CHECK(file_equals(path, old, len), "old file changed after a failed write");
        T_CHECK(count_temp_files() == 0, "temporary file left after a failed write");
    } else {
        T_CHECK(0, "setrlimit: %s", strerror(errno));
    }
    signal(SIGXFSZ, SIG_DFL);

    /* 3. the directory does not exist */
    tmp_path(missing, sizeof missing, "no/such/dir/model.safetensors");
    T_CHECK(oc_st_write(missing, &t, 1, NULL, 0) == OC_ERR_IO, "missing directory accepted");
    T_CHECK(strstr(oc_last_error(), "no/such/dir") != NULL, "message: %s", oc_last_error());

    /* 4. a directory that is not writable (only meaningful when not root) */
    if (geteuid() != 0) {
        chmod(tmpdir, 0555);
        T_CHECK(oc_st_write(path, &t, 1, NULL, 0) == OC_ERR_IO, "read-only directory accepted");
        chmod(tmpdir, 0755);
        T_CHECK(file_equals(path, old, len), "old file changed after a failed write");
    }

    /* and a successful write replaces the file completely */
    T_CHECK(oc_st_write(path, &t, 1, NULL, 0) == OC_OK, "write: %s", oc_last_error());
    {
        oc_st_file *f = NULL;
        T_CHECK(oc_st_open(path, &f) == OC_OK && oc_st_num_tensors(f) == 1 &&
                    oc_st_num_meta(f) == 0,
                "new file not in place: %s", oc_last_error());
        oc_st_close(f);
        struct stat sb;
        T_CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "mode %o",
                (unsigned)(sb.st_mode & 0777));
    }
    T_CHECK(count_temp_files() == 0, "temporary file left after a write");
cleanup:
    free(old);
    remove_tmpdir();
}

static void open_reports_io_errors(void)
{
    oc_st_file *f = NULL;
    T_CHECK(oc_st_open("/nonexistent/dir/model.safetensors", &f) == OC_ERR_IO, "missing file");
    T_CHECK(strstr(oc_last_error(), "No such file") != NULL, "message: %s", oc_last_error());
    T_CHECK(oc_st_open("/tmp", &f) == OC_ERR_IO, "directory opened");
    T_CHECK(strstr(oc_last_error(), "not a regular file") != NULL, "message: %s", oc_last_error());
    T_CHECK(f == NULL, "output set on failure");
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"round_trip_dtypes_shapes_metadata", round_trip_dtypes_shapes_metadata},
        {"writer_rejects_bad_input", writer_rejects_bad_input},
        {"truncated_files_rejected", truncated_files_rejected},
        {"bad_headers_rejected", bad_headers_rejected},
        {"flipped_header_bytes_rejected", flipped_header_bytes_rejected},
        {"random_garbage_never_crashes", random_garbage_never_crashes},
        {"atomic_write_keeps_old_file_on_failure", atomic_write_keeps_old_file_on_failure},
        {"open_reports_io_errors", open_reports_io_errors},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
