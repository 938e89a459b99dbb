/* snncc_rt.c - integer kernels and the layer-table driver (see snncc_rt.h).
 *
 * Each kernel names the reference function it reproduces (snncc/reference/kernels.py
 * or interpreter.py).  C99, no floats, no dynamic memory.
 *
 * Speed notes: the type of a buffer is switched on once per row or chunk, never per
 * element; the innermost loops have no bounds checks (the window geometry is resolved
 * per row and per input position before them); the convolution's innermost loop is a
 * contiguous add over output channels written in blocks of 8 with restrict pointers,
 * which compilers vectorize at -O2 without any target-specific flag. */
#include "snncc_rt.h"

#ifdef SNNCC_CHECKED
#include <stdio.h>
#include <stdlib.h>
#endif

/* int64_t scratch of the element-wise kernels (one layer runs at a time) */
static int64_t chunk_a[SNN_CHUNK], chunk_b[SNN_CHUNK], chunk_c[SNN_CHUNK];

/* ------------------------------------------------------------------ element access */
int32_t snn_type_size(uint8_t type)
{
    return (int32_t)1 << type;
}

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

#ifdef SNNCC_CHECKED
static void check_fits(const snn_tensor_t *t, int64_t v)
{
    int32_t bits = 8 * snn_type_size(t->type);
    if (bits < 64 && (v < -((int64_t)1 << (bits - 1)) || v >= ((int64_t)1 << (bits - 1)))) {
        fprintf(stderr, "snncc: value %lld does not fit int%d_t\n", (long long)v, (int)bits);
        abort();
    }
}
#endif

static inline void st(const snn_tensor_t *t, int32_t i, int64_t v)
{
#ifdef SNNCC_CHECKED
    check_fits(t, v);
#endif
    switch (t->type) {
    case SNN_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    case SNN_I16: ((int16_t *)t->data)[i] = (int16_t)v; break;
    case SNN_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    default: ((int64_t *)t->data)[i] = v; break;
    }
}

void snn_st(const snn_tensor_t *t, int32_t i, int64_t v)
{
    st(t, i, v);
}

static inline int64_t vget(const snn_vec_t *v, int32_t ch)
{
    int32_t i = v->n == 1 ? 0 : ch;
    switch (v->type) {
    case SNN_I8: return ((const int8_t *)v->data)[i];
    case SNN_I16: return ((const int16_t *)v->data)[i];
    case SNN_I32: return ((const int32_t *)v->data)[i];
    default: return ((const int64_t *)v->data)[i];
    }
}

int64_t snn_vget(const snn_vec_t *v, int32_t ch)
{
    return vget(v, ch);
}

/* dst[k] = t[i0 + k] for k < n: one type switch per chunk; blocks of 8 (a fixed trip
 * count the -O2 vectorizer accepts) and a scalar tail. */
#define SNN_LOAD_LOOP(T)                                   \
    {                                                      \
        const T *restrict s_ = (const T *)t->data + i0;    \
        for (k = 0; k + 8 <= n; k += 8)                    \
            for (j = 0; j < 8; j++)                        \
                dst[k + j] = s_[k + j];                    \
        for (; k < n; k++)                                 \
            dst[k] = s_[k];                                \
    }                                                      \
    break
static void load_chunk(const snn_tensor_t *t, int32_t i0, int64_t *restrict dst, int32_t n)
{
    int32_t k, j;
    switch (t->type) {
    case SNN_I8: SNN_LOAD_LOOP(int8_t);
    case SNN_I16: SNN_LOAD_LOOP(int16_t);
    case SNN_I32: SNN_LOAD_LOOP(int32_t);
    default: SNN_LOAD_LOOP(int64_t);
    }
}

/* acc[k] += t[i0 + k] for k < n. */
#define SNN_ADD_LOOP(T)                                    \
    {                                                      \
        const T *s_ = (const T *)t->data + i0;             \
        for (k = 0; k < n; k++)                            \
            acc[k] += s_[k];                               \
    }                                                      \
    break
static void add_chunk(const snn_tensor_t *t, int32_t i0, int64_t *acc, int32_t n)
{
    int32_t k;
    switch (t->type) {
    case SNN_I8: SNN_ADD_LOOP(int8_t);
    case SNN_I16: SNN_ADD_LOOP(int16_t);
    case SNN_I32: SNN_ADD_LOOP(int32_t);
    default: SNN_ADD_LOOP(int64_t);
    }
}

/* t[i0 + k] = src[k] for k < n (values fit the type: the emitter proves it). */
#define SNN_STORE_LOOP(T)                                  \
    {                                                      \
        T *restrict d_ = (T *)t->data + i0;                \
        for (k = 0; k + 8 <= n; k += 8)                    \
            for (j = 0; j < 8; j++)                        \
                d_[k + j] = (T)src[k + j];                 \
        for (; k < n; k++)                                 \
            d_[k] = (T)src[k];                             \
    }                                                      \
    break
