/* snncc_rt.c - integer kernels and the layer-table driver (see snncc_rt.h).
 *
 * Each kernel names the reference function it reproduces (snncc/reference/kernels.py
 * or interpreter.py).  C99, no floats, no dynamic memory. */
#include "snncc_rt.h"

#ifdef SNNCC_CHECKED
#include <stdio.h>
#include <stdlib.h>
#endif

/* ------------------------------------------------------------------ element access */
int32_t snn_type_size(uint8_t type)
{
    return (int32_t)1 << type;
}

/* The hot helpers are static inline (ld, wget) so the kernels inline them; the
 * exported snn_* names wrap them for harnesses and unit tests. */
static inline int64_t ld(const snn_tensor_t *t, int32_t i)
{
    switch (t->type) {
    case SNN_I8: return ((const int8_t *)t->data)[i];
    case SNN_I16: return ((const int16_t *)t->data)[i];
    case SNN_I32: return ((const int32_t *)t->data)[i];
    default: return ((const int64_t *)t->data)[i];
    }
}

int64_t snn_ld(const snn_tensor_t *t, int32_t i)
{
    return ld(t, i);
}

void snn_st(const snn_tensor_t *t, int32_t i, int64_t v)
{
#ifdef SNNCC_CHECKED
    int32_t bits = 8 * snn_type_size(t->type);
    if (bits < 64 && (v < -((int64_t)1 << (bits - 1)) || v >= ((int64_t)1 << (bits - 1)))) {
        fprintf(stderr, "snncc: value %lld does not fit int%d_t\n", (long long)v, (int)bits);
        abort();
    }
#endif
    switch (t->type) {
    case SNN_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    case SNN_I16: ((int16_t *)t->data)[i] = (int16_t)v; break;
    case SNN_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    default: ((int64_t *)t->data)[i] = v; break;
    }
}

int64_t snn_vget(const snn_vec_t *v, int32_t ch)
{
    int32_t i = v->n == 1 ? 0 : ch;
    switch (v->type) {
    case SNN_I8: return ((const int8_t *)v->data)[i];
    case SNN_I16: return ((const int16_t *)v->data)[i];
    case SNN_I32: return ((const int32_t *)v->data)[i];
    default: return ((const int64_t *)v->data)[i];
    }
}

/* ---------------------------------------------------------------- scalar arithmetic */
/* Weight i of a packed array of `bits`-bit two's complement values (1 <= bits <= 32). */
static inline int32_t wget(const uint8_t *packed, uint32_t i, uint32_t bits)
{
    uint32_t bit, byte, sh, k;
    uint64_t raw;
    if (bits == 8)
        return (int32_t)packed[i] - (int32_t)((packed[i] & 0x80u) << 1);
    bit = i * bits;
    byte = bit >> 3;
    sh = bit & 7u;
    raw = packed[byte];
    for (k = 1; 8u * k < sh + bits; k++) /* the bytes the field spans (1..5) */
        raw |= (uint64_t)packed[byte + k] << (8u * k);
    raw = (raw >> sh) & (((uint64_t)1 << bits) - 1u);
    return (int32_t)((int64_t)raw - (int64_t)((raw >> (bits - 1u)) << bits)); /* sign-extend */
}

int32_t snn_wget(const uint8_t *packed, uint32_t i, uint32_t bits)
{
    return wget(packed, i, bits);
}

/* kernels.shift: x << e for e >= 0, arithmetic (floor) x >> -e otherwise. */
int64_t snn_shift(int64_t x, int32_t e)
{
    if (e >= 0)
        return x * ((int64_t)1 << e);
    if (x >= 0)
        return x >> -e;
    return -((-x - 1) >> -e) - 1; /* floor for negative x without a signed >> */
}

/* kernels.decay: sign(x (4096 - d)) (|x (4096 - d)| >> 12), rounding toward zero. */
int64_t snn_decay(int64_t x, int32_t d)
{
    int64_t p = x * (int64_t)(SNN_DECAY_ONE - d);
    return p >= 0 ? p >> SNN_DECAY_SHIFT : -((-p) >> SNN_DECAY_SHIFT);
}

