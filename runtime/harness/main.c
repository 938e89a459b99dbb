/* main.c - the command-line harness of snncc's C target (the same file for every model;
 * the model is model.c/model.h).  It runs on a host (stdio) and on the Cortex-M4 board
 * under QEMU (stdio through semihosting, built with -DSNNCC_BOARD).
 *
 * usage: snncc_model INPUT OUTPUT [--probe | --output-only]
 *
 * Runs every sample of INPUT from the reset state for T steps and writes OUTPUT.
 * All integers are little-endian.
 *   INPUT:  "SNNI", u32 N, u32 T, u32 size (= SNNCC_INPUT_SIZE), then N*T*size int32
 *           values, sample-major then step-major (an (N, T, *input_shape) array).
 *   OUTPUT: "SNNO", u32 version (2), u32 N, u32 T, u32 mode (0: spikes and outputs,
 *           1: --probe, also the state probes "name/v", "name/u", 2: --output-only, only
 *           the "output" probes), u32 bytes per step, then for every sample and step the
 *           selected probes of model.c in table order, each element in its probe's width
 *           (1, 2, 4 or 8 bytes, two's complement), in storage order (channel-last);
 *           c_manifest.json lists the probes with their shapes, dtypes and layouts.
 * A model on Lava's schedule with neurons of du = 4096 keeps their u (the step's current)
 * only for the state probes: --probe then needs the build with -DSNNCC_PROBE_STATE
 * (`make probe`: snncc_model_probe); the build without refuses it.
 * The harness streams: it never holds more than 256 values of a step, so that it fits
 * next to the model in a microcontroller's RAM.  With -DSNNCC_BOARD it also prints the
 * board counter's ticks spent in snncc_reset, snncc_set_input_range and snncc_step.
 * Exit status: 0 on success, 2 on a usage or file error. */
#include <stdio.h>
#include <string.h>

#include "model.h"

#define SNNCC_IO_CHUNK 256

#ifdef SNNCC_BOARD
uint32_t snncc_board_ticks(void); /* the board's free-running counter (startup_m4.c) */
#define TICK(v) ((v) = snncc_board_ticks())
#else
#define TICK(v) ((void)(v))
#endif

static int32_t x_chunk[SNNCC_IO_CHUNK];
static uint8_t io_buf[8 * SNNCC_IO_CHUNK];

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

static void write_u32(FILE *f, uint32_t v)
{
    int k;
    for (k = 0; k < 4; k++)
        fputc((int)((v >> (8 * k)) & 0xffu), f);
}

static int selected(const snn_probe_t *p, int mode)
{
    return mode == 2 ? strcmp(p->key, "output") == 0 : (mode == 1 || !p->state);
}

/* one step's input, read and stored SNNCC_IO_CHUNK values at a time */
static int read_step(FILE *in, uint32_t *ticks)
{
    int32_t i, k, m;
    uint32_t t0 = 0, t1 = 0;
    for (i = 0; i < SNNCC_INPUT_SIZE; i += m) {
        m = SNNCC_INPUT_SIZE - i < SNNCC_IO_CHUNK ? SNNCC_INPUT_SIZE - i : SNNCC_IO_CHUNK;
        if (fread(io_buf, 4, (size_t)m, in) != (size_t)m)
            return 0;
        for (k = 0; k < m; k++)
            x_chunk[k] = (int32_t)((uint32_t)io_buf[4 * k] | (uint32_t)io_buf[4 * k + 1] << 8 |
                                   (uint32_t)io_buf[4 * k + 2] << 16 | (uint32_t)io_buf[4 * k + 3] << 24);
        TICK(t0);
        snncc_set_input_range(&snncc_model, i, m, x_chunk);
        TICK(t1);
        *ticks += t1 - t0;
    }
    return 1;
}

static int write_step(FILE *out, int mode)
{
    const snn_model_t *m = &snncc_model;
    int32_t k, i, n;
    for (k = 0; k < m->n_probes; k++) {
        if (!selected(&m->probes[k], mode))
            continue;
        for (i = 0; i < m->probes[k].t->n; i += n) {
            size_t nbytes;
            n = m->probes[k].t->n - i < SNNCC_IO_CHUNK ? m->probes[k].t->n - i : SNNCC_IO_CHUNK;
            nbytes = (size_t)snn_write_probe(&m->probes[k], i, n, io_buf);
            if (fwrite(io_buf, 1, nbytes, out) != nbytes)
                return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    const snn_model_t *m = &snncc_model;
    uint32_t n, t_steps, size, s, t, ticks = 0, t0 = 0, t1 = 0;
    uint64_t step_bytes = 0;
    int32_t k;
    int mode = 0;
    char magic[4];
    FILE *in, *out;
    if (argc == 4 && strcmp(argv[3], "--probe") == 0)
        mode = 1;
    else if (argc == 4 && strcmp(argv[3], "--output-only") == 0)
        mode = 2;
    else if (argc != 3)
        return fail("usage: snncc_model INPUT OUTPUT [--probe | --output-only]", "");
#ifdef SNNCC_STATE_PROBES_OMITTED /* model.h: some state probes exist only with -DSNNCC_PROBE_STATE */
    if (mode == 1)
        return fail("--probe needs the state-probing build of this model: ", "make probe (-DSNNCC_PROBE_STATE)");
#endif
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
        if (selected(&m->probes[k], mode))
            step_bytes += (uint64_t)m->probes[k].t->n * (uint64_t)snn_type_size(m->probes[k].io);
    fwrite("SNNO", 1, 4, out);
    write_u32(out, 2);
    write_u32(out, n);
    write_u32(out, t_steps);
    write_u32(out, (uint32_t)mode);
    write_u32(out, (uint32_t)step_bytes);
    for (s = 0; s < n; s++) {
        TICK(t0);
        snncc_reset(m);
        TICK(t1);
        ticks += t1 - t0;
        for (t = 0; t < t_steps; t++) {
            if (!read_step(in, &ticks))
                return fail("input file is truncated: ", argv[1]);
            TICK(t0);
            snncc_step(m);
            TICK(t1);
            ticks += t1 - t0;
            if (!write_step(out, mode))
                return fail("cannot write output file ", argv[2]);
        }
    }
    if (fclose(out) != 0)
        return fail("cannot write output file ", argv[2]);
    fclose(in);
#ifdef SNNCC_BOARD
    printf("snncc_model: samples %lu steps %lu ticks %lu\n", (unsigned long)n, (unsigned long)t_steps,
           (unsigned long)ticks);
#endif
    return 0;
}