static void store_chunk(const snn_tensor_t *t, int32_t i0, const int64_t *restrict src, int32_t n)
{
    int32_t k, j;
#ifdef SNNCC_CHECKED
    for (k = 0; k < n; k++)
        check_fits(t, src[k]);
#endif
    switch (t->type) {
    case SNN_I8: SNN_STORE_LOOP(int8_t);
    case SNN_I16: SNN_STORE_LOOP(int16_t);
    case SNN_I32: SNN_STORE_LOOP(int32_t);
    default: SNN_STORE_LOOP(int64_t);
    }
}

static inline int32_t min32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

int32_t snn_write_le(const snn_tensor_t *t, uint8_t *dst)
{
    int32_t i, k, size = snn_type_size(t->type);
    if (t->type == SNN_I8) {
        const int8_t *s = (const int8_t *)t->data;
        for (i = 0; i < t->n; i++)
            dst[i] = (uint8_t)s[i];
        return t->n;
    }
    for (i = 0; i < t->n; i++) {
        uint64_t v = (uint64_t)ld(t, i);
        for (k = 0; k < size; k++)
            dst[i * size + k] = (uint8_t)(v >> (8 * k));
    }
    return t->n * size;
}

/* ---------------------------------------------------------------- scalar arithmetic */
/* An 8-bit packed weight is a plain two's complement byte. */
static inline int32_t w8(uint8_t b)
{
    return (int32_t)b - (int32_t)((b & 0x80u) << 1);
}