/* kernels.overflow: bring x into a `bits`-bit register (1 <= bits <= 62). */
int64_t snn_overflow(int64_t x, int32_t bits, int32_t mode)
{
    int64_t m = (int64_t)1 << (bits - 1);
    switch (mode) {
    case SNN_SATURATE:
        return x > m - 1 ? m - 1 : (x < -(m - 1) ? -(m - 1) : x);
    case SNN_WRAP: {
        uint64_t r = ((uint64_t)x + (uint64_t)m) & (((uint64_t)1 << bits) - 1u);
        return (int64_t)r - m;
    }
    default: /* SNN_WRAP_LAVA: a single fold */
        return x > m ? x - 2 * m : (x <= -m ? x + 2 * m : x);
    }
}

/* kernels.state_quant: q = 1 if 2v >= L, -1 if 2v <= -L (ternary only), else 0; q * L. */
int64_t snn_quant(int64_t v, int64_t level, int32_t kind)
{
    int64_t q;
    if (kind == SNN_QUANT_NONE)
        return v;
    q = 2 * v >= level;
    if (kind == SNN_QUANT_TERNARY)
        q -= 2 * v <= -level;
    return q * level;
}

/* ------------------------------------------------------------------ synapse kernels */
/* interpreter._eval: shift by weight_exp, then wrap to out_bits when out_bits > 0. */
static int64_t synapse_out(int64_t acc, int32_t exp, int32_t out_bits)
{
    acc = snn_shift(acc, exp);
    return out_bits > 0 ? snn_overflow(acc, out_bits, SNN_WRAP) : acc;
}

/* One output of kernels.conv2d before the shift: the sum over the (C/groups, kH, kW)
 * window of output channel o at (oy, ox), in accumulator type ACC_T.  Defined twice:
 * int32_t where the emitter proved every partial sum fits, int64_t otherwise. */
#define SNN_DEFINE_CONV_SUM(NAME, ACC_T)                                                 \
    static int64_t NAME(const snn_conv_t *p, const snn_tensor_t *x, int32_t cg,          \
                        int32_t c0, uint32_t w0, int32_t oy, int32_t ox)                 \
    {                                                                                    \
        ACC_T acc = 0;                                                                   \
        int64_t xv;                                                                      \
        int32_t c, i, j;                                                                 \
        for (c = 0; c < cg; c++) {                                                       \
            for (i = 0; i < p->kh; i++) {                                                \
                int32_t iy = oy * p->sh + i * p->dh - p->ph;                             \
                uint32_t wi = w0 + (uint32_t)((c * p->kh + i) * p->kw);                  \
                if (iy < 0 || iy >= x->h)                                                \
                    continue;                                                            \
                for (j = 0; j < p->kw; j++) {                                            \
                    int32_t ix = ox * p->sw + j * p->dw - p->pw;                         \
                    if (ix < 0 || ix >= x->w)                                            \
                        continue;                                                        \
                    xv = ld(x, ((c0 + c) * x->h + iy) * x->w + ix);                  \
                    if (xv != 0) /* event-driven: spikes are mostly 0 */                 \
                        acc += (ACC_T)wget(p->w, wi + (uint32_t)j, p->bits) * (ACC_T)xv; \
                }                                                                        \
            }                                                                            \
        }                                                                                \
        return (int64_t)acc;                                                             \
    }
SNN_DEFINE_CONV_SUM(conv_sum32, int32_t)
SNN_DEFINE_CONV_SUM(conv_sum64, int64_t)

/* kernels.conv2d: cross-correlation, zero padding, groups, stride, dilation (+ out_bits). */
void snn_conv2d(const snn_layer_t *L)
{
    const snn_conv_t *p = (const snn_conv_t *)L->p;
    const snn_tensor_t *x = L->in[0], *y = L->out;
    int32_t cg = x->c / p->groups, og = y->c / p->groups, o, oy, ox, k = 0;
    for (o = 0; o < y->c; o++) {
        int32_t c0 = (o / og) * cg;
        uint32_t w0 = (uint32_t)(o * cg * p->kh * p->kw);
        for (oy = 0; oy < y->h; oy++)
            for (ox = 0; ox < y->w; ox++, k++) {
                int64_t acc = p->acc64 ? conv_sum64(p, x, cg, c0, w0, oy, ox)
                                       : conv_sum32(p, x, cg, c0, w0, oy, ox);
                snn_st(y, k, synapse_out(acc, p->exp, p->out_bits));
            }
    }
}

