/* main.c - the command-line harness of snncc's C target (the same file for every model;
 * the model is model.c/model.h).
 *
 * usage: snncc_model INPUT OUTPUT [--probe]
 *
 * Runs every sample of INPUT from the reset state for T steps and writes OUTPUT.
 * All integers are little-endian.
 *   INPUT:  "SNNI", u32 N, u32 T, u32 size (= SNNCC_INPUT_SIZE), then N*T*size int32
 *           values, sample-major then step-major (an (N, T, *input_shape) array).
 *   OUTPUT: "SNNO", u32 version (1), u32 N, u32 T, u32 probe flag, u32 bytes per step,
 *           then for every sample and step the probes of model.c in table order (state
 *           probes "name/v", "name/u" only with --probe), each value in the width of
 *           its buffer type (1, 2, 4 or 8 bytes, two's complement); c_manifest.json
 *           lists the probes with their shapes and dtypes.
 * Exit status: 0 on success, 2 on a usage or file error. */
#include <stdio.h>
#include <string.h>

#include "model.h"

static int32_t x_step[SNNCC_INPUT_SIZE];
static uint8_t raw_step[4 * SNNCC_INPUT_SIZE];
static uint8_t out_step[SNNCC_STEP_BYTES]; /* one step of probes, written with one fwrite */

static int fail(const char *msg, const char *arg)
{
    fprintf(stderr, "snncc_model: %s%s\n", msg, arg);
    return 2;
}

static int read_u32(FILE *f, uint32_t *v)
{
    uint8_t b[4];
    if (fread(b, 1, 4, f) != 4)
        return 0;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

static void write_le(FILE *f, uint64_t v, int nbytes)
{
    int k;
    for (k = 0; k < nbytes; k++)
        fputc((int)((v >> (8 * k)) & 0xffu), f);
}

int main(int argc, char **argv)
{
    const snn_model_t *m = &snncc_model;
    uint32_t n, t_steps, size, s, t, i;
    uint64_t step_bytes = 0, nbytes;
    int32_t k, probe;
    char magic[4];
    FILE *in, *out;
    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "--probe") != 0))
        return fail("usage: snncc_model INPUT OUTPUT [--probe]", "");
    probe = argc == 4;
    in = fopen(argv[1], "rb");
    if (in == NULL)
        return fail("cannot open input file ", argv[1]);
    if (fread(magic, 1, 4, in) != 4 || memcmp(magic, "SNNI", 4) != 0 || !read_u32(in, &n) ||
        !read_u32(in, &t_steps) || !read_u32(in, &size))
        return fail("not an snncc input file: ", argv[1]);
    if (size != SNNCC_INPUT_SIZE)
        return fail("input size per step does not match the model's input in ", argv[1]);
    out = fopen(argv[2], "wb");
    if (out == NULL)
        return fail("cannot open output file ", argv[2]);
    for (k = 0; k < m->n_probes; k++)
        if (probe || !m->probes[k].state)
            step_bytes += (uint64_t)m->probes[k].t->n * (uint64_t)snn_type_size(m->probes[k].t->type);
    fwrite("SNNO", 1, 4, out);
    write_le(out, 1, 4);
    write_le(out, n, 4);
    write_le(out, t_steps, 4);
    write_le(out, (uint64_t)probe, 4);
    write_le(out, step_bytes, 4);
    for (s = 0; s < n; s++) {
        snncc_reset(m);
        for (t = 0; t < t_steps; t++) {
            if (fread(raw_step, 4, SNNCC_INPUT_SIZE, in) != SNNCC_INPUT_SIZE)
                return fail("input file is truncated: ", argv[1]);
            for (i = 0; i < SNNCC_INPUT_SIZE; i++)
                x_step[i] = (int32_t)((uint32_t)raw_step[4 * i] | (uint32_t)raw_step[4 * i + 1] << 8 |
                                      (uint32_t)raw_step[4 * i + 2] << 16 | (uint32_t)raw_step[4 * i + 3] << 24);
            snncc_set_input(m, x_step);
            snncc_step(m);
            nbytes = 0;
            for (k = 0; k < m->n_probes; k++)
                if (probe || !m->probes[k].state)
                    nbytes += (uint64_t)snn_write_le(m->probes[k].t, out_step + nbytes);
            if (fwrite(out_step, 1, (size_t)nbytes, out) != (size_t)nbytes)
                return fail("cannot write output file ", argv[2]);
        }
    }
    if (fclose(out) != 0)
        return fail("cannot write output file ", argv[2]);
    fclose(in);
    return 0;
}