/* Weight i of a packed array of `bits`-bit two's complement values (1 <= bits <= 32). */
static inline int32_t wget(const uint8_t *packed, uint32_t i, uint32_t bits)
{
    uint32_t bit, byte, sh, k;
    uint64_t raw;
    if (bits == 8)
        return w8(packed[i]);
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
static inline int64_t shift(int64_t x, int32_t e)
{
    if (e >= 0)
        return x * ((int64_t)1 << e);
    if (x >= 0)
        return x >> -e;
    return -((-x - 1) >> -e) - 1; /* floor for negative x without a signed >> */
}

int64_t snn_shift(int64_t x, int32_t e)
{
    return shift(x, e);
}

/* kernels.decay: sign(x (4096 - d)) (|x (4096 - d)| >> 12), rounding toward zero. */
static inline int64_t decay(int64_t x, int64_t keep) /* keep = 4096 - d */
{
    return x * keep / SNN_DECAY_ONE; /* C99 division truncates toward zero: exactly this */
}

int64_t snn_decay(int64_t x, int32_t d)
{
    return decay(x, SNN_DECAY_ONE - d);
}

/* kernels.overflow into a register of 2m values (m = 2^(bits-1), 1 <= bits <= 62). */
static inline int64_t ovf_saturate(int64_t x, int64_t m) /* symmetric clip */
{
    return x > m - 1 ? m - 1 : (x < -(m - 1) ? -(m - 1) : x);
}

static inline int64_t ovf_wrap(int64_t x, int64_t m) /* two's complement */
{
    return (int64_t)(((uint64_t)x + (uint64_t)m) & (2u * (uint64_t)m - 1u)) - m;
}

static inline int64_t ovf_wrap_lava(int64_t x, int64_t m) /* a single fold */
{
    return x > m ? x - 2 * m : (x <= -m ? x + 2 * m : x);
}

static inline int64_t overflow(int64_t x, int64_t m, int32_t mode)
{
    switch (mode) {
    case SNN_SATURATE: return ovf_saturate(x, m);
    case SNN_WRAP: return ovf_wrap(x, m);
    default: return ovf_wrap_lava(x, m);
    }
}

int64_t snn_overflow(int64_t x, int32_t bits, int32_t mode)
{
    return overflow(x, (int64_t)1 << (bits - 1), mode);
}

/* kernels.state_quant: q = 1 if 2v >= L, -1 if 2v <= -L (ternary only), else 0; q * L. */
static inline int64_t quant(int64_t v, int64_t level, int32_t kind)
{
    int64_t q;
    if (kind == SNN_QUANT_NONE)
        return v;
    q = 2 * v >= level;
    if (kind == SNN_QUANT_TERNARY)
        q -= 2 * v <= -level;
    return q * level;
}

int64_t snn_quant(int64_t v, int64_t level, int32_t kind)
{
    return quant(v, level, kind);
}

/* ------------------------------------------------------------------ synapse kernels */
/* interpreter._eval: shift by weight_exp, then wrap to out_bits when out_bits > 0. */
static inline int64_t synapse_out(int64_t acc, int32_t exp, int32_t out_bits)
{
    acc = shift(acc, exp);
    return out_bits > 0 ? overflow(acc, (int64_t)1 << (out_bits - 1), SNN_WRAP) : acc;
}

/* The positions k < n of the nonzero values of t[i0 .. i0 + n) into nz (branch-free);
 * returns their count; *ones = 1 if every nonzero value is 1 (binary spikes). */
#define SNN_NZ_LOOP(T)                                                 \
    {                                                                  \
        const T *s_ = (const T *)t->data + i0;                         \
        for (k = 0; k < n; k++) {                                      \
            nz[m] = k;                                                 \
            m += s_[k] != 0;                                           \
            other |= (s_[k] != 0) & (s_[k] != 1);                      \
        }                                                              \
    }                                                                  \
    break
static int32_t nonzeros(const snn_tensor_t *t, int32_t i0, int32_t n, int32_t *nz, int *ones)
{
    int32_t k, m = 0;
    int other = 0;
    switch (t->type) {
    case SNN_I8: SNN_NZ_LOOP(int8_t);
    case SNN_I16: SNN_NZ_LOOP(int16_t);
    case SNN_I32: SNN_NZ_LOOP(int32_t);
    default: SNN_NZ_LOOP(int64_t);
    }
    *ones = !other;
    return m;
}

/* a[o] += w[o] (spikes) and a[o] += w[o] * x, o < n: contiguous, restrict, blocks of 8
 * (a fixed trip count the -O2 vectorizer turns into SIMD adds, widening int16 weights
 * to int32 sums where needed) plus a scalar tail.  The sums fit ACC_T and the
 * products fit int (int16 x int16) or W_T (emitter), so every conversion is exact. */
#define SNN_DEFINE_AXPY(ADD, MAC, ACC_T, W_T)                                        \
    static inline void ADD(ACC_T *restrict a, const W_T *restrict w, int32_t n)      \
    {                                                                                \
        int32_t o = 0, k;                                                            \
        for (; o + 8 <= n; o += 8)                                                   \
            for (k = 0; k < 8; k++)                                                  \
                a[o + k] = (ACC_T)(a[o + k] + w[o + k]);                             \
        for (; o < n; o++)                                                           \
            a[o] = (ACC_T)(a[o] + w[o]);                                             \
    }                                                                                \
    static inline void MAC(ACC_T *restrict a, const W_T *restrict w, W_T x,          \
                           int32_t n)                                                \
    {                                                                                \
        int32_t o = 0, k;                                                            \
        for (; o + 8 <= n; o += 8)                                                   \
            for (k = 0; k < 8; k++)                                                  \
                a[o + k] = (ACC_T)(a[o + k] + w[o + k] * x);                         \
        for (; o < n; o++)                                                           \
            a[o] = (ACC_T)(a[o] + w[o] * x);                                         \
    }
SNN_DEFINE_AXPY(add_a16w16, mac_a16w16, int16_t, int16_t)
SNN_DEFINE_AXPY(add_a32w16, mac_a32w16, int32_t, int16_t)
SNN_DEFINE_AXPY(add_a64w64, mac_a64w64, int64_t, int64_t)

/* y[o, oy0 .. oy1 - 1, :] = synapse_out(acc[oy - oy0, :, o]) for the output type OUT_T
 * (inside SNN_DEFINE_CONV). */
#ifdef SNNCC_CHECKED
#define SNN_CONV_CHECK(v) check_fits(y, v)
#else
#define SNN_CONV_CHECK(v) ((void)0)
#endif
#define SNN_CONV_OUT(OUT_T, ACC_T)                                                        \
    for (o = 0; o < O; o++) {                                                             \
        OUT_T *restrict d_ = (OUT_T *)y->data + o * OH * OW + oy0 * OW;                   \
        const ACC_T *restrict s_ = acc + o;                                               \
        const int32_t nq = (oy1 - oy0) * OW;                                              \
        if (exp == 0 && out_bits == 0) {                                                  \
            for (k = 0; k < nq; k++) {                                                    \
                SNN_CONV_CHECK(s_[k * O]);                                                \
                d_[k] = (OUT_T)s_[k * O];                                                 \
            }                                                                             \
        } else {                                                                          \
            for (k = 0; k < nq; k++) {                                                    \
                const int64_t v_ = synapse_out(s_[k * O], exp, out_bits);                 \
                SNN_CONV_CHECK(v_);                                                       \
                d_[k] = (OUT_T)v_;                                                        \
            }                                                                             \
        }                                                                                 \
    }

/* kernels.conv2d as a scatter, accumulating in ACC_T with weights decoded to W_T (see
 * snncc_rt.h), in bands of `band` output rows (the accumulator holds one band):
 *   for each input channel c (group g) and each input row iy that reaches the band,
 *   if the row has a nonzero value: decode channel c's weights into wb, laid out
 *   (kH, kW reversed, O/groups) (once per band); for each kernel row i that maps iy to
 *   an output row oy of the band (oy * sh = iy + ph - i * dh), each nonzero x at column
 *   ix and each kernel column j that maps ix to an output column ox:
 *   acc[oy - oy0, ox, g*og .. g*og+og) += x * W[g*og .. g*og+og, c % cg, i, j].
 * Then y[o, oy, ox] = synapse_out(acc[oy - oy0, ox, o]).  Integer addition is
 * associative, so the order of the sums does not change the exact result. */
#define SNN_DEFINE_CONV(NAME, ACC_T, W_T, ADD, MAC)                                        \
    static void NAME(const snn_conv_t *p, const snn_tensor_t *x, const snn_tensor_t *y)   \
    {                                                                                     \
        ACC_T *acc = (ACC_T *)p->acc_buf;                                                 \
        W_T *restrict wb = (W_T *)p->w_buf;                                               \
        int32_t *restrict nz = p->nz;                                                     \
        const int32_t O = y->c, og = O / p->groups, cg = x->c / p->groups;                \
        const int32_t kh = p->kh, kw = p->kw, sh = p->sh, sw = p->sw, ph = p->ph;         \
        const int32_t pw = p->pw, dh = p->dh, dw = p->dw, exp = p->exp;                   \
        const int32_t out_bits = p->out_bits, bits = p->bits;                             \
        const int32_t H = x->h, W = x->w, OH = y->h, OW = y->w;                           \
        /* stride 1, dilation 1, one group: the kw taps of an input reach kw adjacent      \
         * outputs, whose O sums are adjacent in (H, W, O), as are their weights in wb */ \
        const int span = sw == 1 && dw == 1 && og == O;                                   \
        int32_t oy0, oy1, c, iy, i, j, k, n, o, t;                                        \
        for (oy0 = 0; oy0 < OH; oy0 = oy1) {                                              \
            /* the input rows iy_lo .. iy_hi - 1 reach the output rows oy0 .. oy1 - 1 */ \
            const int32_t iy_lo = oy0 * sh - ph > 0 ? oy0 * sh - ph : 0;                  \
            int32_t iy_hi;                                                                \
            oy1 = min32(OH, oy0 + p->band);                                               \
            iy_hi = min32(H, (oy1 - 1) * sh - ph + (kh - 1) * dh + 1);                    \
            for (k = 0; k < (oy1 - oy0) * OW * O; k++)                                    \
                acc[k] = 0;                                                               \
            for (c = 0; c < x->c; c++) {                                                  \
                const int32_t g = c / cg;                                                 \
                int decoded = 0, ones;                                                    \
                for (iy = iy_lo; iy < iy_hi; iy++) {                                      \
                    const int32_t row = (c * H + iy) * W;                                 \
                    n = nonzeros(x, row, W, nz, &ones);                                   \
                    if (n == 0)                                                           \
                        continue;                                                         \
                    if (!decoded) { /* channel c's run of the packed (C, kH, kW, O/g) */  \
                        for (t = 0; t < kh * kw; t++) { /* tap (i, j) -> wb[i, kw-1-j] */ \
                            const int32_t i_ = t / kw, j_ = t - i_ * kw;                  \
                            W_T *restrict dst = wb + (i_ * kw + kw - 1 - j_) * og;        \
                            const uint32_t w0 = (uint32_t)((c * kh * kw + t) * og);       \
                            if (bits == 8) {                                              \
                                const int8_t *restrict src = (const int8_t *)p->w + w0;   \
                                for (o = 0; o + 16 <= og; o += 16)                        \
                                    for (k = 0; k < 16; k++)                              \
                                        dst[o + k] = src[o + k];                          \
                                for (; o < og; o++)                                       \
                                    dst[o] = src[o];                                      \
                            } else {                                                      \
                                for (o = 0; o < og; o++)                                  \
                                    dst[o] = (W_T)wget(p->w, w0 + (uint32_t)o,            \
                                                       (uint32_t)bits);                   \
                            }                                                             \
                        }                                                                 \
                        decoded = 1;                                                      \
                    }                                                                     \
                    for (i = 0; i < kh; i++) {                                            \
                        const int32_t ty = iy + ph - i * dh;                              \
                        int32_t oy;                                                       \
                        ACC_T *arow;                                                      \
                        const W_T *wrow;                                                  \
                        if (ty < 0)                                                       \
                            break; /* ty decreases with i */                              \
                        if (sh == 1)                                                      \
                            oy = ty;                                                      \
                        else if (ty % sh != 0)                                            \
                            continue;                                                     \
                        else                                                              \
                            oy = ty / sh;                                                 \
                        if (oy < oy0 || oy >= oy1)                                        \
                            continue;                                                     \
                        arow = acc + (oy - oy0) * OW * O + g * og;                        \
                        wrow = wb + i * kw * og;                                          \
                        for (k = 0; k < n; k++) {                                         \
                            const int32_t ix = nz[k], ox0 = ix + pw - (kw - 1);           \
                            const W_T xv = ones ? (W_T)1 : (W_T)ld(x, row + ix);          \
                            if (span && ox0 >= 0 && ix + pw < OW) {                       \
                                /* all kw taps land on ox0 .. ox0 + kw - 1: one run */    \
                                if (xv == 1)                                              \
                                    ADD(arow + ox0 * O, wrow, kw * O);                    \
                                else                                                      \
                                    MAC(arow + ox0 * O, wrow, xv, kw * O);                \
                                continue;                                                 \
                            }                                                             \
                            for (j = 0; j < kw; j++) {                                    \
                                const int32_t tx = ix + pw - j * dw;                      \
                                int32_t ox;                                               \
                                if (tx < 0)                                               \
                                    break;                                                \
                                if (sw == 1)                                              \
                                    ox = tx;                                              \
                                else if (tx % sw != 0)                                    \
                                    continue;                                             \
                                else                                                      \
                                    ox = tx / sw;                                         \
                                if (ox >= OW)                                             \
                                    continue;                                             \
                                if (xv == 1)                                              \
                                    ADD(arow + ox * O, wrow + (kw - 1 - j) * og, og);     \
                                else                                                      \
                                    MAC(arow + ox * O, wrow + (kw - 1 - j) * og, xv, og); \
                            }                                                             \
                        }                                                                 \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
            switch (y->type) { /* (H, W, O) sums -> (O, H, W) outputs */                 \
            case SNN_I8: SNN_CONV_OUT(int8_t, ACC_T); break;                              \
            case SNN_I16: SNN_CONV_OUT(int16_t, ACC_T); break;                            \
            case SNN_I32: SNN_CONV_OUT(int32_t, ACC_T); break;                            \
            default: SNN_CONV_OUT(int64_t, ACC_T); break;                                 \
            }                                                                             \
        }                                                                                 \
    }
SNN_DEFINE_CONV(conv_a16w16, int16_t, int16_t, add_a16w16, mac_a16w16)
SNN_DEFINE_CONV(conv_a32w16, int32_t, int16_t, add_a32w16, mac_a32w16)
SNN_DEFINE_CONV(conv_a64w64, int64_t, int64_t, add_a64w64, mac_a64w64)

/* A depthwise 1x1 convolution with stride 1 and no padding (one input and one output
 * channel per group: the identity synapse of a residual shortcut) is a per-channel
 * scale, y[c, q] = synapse_out(W[c] x[c, q]); it needs no scratch. */
static int is_channel_scale(const snn_conv_t *p, const snn_tensor_t *x, const snn_tensor_t *y)
{
    return p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->ph == 0 && p->pw == 0 &&
           x->c == p->groups && y->c == p->groups;
}

static void conv_channel_scale(const snn_conv_t *p, const snn_tensor_t *x, const snn_tensor_t *y)
{
    const int32_t hw = y->h * y->w;
    int32_t c, i, k, m;
    for (c = 0; c < y->c; c++) {
        const int64_t w = wget(p->w, (uint32_t)c, p->bits);
        for (i = c * hw; i < (c + 1) * hw; i += m) {
            m = min32(SNN_CHUNK, (c + 1) * hw - i);
            load_chunk(x, i, chunk_a, m);
            if (p->exp == 0 && p->out_bits == 0)
                for (k = 0; k < m; k++)
                    chunk_a[k] *= w;
            else
                for (k = 0; k < m; k++)
                    chunk_a[k] = synapse_out(chunk_a[k] * w, p->exp, p->out_bits);
            store_chunk(y, i, chunk_a, m);
        }
    }
}

/* kernels.conv2d: cross-correlation, zero padding, groups, stride, dilation (+ out_bits). */
void snn_conv2d(const snn_layer_t *L)
{
    const snn_conv_t *p = (const snn_conv_t *)L->p;
    if (is_channel_scale(p, L->in[0], L->out))
        conv_channel_scale(p, L->in[0], L->out);
    else if (p->acc == SNN_I16)
        conv_a16w16(p, L->in[0], L->out);
    else if (p->acc == SNN_I32)
        conv_a32w16(p, L->in[0], L->out);
    else
        conv_a64w64(p, L->in[0], L->out);
}

/* kernels.dense as a gather over the nonzero inputs: y[o] = (sum_{i: x[i] != 0}
 * w[o, i] x[i]) << exp, x read flat (C-major) (+ out_bits).  One function per
 * accumulator type; 8-bit weights are read in place, spikes (x == 1) need no product. */
#define SNN_DEFINE_DENSE(NAME, ACC_T)                                                      \
    static void NAME(const snn_dense_t *p, const snn_tensor_t *x, const snn_tensor_t *y,   \
                     int32_t n, int ones)                                                  \
    {                                                                                      \
        const int32_t *nz = p->nz;                                                         \
        int32_t o, k, m = 0, o0 = 0;                                                       \
        for (o = 0; o < y->n; o++) {                                                       \
            const uint32_t w0 = (uint32_t)o * (uint32_t)x->n;                              \
            ACC_T acc = 0;                                                                 \
            if (p->bits == 8) {                                                            \
                const uint8_t *wr = p->w + w0;                                             \
                if (ones)                                                                  \
                    for (k = 0; k < n; k++)                                                \
                        acc += (ACC_T)w8(wr[nz[k]]);                                       \
                else                                                                       \
                    for (k = 0; k < n; k++)                                                \
                        acc += (ACC_T)w8(wr[nz[k]]) * (ACC_T)ld(x, nz[k]);                 \
            } else if (ones) {                                                             \
                for (k = 0; k < n; k++)                                                    \
                    acc += (ACC_T)wget(p->w, w0 + (uint32_t)nz[k], p->bits);               \
            } else {                                                                       \
                for (k = 0; k < n; k++)                                                    \
                    acc += (ACC_T)wget(p->w, w0 + (uint32_t)nz[k], p->bits) * (ACC_T)ld(x, nz[k]); \
            }                                                                              \
            chunk_a[m++] = synapse_out((int64_t)acc, p->exp, p->out_bits);                 \
            if (m == SNN_CHUNK) {                                                          \
                store_chunk(y, o0, chunk_a, m);                                            \
                o0 += m;                                                                   \
                m = 0;                                                                     \
            }                                                                              \
        }                                                                                  \
        store_chunk(y, o0, chunk_a, m);                                                    \
    }
SNN_DEFINE_DENSE(dense32, int32_t)
SNN_DEFINE_DENSE(dense64, int64_t)

void snn_dense(const snn_layer_t *L)
{
    const snn_dense_t *p = (const snn_dense_t *)L->p;
    const snn_tensor_t *x = L->in[0], *y = L->out;
    int ones;
    int32_t n = nonzeros(x, 0, x->n, p->nz, &ones);
    if (p->acc64 || x->type == SNN_I64)
        dense64(p, x, y, n, ones);
    else
        dense32(p, x, y, n, ones);
}

/* ------------------------------------------------------------------ pooling, shapes */
/* kernels.sum_pool / kernels.max_pool: zero padding, so a window position outside the
 * input contributes the value 0 (to the max as well).  Output columns lo <= ox < hi of
 * rows whose window rows lie inside the input take a path without bounds checks. */
#define SNN_POOL_SUM(acc, v) ((acc) += (v))
#define SNN_POOL_MAX(acc, v) ((acc) = (v) > (acc) ? (v) : (acc))
#define SNN_DEFINE_POOL(NAME, IS_MAX, OP, LD)                                             \
    static void NAME(const snn_pool_t *p, const snn_tensor_t *x, const snn_tensor_t *y)  \
    {                                                                                    \
        const int32_t kh = p->kh, kw = p->kw, sh = p->sh, sw = p->sw, ph = p->ph;        \
        const int32_t pw = p->pw, H = x->h, W = x->w, OH = y->h, OW = y->w;              \
        const int32_t lo = min32((pw + sw - 1) / sw, OW);                                \
        const int32_t hi = W + pw - kw >= 0 ? min32((W + pw - kw) / sw + 1, OW) : 0;     \
        int32_t c, oy, ox, ox0, i, j, m;                                                 \
        for (c = 0; c < y->c; c++)                                                       \
            for (oy = 0; oy < OH; oy++) {                                                \
                const int32_t y0 = oy * sh - ph;                                         \
                const int inside = y0 >= 0 && y0 + kh <= H;                              \
                const int32_t plane = c * H * W;                                         \
                for (ox0 = 0; ox0 < OW; ox0 += m) {                                      \
                    m = min32(SNN_CHUNK, OW - ox0);                                      \
                    for (ox = ox0; ox < ox0 + m; ox++) {                                 \
                        const int32_t x0 = ox * sw - pw;                                 \
                        int64_t acc = 0;                                                 \
                        if (inside && ox >= lo && ox < hi) {                             \
                            int32_t r = plane + y0 * W + x0;                             \
                            if (IS_MAX)                                                  \
                                acc = LD(x, r);                                          \
                            if (kw == 2)                                                 \
                                for (i = 0; i < kh; i++, r += W) {                       \
                                    OP(acc, LD(x, r));                                   \
                                    OP(acc, LD(x, r + 1));                               \
                                }                                                        \
                            else                                                         \
                                for (i = 0; i < kh; i++, r += W)                         \
                                    for (j = 0; j < kw; j++)                             \
                                        OP(acc, LD(x, r + j));                           \
                        } else {                                                         \
                            int first = 1;                                               \
                            for (i = 0; i < kh; i++)                                     \
                                for (j = 0; j < kw; j++) {                               \
                                    const int32_t iy = y0 + i, ix = x0 + j;              \
                                    const int64_t v = (iy < 0 || iy >= H || ix < 0 ||    \
                                                       ix >= W)                          \
                                                          ? 0                            \
                                                          : LD(x, plane + iy * W + ix);  \
                                    if (first && IS_MAX)                                 \
                                        acc = v;                                         \
                                    OP(acc, v);                                          \
                                    first = 0;                                           \
                                }                                                        \
                        }                                                                \
                        chunk_a[ox - ox0] = acc;                                         \
                    }                                                                    \
                    store_chunk(y, (c * OH + oy) * OW + ox0, chunk_a, m);                \
                }                                                                        \
            }                                                                            \
    }
#define SNN_LD_I8(t, i) ((int64_t)((const int8_t *)(t)->data)[i])
SNN_DEFINE_POOL(sum_pool_i8, 0, SNN_POOL_SUM, SNN_LD_I8)
SNN_DEFINE_POOL(sum_pool_any, 0, SNN_POOL_SUM, ld)
SNN_DEFINE_POOL(max_pool_i8, 1, SNN_POOL_MAX, SNN_LD_I8)
SNN_DEFINE_POOL(max_pool_any, 1, SNN_POOL_MAX, ld)

/* one function for spikes (int8_t), one for every other input type */
void snn_sum_pool(const snn_layer_t *L)
{
    if (L->in[0]->type == SNN_I8)
        sum_pool_i8((const snn_pool_t *)L->p, L->in[0], L->out);
    else
        sum_pool_any((const snn_pool_t *)L->p, L->in[0], L->out);
}

void snn_max_pool(const snn_layer_t *L)
{
    if (L->in[0]->type == SNN_I8)
        max_pool_i8((const snn_pool_t *)L->p, L->in[0], L->out);
    else
        max_pool_any((const snn_pool_t *)L->p, L->in[0], L->out);
}

/* Flatten is a reshape: the emitter aliases the output to the input buffer, so this
 * copies only if it was given a separate buffer. */
void snn_flatten(const snn_layer_t *L)
{
    int32_t i, m;
    if (L->out->data == L->in[0]->data)
        return;
    for (i = 0; i < L->out->n; i += m) {
        m = min32(SNN_CHUNK, L->out->n - i);
        load_chunk(L->in[0], i, chunk_a, m);
        store_chunk(L->out, i, chunk_a, m);
    }
}

/* interpreter._eval "Add": element-wise sum of n_in same-shape inputs. */
void snn_add(const snn_layer_t *L)
{
    int32_t i, k, m;
    for (i = 0; i < L->out->n; i += m) {
        m = min32(SNN_CHUNK, L->out->n - i);
        load_chunk(L->in[0], i, chunk_a, m);
        for (k = 1; k < L->n_in; k++)
            add_chunk(L->in[k], i, chunk_a, m);
        store_chunk(L->out, i, chunk_a, m);
    }
}

/* ---------------------------------------------------------------------------- neuron */
/* chunk_b[k] = state_quant(chunk_b[k], level of the channel of element i0 + k). */
static void quant_chunk(const snn_lif_t *p, int32_t i0, int32_t m)
{
    const int32_t hw = p->v->h * p->v->w;
    int32_t k;
    for (k = 0; k < m; k++)
        chunk_b[k] = quant(chunk_b[k], vget(&p->level, (i0 + k) / hw), p->quant);
}

/* snncc.ops.neurons.NeuronState.step, element-wise (constants per channel c):
 *   u = ovf_u(decay(u, du) + (a << act_shift) + u_bias)
 *   v = ovf_v(decay(v, dv) + u + bias)
 *   s = fires && v > threshold;  v = s ? (0 | v - reset_value | v) : v
 *   v = state_quant(v, level)
 * in chunks of SNN_CHUNK elements widened to int64_t (a then s, v, u in chunk_a, _b,
 * _c), in runs of one channel with its constants; the (u, v) overflow mode pair is
 * switched on once per run.  Spike and reset are branch-free: with the mask f = -s,
 * v -= f & ((v & ~keep) + sub), where (keep, sub) is (0, 0) for reset zero,
 * (-1, reset_value) for subtract and (-1, 0) for none.
 * SNN_LIF_RUN is one run, elements k .. e - 1, for the overflow modes OVF_U, OVF_V. */
#define SNN_LIF_RUN(OVF_U, OVF_V)                                                           \
    if (has_u)                                                                              \
        for (; k < e; k++) {                                                                \
            const int64_t u = OVF_U(chunk_a[k] * in_mul + ub + decay(chunk_c[k], keep_u), mu); \
            const int64_t v = OVF_V(decay(chunk_b[k], keep_v) + u + bias, mv);              \
            const int64_t sp = fire & (int64_t)(v > thr);                                   \
            chunk_a[k] = sp;                                                                \
            chunk_b[k] = v - (-sp & ((v & drop) + sub));                                    \
            chunk_c[k] = u;                                                                 \
        }                                                                                   \
    else                                                                                    \
        for (; k < e; k++) {                                                                \
            const int64_t v = OVF_V(decay(chunk_b[k], keep_v) + OVF_U(chunk_a[k] * in_mul + ub, mu) + bias, mv); \
            const int64_t sp = fire & (int64_t)(v > thr);                                   \
            chunk_a[k] = sp;                                                                \
            chunk_b[k] = v - (-sp & ((v & drop) + sub));                                    \
        }                                                                                   \
    break

void snn_lif(const snn_layer_t *L)
{
    const snn_lif_t *p = (const snn_lif_t *)L->p;
    const snn_tensor_t *a = L->in[0], *s = L->out;
    const int32_t hw = s->h * s->w, modes = 3 * (p->u_ovf % 3) + p->v_ovf % 3;
    const int64_t in_mul = (int64_t)1 << p->act_shift;
    const int64_t keep_u = SNN_DECAY_ONE - p->du, keep_v = SNN_DECAY_ONE - p->dv;
    const int64_t mu = (int64_t)1 << (p->u_bits - 1), mv = (int64_t)1 << (p->v_bits - 1);
    const int64_t drop = p->reset == SNN_RESET_ZERO ? -1 : 0; /* ~keep */
    const int64_t fire = p->fires ? 1 : 0;
    const int has_u = p->u != 0; /* no current state: decay(u, 4096) = 0 */
    int32_t i0, k, m, c = 0, r = 0; /* element i0 + k is at offset r of channel c */
    for (i0 = 0; i0 < s->n; i0 += m) {
        m = min32(SNN_CHUNK, s->n - i0);
        load_chunk(a, i0, chunk_a, m);
        load_chunk(p->v, i0, chunk_b, m);
        if (has_u)
            load_chunk(p->u, i0, chunk_c, m);
        for (k = 0; k < m;) { /* a run of channel c: elements k .. e - 1 */
            const int32_t e = k + min32(m - k, hw - r);
            const int64_t thr = vget(&p->threshold, c), bias = vget(&p->bias, c);
            const int64_t sub = p->reset == SNN_RESET_SUBTRACT ? vget(&p->reset_value, c) : 0;
            const int64_t ub = p->u_bias.n ? vget(&p->u_bias, c) : 0;
            r += e - k;
            if (r == hw) {
                r = 0;
                c++;
            }
            switch (modes) { /* [u overflow][v overflow] */
            case 0: SNN_LIF_RUN(ovf_saturate, ovf_saturate);
            case 1: SNN_LIF_RUN(ovf_saturate, ovf_wrap);
            case 2: SNN_LIF_RUN(ovf_saturate, ovf_wrap_lava);
            case 3: SNN_LIF_RUN(ovf_wrap, ovf_saturate);
            case 4: SNN_LIF_RUN(ovf_wrap, ovf_wrap);
            case 5: SNN_LIF_RUN(ovf_wrap, ovf_wrap_lava);
            case 6: SNN_LIF_RUN(ovf_wrap_lava, ovf_saturate);
            case 7: SNN_LIF_RUN(ovf_wrap_lava, ovf_wrap);
            default: SNN_LIF_RUN(ovf_wrap_lava, ovf_wrap_lava);
            }
        }
        if (p->quant != SNN_QUANT_NONE)
            quant_chunk(p, i0, m);
        if (has_u)
            store_chunk(p->u, i0, chunk_c, m);
        store_chunk(p->v, i0, chunk_b, m);
        store_chunk(s, i0, chunk_a, m);
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

/* A neuron's initial state: u = 0, v = v_init (per channel). */
static void lif_start(const snn_lif_t *p)
{
    const int32_t hw = p->v->h * p->v->w;
    int32_t c, i, k, n;
    if (p->u != 0)
        zero_bytes(p->u->data, p->u->n * snn_type_size(p->u->type));
    for (c = 0; c < p->v->c; c++) /* channel by channel, in chunks */
        for (i = c * hw; i < (c + 1) * hw; i += n) {
            n = min32(SNN_CHUNK, (c + 1) * hw - i);
            for (k = 0; k < n; k++)
                chunk_a[k] = vget(&p->v_init, c);
            store_chunk(p->v, i, chunk_a, n);
        }
}

/* Initial state: empty delay lines, u = 0, v = v_init (per channel), step 0. */
void snncc_reset(const snn_model_t *m)
{
    int32_t k;
    *m->step = 0;
    for (k = 0; k < m->n_layers; k++) {
        const snn_layer_t *L = &m->layers[k];
        if (L->delay != 0) {
            zero_bytes(L->delay->ring, L->delay->depth * L->out->n * snn_type_size(L->out->type));
            L->delay->head = 0;
        }
        if (L->kind == SNN_LIF)
            lif_start((const snn_lif_t *)L->p);
    }
}

/* TNP (NeuronState.step): before step presim, keep = v > prune_level, then start again. */
static void tnp_start(const snn_lif_t *p, int64_t t)
{
    const int32_t hw = p->v->h * p->v->w;
    int32_t i, k, n;
    if (p->presim <= 0 || t != p->presim)
        return;
    for (i = 0; p->keep != 0 && i < p->v->n; i += n) {
        n = min32(SNN_CHUNK, p->v->n - i);
        load_chunk(p->v, i, chunk_a, n);
        for (k = 0; k < n; k++)
            chunk_a[k] = chunk_a[k] > vget(&p->prune_level, (i + k) / hw);
        store_chunk(p->keep, i, chunk_a, n);
    }
    lif_start(p);
}

/* TNP: from step presim on, only the kept neurons' spikes leave the layer. */
static void tnp_mask(const snn_layer_t *L, int64_t t)
{
    const snn_lif_t *p = (const snn_lif_t *)L->p;
    int32_t i, k, n;
    if (p->presim <= 0 || t < p->presim || p->keep == 0)
        return;
    for (i = 0; i < L->out->n; i += n) {
        n = min32(SNN_CHUNK, L->out->n - i);
        load_chunk(L->out, i, chunk_a, n);
        load_chunk(p->keep, i, chunk_b, n);
        for (k = 0; k < n; k++)
            chunk_a[k] &= chunk_b[k];
        store_chunk(L->out, i, chunk_a, n);
    }
}

void snncc_set_input(const snn_model_t *m, const int32_t *x)
{
    int32_t i, k, n;
    for (i = 0; i < m->input->n; i += n) {
        n = min32(SNN_CHUNK, m->input->n - i);
        for (k = 0; k < n; k++)
            chunk_a[k] = x[i + k];
        store_chunk(m->input, i, chunk_a, n);
    }
}

/* Lava's LIFReset: u = v = 0 before the layer's step t when t % interval == offset. */
static void periodic_reset(const snn_lif_t *p, int64_t t)
{
    if (p->reset_interval > 0 && t % p->reset_interval == p->reset_offset) {
        if (p->u != 0)
            zero_bytes(p->u->data, p->u->n * snn_type_size(p->u->type));
        zero_bytes(p->v->data, p->v->n * snn_type_size(p->v->type));
    }
}

/* One time step: every layer in topological order (interpreter.run's inner loop). */
void snncc_step(const snn_model_t *m)
{
    int32_t k;
    for (k = 0; k < m->n_layers; k++) {
        const snn_layer_t *L = &m->layers[k];
        if (L->kind == SNN_LIF) {
            periodic_reset((const snn_lif_t *)L->p, *m->step);
            tnp_start((const snn_lif_t *)L->p, *m->step);
        }
        kernels[L->kind](L);
        if (L->kind == SNN_LIF)
            tnp_mask(L, *m->step);
        if (L->delay != 0)
            delay_swap(L);
    }
    *m->step += 1;
}