/* kernels.dense: y[o] = (sum_i w[o, i] x[i]) << exp, x read flat (C-major) (+ out_bits). */
void snn_dense(const snn_layer_t *L)
{
    const snn_dense_t *p = (const snn_dense_t *)L->p;
    const snn_tensor_t *x = L->in[0], *y = L->out;
    int32_t o, i;
    for (o = 0; o < y->n; o++) {
        uint32_t w0 = (uint32_t)o * (uint32_t)x->n;
        int64_t acc = 0;
        if (p->acc64) {
            for (i = 0; i < x->n; i++) {
                int64_t xv = ld(x, i);
                if (xv != 0)
                    acc += (int64_t)wget(p->w, w0 + (uint32_t)i, p->bits) * xv;
            }
        } else {
            int32_t acc32 = 0;
            for (i = 0; i < x->n; i++) {
                int32_t xv = (int32_t)ld(x, i);
                if (xv != 0)
                    acc32 += wget(p->w, w0 + (uint32_t)i, p->bits) * xv;
            }
            acc = acc32;
        }
        snn_st(y, o, synapse_out(acc, p->exp, p->out_bits));
    }
}

/* ------------------------------------------------------------------ pooling, shapes */
/* Shared window walk of kernels.sum_pool / kernels.max_pool: zero padding, so a window
 * position outside the input contributes the value 0 (to the max as well). */
static void pool(const snn_layer_t *L, int is_max)
{
    const snn_pool_t *p = (const snn_pool_t *)L->p;
    const snn_tensor_t *x = L->in[0], *y = L->out;
    int32_t c, oy, ox, i, j, k = 0;
    for (c = 0; c < y->c; c++)
        for (oy = 0; oy < y->h; oy++)
            for (ox = 0; ox < y->w; ox++, k++) {
                int64_t acc = 0;
                int first = 1;
                for (i = 0; i < p->kh; i++)
                    for (j = 0; j < p->kw; j++) {
                        int32_t iy = oy * p->sh + i - p->ph, ix = ox * p->sw + j - p->pw;
                        int64_t v = (iy < 0 || iy >= x->h || ix < 0 || ix >= x->w)
                                        ? 0 : ld(x, (c * x->h + iy) * x->w + ix);
                        if (!is_max)
                            acc += v;
                        else if (first || v > acc)
                            acc = v;
                        first = 0;
                    }
                snn_st(y, k, acc);
            }
}

void snn_sum_pool(const snn_layer_t *L) { pool(L, 0); }
void snn_max_pool(const snn_layer_t *L) { pool(L, 1); }

/* Flatten is a reshape: the emitter aliases the output to the input buffer, so this
 * copies only if it was given a separate buffer. */
void snn_flatten(const snn_layer_t *L)
{
    int32_t i;
    if (L->out->data == L->in[0]->data)
        return;
    for (i = 0; i < L->out->n; i++)
        snn_st(L->out, i, ld(L->in[0], i));
}

/* interpreter._eval "Add": element-wise sum of n_in same-shape inputs. */
void snn_add(const snn_layer_t *L)
{
    int32_t i, k;
    for (i = 0; i < L->out->n; i++) {
        int64_t acc = 0;
        for (k = 0; k < L->n_in; k++)
            acc += ld(L->in[k], i);
        snn_st(L->out, i, acc);
    }
}

/* ---------------------------------------------------------------------------- neuron */
/* interpreter.NeuronState.step, one element at a time (constants per channel c):
 *   u = ovf_u(decay(u, du) + (a << act_shift))
 *   v = ovf_v(decay(v, dv) + u + bias)
 *   s = fires && v > threshold;  v = s ? (0 | v - reset_value | v) : v
 *   v = state_quant(v, level) */
void snn_lif(const snn_layer_t *L)
{
    const snn_lif_t *p = (const snn_lif_t *)L->p;
    const snn_tensor_t *a = L->in[0], *s = L->out;
    int32_t hw = s->h * s->w, i;
    for (i = 0; i < s->n; i++) {
        int32_t c = i / hw;
        int64_t u = ld(a, i) * ((int64_t)1 << p->act_shift), v;
        int spike = 0;
        if (p->u != 0)
            u += snn_decay(ld(p->u, i), p->du); /* no current state: decay(u, 4096) = 0 */
        u = snn_overflow(u, p->u_bits, p->u_ovf);
        v = snn_decay(ld(p->v, i), p->dv) + u + snn_vget(&p->bias, c);
        v = snn_overflow(v, p->v_bits, p->v_ovf);
        if (p->fires && v > snn_vget(&p->threshold, c)) {
            spike = 1;
            if (p->reset == SNN_RESET_ZERO)
                v = 0;
            else if (p->reset == SNN_RESET_SUBTRACT)
                v -= snn_vget(&p->reset_value, c);
        }
        v = snn_quant(v, snn_vget(&p->level, c), p->quant);
        if (p->u != 0)
            snn_st(p->u, i, u);
        snn_st(p->v, i, v);
        snn_st(s, i, spike);
    }
}

/* ---------------------------------------------------------------------------- driver */
typedef void (*snn_kernel_fn)(const snn_layer_t *L);
static const snn_kernel_fn kernels[SNN_N_KINDS] = {
    snn_conv2d, snn_dense, snn_sum_pool, snn_max_pool, snn_flatten, snn_add, snn_lif,
};

/* The layer has just written its fresh result to L->out: swap it with the oldest slot
 * of the ring, so L->out holds what was computed `depth` steps ago (zeros at first). */
static void delay_swap(const snn_layer_t *L)
{
    snn_delay_t *d = L->delay;
    int32_t nbytes = L->out->n * snn_type_size(L->out->type), i;
    uint8_t *a = (uint8_t *)L->out->data, *b = (uint8_t *)d->ring + d->head * nbytes;
    for (i = 0; i < nbytes; i++) {
        uint8_t t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
    d->head = d->head + 1 == d->depth ? 0 : d->head + 1;
}

static void zero_bytes(void *p, int32_t nbytes)
{
    uint8_t *b = (uint8_t *)p;
    int32_t i;
    for (i = 0; i < nbytes; i++)
        b[i] = 0;
}

/* Initial state: empty delay lines, u = 0, v = v_init (per channel). */
void snncc_reset(const snn_model_t *m)
{
    int32_t k, i;
    for (k = 0; k < m->n_layers; k++) {
        const snn_layer_t *L = &m->layers[k];
        if (L->delay != 0) {
            zero_bytes(L->delay->ring, L->delay->depth * L->out->n * snn_type_size(L->out->type));
            L->delay->head = 0;
        }
        if (L->kind == SNN_LIF) {
            const snn_lif_t *p = (const snn_lif_t *)L->p;
            int32_t hw = p->v->h * p->v->w;
            if (p->u != 0)
                zero_bytes(p->u->data, p->u->n * snn_type_size(p->u->type));
            for (i = 0; i < p->v->n; i++)
                snn_st(p->v, i, snn_vget(&p->v_init, i / hw));
        }
    }
}

void snncc_set_input(const snn_model_t *m, const int32_t *x)
{
    int32_t i;
    for (i = 0; i < m->input->n; i++)
        snn_st(m->input, i, x[i]);
}

/* One time step: every layer in topological order (interpreter.run's inner loop). */
void snncc_step(const snn_model_t *m)
{
    int32_t k;
    for (k = 0; k < m->n_layers; k++) {
        const snn_layer_t *L = &m->layers[k];
        kernels[L->kind](L);
        if (L->delay != 0)
            delay_swap(L);
    }
}
