/* snncc_rt.c - integer kernels and the layer-table driver (see snncc_rt.h).
 *
 * Each kernel names the reference function it reproduces (snncc/reference/kernels.py,
 * interpreter.py, snncc/ops/neurons.py).  C99, no floats, no dynamic memory, no static
 * data: every buffer, scratch included, is declared by the generated model.c.
 *
 * Speed notes: a buffer's format is switched on once per row or chunk, never per element
 * in a hot loop; synapse accumulation is a contiguous add over output channels, a plain
 * loop over restrict pointers (vectorized on any target with SIMD, unrolled for an Arm
 * core without); the tile rows an input row reaches are found once per row; the neuron
 * update runs on chunks in int32_t wherever the emitter proved it exact. */
#include "snncc_rt.h"

#ifdef SNNCC_CHECKED
#include <stdio.h>
#include <stdlib.h>
#endif

/* the hot kernels' helpers are inlined into their callers whatever the compiler's size
 * heuristics say (with GCC and Clang; other compilers: a plain inline) */
#if defined(__GNUC__) || defined(__clang__)
#define SNN_HOT static inline __attribute__((always_inline))
#else
#define SNN_HOT static inline
#endif

/* GCC for an Arm core without SIMD (the Cortex-M4) does not unroll a plain loop at -O2:
 * the synapse runs ask for 4x (on the example's M4 builds 3-5 % fewer instructions for
 * 9 KB more code) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__ARM_ARCH) && !defined(__ARM_NEON)
#define SNN_UNROLL _Pragma("GCC unroll 4")
#else
#define SNN_UNROLL
#endif

static inline int32_t min32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

static inline int32_t max32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static inline int32_t ctz32(uint32_t v) /* v != 0 */
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(v);
#else
    int32_t n = 0;
    while (!(v & 1u)) {
        v >>= 1;
        n++;
    }
    return n;
#endif
}

static void zero_bytes(void *p, int32_t nbytes)
{
    uint8_t *b = (uint8_t *)p;
    int32_t i;
    for (i = 0; i < nbytes; i++)
        b[i] = 0;
}

int32_t snn_type_size(uint8_t type)
{
    return (int32_t)1 << type;
}

/* ------------------------------------------------------------------------ bit planes */
static inline int32_t words(int32_t n)
{
    return (n + 31) >> 5;
}

static inline uint32_t bit_get(const uint32_t *w, int32_t i)
{
    return (w[i >> 5] >> (i & 31)) & 1u;
}

/* bits i0 .. i0 + len - 1 (1 <= len <= 32), bit i0 first */
static inline uint32_t bits_field(const uint32_t *w, int32_t i0, int32_t len)
{
    const uint32_t sh = (uint32_t)i0 & 31u;
    uint32_t r = w[i0 >> 5] >> sh;
    if (sh + (uint32_t)len > 32u)
        r |= w[(i0 >> 5) + 1] << (32u - sh);
    return len == 32 ? r : r & ((1u << len) - 1u);
}

/* the low len bits of `bits` into positions i0 .. i0 + len - 1 (1 <= len <= 32) */
static inline void bits_put(uint32_t *w, int32_t i0, uint32_t bits, int32_t len)
{
    const uint32_t sh = (uint32_t)i0 & 31u, mask = len == 32 ? 0xffffffffu : (1u << len) - 1u;
    uint32_t *p = w + (i0 >> 5);
    bits &= mask;
    p[0] = (p[0] & ~(mask << sh)) | (bits << sh);
    if (sh + (uint32_t)len > 32u)
        p[1] = (p[1] & ~(mask >> (32u - sh))) | (bits >> (32u - sh));
}

/* ------------------------------------------------------------------ element access */
static inline int32_t s24(const snn_tensor_t *t, int32_t i)
{
    const uint16_t *lo = (const uint16_t *)t->data;
    const uint8_t *hi = (const uint8_t *)(lo + t->n);
    return ((int32_t)(hi[i] ^ 0x80u) - 0x80) * 65536 + (int32_t)lo[i];
}

static inline int64_t ld(const snn_tensor_t *t, int32_t i)
{
    const uint8_t *b = (const uint8_t *)t->data;
    switch (t->fmt) {
    case SNN_U1: return bit_get((const uint32_t *)t->data, i);
    case SNN_U4: return (b[i >> 1] >> (4 * (i & 1))) & 15;
    case SNN_S4: return (int64_t)(((b[i >> 1] >> (4 * (i & 1))) & 15) ^ 8) - 8;
    case SNN_U8: return b[i];
    case SNN_S8: return ((const int8_t *)t->data)[i];
    case SNN_U16: return ((const uint16_t *)t->data)[i];
    case SNN_S16: return ((const int16_t *)t->data)[i];
    case SNN_S24: return s24(t, i);
    case SNN_S32: return ((const int32_t *)t->data)[i];
    case SNN_S64: return ((const int64_t *)t->data)[i];
    default: /* SNN_T2 */
        return (int64_t)bit_get((const uint32_t *)t->data, i) -
               (int64_t)bit_get((const uint32_t *)t->data + words(t->n), i);
    }
}

int64_t snn_ld(const snn_tensor_t *t, int32_t i)
{
    return ld(t, i);
}

#ifdef SNNCC_CHECKED
static void check_fits(const snn_tensor_t *t, int64_t v)
{
    static const int64_t lo[] = {0, 0, -8, 0, -128, 0, -32768, -8388608, -2147483647 - 1, 0, -1};
    static const int64_t hi[] = {1, 15, 7, 255, 127, 65535, 32767, 8388607, 2147483647, 0, 1};
    if (t->fmt != SNN_S64 && (v < lo[t->fmt] || v > hi[t->fmt])) {
        fprintf(stderr, "snncc: value %lld does not fit storage format %d\n", (long long)v, (int)t->fmt);
        abort();
    }
}
#define SNN_CHECK(t, v) check_fits(t, v)
#else
#define SNN_CHECK(t, v) ((void)0)
#endif

static inline void st(const snn_tensor_t *t, int32_t i, int64_t v)
{
    uint8_t *b = (uint8_t *)t->data;
    SNN_CHECK(t, v);
    switch (t->fmt) {
    case SNN_U1: bits_put((uint32_t *)t->data, i, (uint32_t)v & 1u, 1); break;
    case SNN_U4:
    case SNN_S4: {
        const uint32_t sh = 4u * ((uint32_t)i & 1u);
        b[i >> 1] = (uint8_t)((b[i >> 1] & ~(15u << sh)) | (((uint32_t)((uint64_t)v & 15u)) << sh));
        break;
    }
    case SNN_U8: b[i] = (uint8_t)v; break;
    case SNN_S8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    case SNN_U16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
    case SNN_S16: ((int16_t *)t->data)[i] = (int16_t)v; break;
    case SNN_S24: {
        uint16_t *lo = (uint16_t *)t->data;
        uint8_t *hi = (uint8_t *)(lo + t->n);
        lo[i] = (uint16_t)((uint64_t)v & 0xffffu);
        hi[i] = (uint8_t)(((uint64_t)v >> 16) & 0xffu);
        break;
    }
    case SNN_S32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case SNN_S64: ((int64_t *)t->data)[i] = v; break;
    default: /* SNN_T2 */
        bits_put((uint32_t *)t->data, i, v > 0, 1);
        bits_put((uint32_t *)t->data + words(t->n), i, v < 0, 1);
        break;
    }
}

void snn_st(const snn_tensor_t *t, int32_t i, int64_t v)
{
    st(t, i, v);
}

/* dst[k] = t[i0 + k] for k < n, as type T: one format switch per chunk. */
#define SNN_LOAD_PLAIN(ST, T)                                                               \
    {                                                                                       \
        const ST *restrict s_ = (const ST *)t->data + i0;                                   \
        for (k = 0; k < n; k++)                                                             \
            dst[k] = (T)s_[k];                                                              \
    }                                                                                       \
    break
#define SNN_DEFINE_LOAD(NAME, T)                                                            \
    static void NAME(const snn_tensor_t *t, int32_t i0, int32_t n, T *restrict dst)         \
    {                                                                                       \
        int32_t k, j;                                                                       \
        switch (t->fmt) {                                                                   \
        case SNN_U8: SNN_LOAD_PLAIN(uint8_t, T);                                               \
        case SNN_S8: SNN_LOAD_PLAIN(int8_t, T);                                                \
        case SNN_U16: SNN_LOAD_PLAIN(uint16_t, T);                                             \
        case SNN_S16: SNN_LOAD_PLAIN(int16_t, T);                                              \
        case SNN_S32: SNN_LOAD_PLAIN(int32_t, T);                                              \
        case SNN_S64: SNN_LOAD_PLAIN(int64_t, T);                                              \
        case SNN_S24: {                                                                     \
            const uint16_t *restrict lo = (const uint16_t *)t->data + i0;                   \
            const uint8_t *restrict hi = (const uint8_t *)((const uint16_t *)t->data + t->n) + i0; \
            for (k = 0; k < n; k++)                                                         \
                dst[k] = (T)(((int32_t)(hi[k] ^ 0x80u) - 0x80) * 65536 + (int32_t)lo[k]);   \
            break;                                                                          \
        }                                                                                   \
        case SNN_U1:                                                                        \
        case SNN_T2:                                                                        \
            for (k = 0; k < n; k += 32) {                                                   \
                const int32_t m_ = min32(32, n - k);                                        \
                const uint32_t f_ = bits_field((const uint32_t *)t->data, i0 + k, m_);      \
                const uint32_t g_ = t->fmt == SNN_T2 ?                                      \
                    bits_field((const uint32_t *)t->data + words(t->n), i0 + k, m_) : 0u;   \
                if (m_ == 32) /* a constant trip count: vectorized */                       \
                    for (j = 0; j < 32; j++)                                                \
                        dst[k + j] = (T)((f_ >> j) & 1u) - (T)((g_ >> j) & 1u);             \
                else                                                                        \
                    for (j = 0; j < m_; j++)                                                \
                        dst[k + j] = (T)((f_ >> j) & 1u) - (T)((g_ >> j) & 1u);             \
            }                                                                               \
            break;                                                                          \
        default:                                                                            \
            for (k = 0; k < n; k++)                                                         \
                dst[k] = (T)ld(t, i0 + k);                                                  \
        }                                                                                   \
    }
SNN_DEFINE_LOAD(load32, int32_t)
SNN_DEFINE_LOAD(load64, int64_t)

/* t[i0 + k] = src[k] for k < n (the values fit the format: the emitter proves it). */
#define SNN_STORE_PLAIN(ST)                                                                 \
    {                                                                                       \
        ST *restrict d_ = (ST *)t->data + i0;                                               \
        for (k = 0; k < n; k++)                                                             \
            d_[k] = (ST)src[k];                                                             \
    }                                                                                       \
    break
#define SNN_DEFINE_STORE(NAME, T, UT)                                                       \
    static void NAME(const snn_tensor_t *t, int32_t i0, int32_t n, const T *restrict src)   \
    {                                                                                       \
        int32_t k, j;                                                                       \
        for (k = 0; k < n; k++)                                                             \
            SNN_CHECK(t, src[k]);                                                           \
        switch (t->fmt) {                                                                   \
        case SNN_U8: SNN_STORE_PLAIN(uint8_t);                                              \
        case SNN_S8: SNN_STORE_PLAIN(int8_t);                                               \
        case SNN_U16: SNN_STORE_PLAIN(uint16_t);                                            \
        case SNN_S16: SNN_STORE_PLAIN(int16_t);                                             \
        case SNN_S32: SNN_STORE_PLAIN(int32_t);                                             \
        case SNN_S64: SNN_STORE_PLAIN(int64_t);                                             \
        case SNN_S24: {                                                                     \
            uint16_t *restrict lo = (uint16_t *)t->data + i0;                               \
            uint8_t *restrict hi = (uint8_t *)((uint16_t *)t->data + t->n) + i0;            \
            for (k = 0; k < n; k++) {                                                       \
                lo[k] = (uint16_t)((UT)src[k] & 0xffffu);                                   \
                hi[k] = (uint8_t)(((UT)src[k] >> 16) & 0xffu);                              \
            }                                                                               \
            break;                                                                          \
        }                                                                                   \
        case SNN_U1:                                                                        \
            for (k = 0; k < n; k += 32) {                                                   \
                const int32_t m_ = min32(32, n - k);                                        \
                uint32_t f_ = 0;                                                            \
                if (m_ == 32) /* a constant trip count the vectorizer reduces */            \
                    for (j = 0; j < 32; j++)                                                \
                        f_ |= ((uint32_t)src[k + j] & 1u) << j;                             \
                else                                                                        \
                    for (j = 0; j < m_; j++)                                                \
                        f_ |= ((uint32_t)src[k + j] & 1u) << j;                             \
                bits_put((uint32_t *)t->data, i0 + k, f_, m_);                              \
            }                                                                               \
            break;                                                                          \
        case SNN_T2:                                                                        \
            for (k = 0; k < n; k += 32) {                                                   \
                const int32_t m_ = min32(32, n - k);                                        \
                uint32_t f_ = 0, g_ = 0;                                                    \
                for (j = 0; j < m_; j++) {                                                  \
                    f_ |= (uint32_t)(src[k + j] > 0) << j;                                  \
                    g_ |= (uint32_t)(src[k + j] < 0) << j;                                  \
                }                                                                           \
                bits_put((uint32_t *)t->data, i0 + k, f_, m_);                              \
                bits_put((uint32_t *)t->data + words(t->n), i0 + k, g_, m_);                \
            }                                                                               \
            break;                                                                          \
        default:                                                                            \
            for (k = 0; k < n; k++)                                                         \
                st(t, i0 + k, src[k]);                                                      \
        }                                                                                   \
    }
SNN_DEFINE_STORE(store32, int32_t, uint32_t)
SNN_DEFINE_STORE(store64, int64_t, uint64_t)

/* ------------------------------------------------------------------ probe output */
int32_t snn_write_probe(const snn_probe_t *p, int32_t i0, int32_t n, uint8_t *dst)
{
    const snn_tensor_t *t = p->t;
    const int32_t size = snn_type_size(p->io);
    int64_t v[64];
    int32_t k, j, m, b = 0;
    for (k = 0; k < n; k += m) {
        m = min32(64, n - k);
        load64(t, i0 + k, m, v);
        if (p->level != 0)
            for (j = 0; j < m; j++) {
                const int32_t c = (i0 + k + j) % t->c;
                v[j] *= p->wide ? ((const int64_t *)p->level)[c] : ((const int32_t *)p->level)[c];
            }
        switch (size) { /* little-endian two's complement, one loop per width */
        case 1:
            for (j = 0; j < m; j++)
                dst[b + j] = (uint8_t)(uint64_t)v[j];
            break;
        case 2:
            for (j = 0; j < m; j++) {
                const uint64_t u = (uint64_t)v[j];
                dst[b + 2 * j] = (uint8_t)u;
                dst[b + 2 * j + 1] = (uint8_t)(u >> 8);
            }
            break;
        default:
            for (j = 0; j < m; j++) {
                const uint64_t u = (uint64_t)v[j];
                int32_t q;
                for (q = 0; q < size; q++)
                    dst[b + size * j + q] = (uint8_t)(u >> (8 * q));
            }
        }
        b += size * m;
    }
    return b;
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
static inline int64_t decay64(int64_t x, int64_t keep) /* keep = 4096 - d */
{
    return x * keep / SNN_DECAY_ONE; /* C99 division truncates toward zero: exactly this */
}

/* The same in 32 bits for any |x| < 2^31: |x| keep = (hi 4096 + lo) keep, so
 * (|x| keep) >> 12 = hi keep + ((lo keep) >> 12), and neither product overflows. */
static inline int32_t decay32(int32_t x, int32_t keep)
{
    const uint32_t a = x < 0 ? 0u - (uint32_t)x : (uint32_t)x;
    const uint32_t r = (a >> 12) * (uint32_t)keep + (((a & 4095u) * (uint32_t)keep) >> 12);
    return x < 0 ? -(int32_t)r : (int32_t)r;
}

/* decay(x, d) where keep = 4096 - d is a power of two 2^(12 - sh): sign(x) (|x| >> sh), the
 * same value as decay32 (|x| keep >> 12 without a remainder to drop); for the int32 update
 * only (the int64 one keeps the specification's wrapping product) */
#define SNN_DEFINE_DECAY_SH(SFX, T, UT)                                                     \
    static inline T decay_sh##SFX(T x, int32_t sh)                                          \
    {                                                                                       \
        const UT a = x < 0 ? (UT)0 - (UT)x : (UT)x;                                         \
        return x < 0 ? -(T)(a >> sh) : (T)(a >> sh);                                       \
    }
SNN_DEFINE_DECAY_SH(32, int32_t, uint32_t)
SNN_DEFINE_DECAY_SH(64, int64_t, uint64_t)

/* sh for decay_sh where keep is a power of two and the update is int32 (size 4), else -1 */
static int32_t decay_shift(int64_t keep, int32_t size)
{
    int32_t sh = SNN_DECAY_SHIFT;
    if (size != 4 || keep <= 0 || (keep & (keep - 1)) != 0)
        return -1;
    while (keep > 1) {
        keep >>= 1;
        sh--;
    }
    return sh;
}

int64_t snn_decay(int64_t x, int32_t d)
{
    return decay64(x, SNN_DECAY_ONE - d);
}

int32_t snn_decay32(int32_t x, int32_t d)
{
    return decay32(x, SNN_DECAY_ONE - d);
}

/* kernels.overflow into a register of 2m values (m = 2^(bits-1)): symmetric clip, two's
 * complement wrap, Lava's single fold.  T is int32_t (bits <= 30, |x| < 2^30: the
 * emitter proves it) or int64_t (bits <= 62). */
#define SNN_DEFINE_OVF(SUFFIX, T, UT)                                                       \
    static inline T ovf_saturate##SUFFIX(T x, T m)                                          \
    {                                                                                       \
        return x > m - 1 ? m - 1 : (x < -(m - 1) ? -(m - 1) : x);                           \
    }                                                                                       \
    static inline T ovf_wrap##SUFFIX(T x, T m)                                              \
    {                                                                                       \
        return (T)(((UT)x + (UT)m) & (2u * (UT)m - 1u)) - m;                                \
    }                                                                                       \
    static inline T ovf_wrap_lava##SUFFIX(T x, T m)                                         \
    {                                                                                       \
        return x > m ? x - 2 * m : (x <= -m ? x + 2 * m : x);                               \
    }
SNN_DEFINE_OVF(32, int32_t, uint32_t)
SNN_DEFINE_OVF(64, int64_t, uint64_t)

static inline int64_t overflow(int64_t x, int64_t m, int32_t mode)
{
    switch (mode) {
    case SNN_SATURATE: return ovf_saturate64(x, m);
    case SNN_WRAP: return ovf_wrap64(x, m);
    default: return ovf_wrap_lava64(x, m);
    }
}

int64_t snn_overflow(int64_t x, int32_t bits, int32_t mode)
{
    return overflow(x, (int64_t)1 << (bits - 1), mode);
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

/* interpreter._eval: shift by weight_exp, then wrap to out_bits when out_bits > 0. */
static inline int64_t synapse_out(int64_t acc, int32_t exp, int32_t out_bits)
{
    acc = shift(acc, exp);
    return out_bits > 0 ? overflow(acc, (int64_t)1 << (out_bits - 1), SNN_WRAP) : acc;
}

/* ------------------------------------------------------------------ synapses: scatter */
/* What one synapse adds into one tile's accumulator. */
typedef struct {
    const snn_syn_t *s;
    void *acc;             /* the tile: conv (rows, xhi - xlo, O) from (lo, xlo); dense outputs lo .. hi - 1 */
    void *wbuf;            /* decoded weights of one run (acc type) */
    int32_t O, og, cg;     /* outputs per pixel, outputs and input channels per group */
    int32_t lo, hi;        /* conv: output rows [lo, hi); dense: outputs [lo, hi) */
    int32_t xlo, xhi;      /* conv: output columns [xlo, xhi) (the whole width, or one row's part) */
    int span;              /* conv with stride 1, dilation 1, one group: kw taps are one run */
    int point;             /* conv 1x1, stride 1, no padding: an input adds to its own pixel */
    uint32_t cstep;        /* conv: weights of one input channel (kh kw og) */
    int32_t ring;          /* > 0: output row r is tile row r % ring (a line buffer), else r - lo */
    int32_t in_lo, in_hi;  /* ring: the input rows [in_lo, in_hi) to scan */
} snn_acc_ctx;

/* a[o] += w[o] (spikes) and a[o] += w[o] * x for o < n: contiguous and restrict, one plain
 * loop the vectorizer turns into SIMD adds (with its own tail), with weights read as int8_t
 * in place (W_T = int8_t) or decoded into the accumulator's type.  Every product and
 * partial sum fits ACC_T (the emitter proves it), so every conversion is exact. */
#define SNN_DEFINE_AXPY(ADD, MAC, ACC_T, W_T)                                               \
    static inline void ADD(ACC_T *restrict a, const W_T *restrict w, int32_t n)             \
    {                                                                                       \
        int32_t o;                                                                          \
        SNN_UNROLL                                                                          \
        for (o = 0; o < n; o++)                                                             \
            a[o] = (ACC_T)(a[o] + w[o]);                                                    \
    }                                                                                       \
    static inline void MAC(ACC_T *restrict a, const W_T *restrict w, ACC_T x, int32_t n)    \
    {                                                                                       \
        int32_t o;                                                                          \
        SNN_UNROLL                                                                          \
        for (o = 0; o < n; o++)                                                             \
            a[o] = (ACC_T)(a[o] + w[o] * x);                                                \
    }
SNN_DEFINE_AXPY(add16_w8, mac16_w8, int16_t, int8_t)
SNN_DEFINE_AXPY(add32_w8, mac32_w8, int32_t, int8_t)
SNN_DEFINE_AXPY(add64_w8, mac64_w8, int64_t, int8_t)
SNN_DEFINE_AXPY(add16_ww, mac16_ww, int16_t, int16_t)
SNN_DEFINE_AXPY(add32_ww, mac32_ww, int32_t, int32_t)
SNN_DEFINE_AXPY(add64_ww, mac64_ww, int64_t, int64_t)

/* weights i0 .. i0 + n - 1 of a packed array (LSB first, as wget reads them), decoded:
 * 4-bit runs two at a time; on a 64-bit core, narrower than 8 bits from a byte boundary 8
 * at a time (they fill `bits` whole bytes: one 64-bit group, fixed shifts; on a 32-bit core
 * such as the Cortex-M4 its 64-bit shifts cost more than the window: 76 M against 56 M
 * instructions per inference of model_a); the rest below 16 bits through a window of bits */
#if defined(UINTPTR_MAX) && UINTPTR_MAX > 0xffffffffu
#define SNN_GROUP64 1
#else
#define SNN_GROUP64 0
#endif
/* the 8 bytes from b as a little-endian 64-bit value (one load on a little-endian core) */
static inline uint64_t load_le64(const uint8_t *b)
{
    uint64_t x = 0;
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    __builtin_memcpy(&x, b, 8);
#else
    int32_t j;
    for (j = 0; j < 8; j++)
        x |= (uint64_t)b[j] << (8 * j);
#endif
    return x;
}

#define SNN_DEFINE_DECODE(NAME, T)                                                          \
    static void NAME(T *restrict dst, const uint8_t *restrict w, uint32_t i0, int32_t n,    \
                     uint32_t bits)                                                         \
    {                                                                                       \
        int32_t k = 0;                                                                      \
        if (bits == 4 && (i0 & 1u) == 0) {                                                  \
            const uint8_t *restrict b = w + (i0 >> 1);                                      \
            for (; k + 2 <= n; k += 2) {                                                    \
                dst[k] = (T)((int32_t)((b[k >> 1] & 15u) ^ 8u) - 8);                        \
                dst[k + 1] = (T)((int32_t)((b[k >> 1] >> 4) ^ 8u) - 8);                     \
            }                                                                               \
        }                                                                                   \
        if (SNN_GROUP64 && k == 0 && bits < 8 && ((uint64_t)i0 * bits & 7u) == 0) {         \
            /* 8 weights in `bits` whole bytes: one 64-bit group, fixed shifts */           \
            const uint8_t *restrict b = w + (uint64_t)i0 * bits / 8u;                       \
            const uint64_t mask = ((uint64_t)1 << bits) - 1u, sign = (uint64_t)1 << (bits - 1u); \
            /* groups whose 8 bytes from b are all inside the request: one 64-bit load */ \
            const int32_t ahead = 8 * (int32_t)((8u + bits - 1u) / bits);                  \
            for (; k + 8 <= n; k += 8, b += bits) {                                         \
                uint64_t g = 0;                                                             \
                uint32_t j;                                                                 \
                if (k + ahead <= n) /* bytes past the group: the next groups' */            \
                    g = load_le64(b);                                                       \
                else                                                                        \
                    for (j = 0; j < bits; j++)                                              \
                        g |= (uint64_t)b[j] << (8u * j);                                    \
                for (j = 0; j < 8; j++)                                                     \
                    dst[k + (int32_t)j] = (T)((int64_t)(((g >> (j * bits)) & mask) ^ sign) - (int64_t)sign); \
            }                                                                               \
        }                                                                                   \
        if (k < n && bits < 16) { /* the rest through a bit window, refilled a byte at a time */ \
            const uint64_t bit0 = (uint64_t)(i0 + (uint32_t)k) * bits;                      \
            const uint8_t *restrict b = w + (bit0 >> 3);                                    \
            const uint32_t mask = (1u << bits) - 1u, sign = 1u << (bits - 1u);              \
            uint32_t have = 8u - (uint32_t)(bit0 & 7u);                                     \
            uint32_t win = (uint32_t)*b++ >> (bit0 & 7u);                                   \
            for (; k < n; k++) {                                                            \
                uint32_t v;                                                                 \
                while (have < bits) { /* the bytes this field spans: inside the array */    \
                    win |= (uint32_t)*b++ << have;                                          \
                    have += 8u;                                                             \
                }                                                                           \
                v = win & mask;                                                             \
                win >>= bits;                                                               \
                have -= bits;                                                               \
                dst[k] = (T)((int32_t)(v ^ sign) - (int32_t)sign);                          \
            }                                                                               \
        }                                                                                   \
        for (; k < n; k++)                                                                  \
            dst[k] = (T)wget(w, i0 + (uint32_t)k, bits);                                    \
    }
SNN_DEFINE_DECODE(decode16, int16_t)
SNN_DEFINE_DECODE(decode32, int32_t)
SNN_DEFINE_DECODE(decode64, int64_t)

/* a[0 .. n) += x * (weights w0 .. w0 + n - 1 of the synapse) */
#define SNN_DEFINE_RUN(NAME, ACC_T, ADD8, MAC8, ADDW, MACW, DECODE)                         \
    SNN_HOT void NAME(const snn_acc_ctx *q, ACC_T *a, uint32_t w0, ACC_T x, int32_t n)     \
    {                                                                                       \
        const snn_syn_t *s = q->s;                                                          \
        if (s->bits == 8) {                                                                 \
            const int8_t *w = (const int8_t *)s->w + w0;                                    \
            if (x == 1)                                                                     \
                ADD8(a, w, n);                                                              \
            else                                                                            \
                MAC8(a, w, x, n);                                                           \
        } else {                                                                            \
            ACC_T *wb = (ACC_T *)q->wbuf;                                                   \
            DECODE(wb, s->w, w0, n, s->bits);                                               \
            if (x == 1)                                                                     \
                ADDW(a, wb, n);                                                             \
            else                                                                            \
                MACW(a, wb, x, n);                                                          \
        }                                                                                   \
    }
/* three runs of 8-bit weights at once: a[r][o] += x * w[r][o] for r < 3, o < n */
#define SNN_DEFINE_RUN3(NAME, ACC_T)                                                        \
    SNN_HOT void NAME(ACC_T *restrict a0, ACC_T *restrict a1, ACC_T *restrict a2,           \
                      const int8_t *restrict w0, const int8_t *restrict w1,                 \
                      const int8_t *restrict w2, ACC_T x, int32_t n)                        \
    {                                                                                       \
        int32_t o;                                                                          \
        if (x == 1)                                                                         \
            for (o = 0; o < n; o++) {                                                       \
                a0[o] = (ACC_T)(a0[o] + w0[o]);                                             \
                a1[o] = (ACC_T)(a1[o] + w1[o]);                                             \
                a2[o] = (ACC_T)(a2[o] + w2[o]);                                             \
            }                                                                               \
        else                                                                                \
            for (o = 0; o < n; o++) {                                                       \
                a0[o] = (ACC_T)(a0[o] + w0[o] * x);                                         \
                a1[o] = (ACC_T)(a1[o] + w1[o] * x);                                         \
                a2[o] = (ACC_T)(a2[o] + w2[o] * x);                                         \
            }                                                                               \
    }
SNN_DEFINE_RUN3(run3_16, int16_t)
SNN_DEFINE_RUN3(run3_32, int32_t)
SNN_DEFINE_RUN3(run3_64, int64_t)

SNN_DEFINE_RUN(run16, int16_t, add16_w8, mac16_w8, add16_ww, mac16_ww, decode16)
SNN_DEFINE_RUN(run32, int32_t, add32_w8, mac32_w8, add32_ww, mac32_ww, decode32)
SNN_DEFINE_RUN(run64, int64_t, add64_w8, mac64_w8, add64_ww, mac64_ww, decode64)

/* kernels.conv2d as a scatter: the input value x at (iy, ix, c) adds, for each kernel
 * tap (i, j) that maps it onto an output (oy, ox) of the tile (oy * sh = iy + ph - i * dh,
 * ox * sw = ix + pw - j * dw), x * W[group outputs, c % cg, i, j] to acc[oy, ox, group
 * outputs].  With stride 1, dilation 1 and one group, the kw taps of an interior input
 * reach kw adjacent outputs whose sums are adjacent, as are their weights: one run. */
#define SNN_DEFINE_CONV_EVENT(NAME, ACC_T, RUN)                                             \
    static void NAME(const snn_acc_ctx *q, int32_t iy, int32_t ix, int32_t c, int64_t xv)   \
    {                                                                                       \
        const snn_syn_t *s = q->s;                                                          \
        const int32_t O = q->O, og = q->og, kw = s->kw, xlo = q->xlo, xhi = q->xhi;         \
        const int32_t g = s->groups == 1 ? 0 : c / q->cg;                                   \
        int32_t i, j;                                                                       \
        for (i = 0; i < s->kh; i++) {                                                       \
            const int32_t ty = iy + s->ph - i * s->dh, ox0 = ix + s->pw - (kw - 1);         \
            const uint32_t w0 = (uint32_t)((c * s->kh + i) * kw) * (uint32_t)og;            \
            int32_t oy;                                                                     \
            ACC_T *arow;                                                                    \
            if (ty < 0)                                                                     \
                break; /* ty decreases with i */                                            \
            if (s->sh == 1)                                                                 \
                oy = ty;                                                                    \
            else if (ty % s->sh != 0)                                                       \
                continue;                                                                   \
            else                                                                            \
                oy = ty / s->sh;                                                            \
            if (oy < q->lo || oy >= q->hi)                                                  \
                continue;                                                                   \
            arow = (ACC_T *)q->acc + (oy - q->lo) * (xhi - xlo) * O + g * og;               \
            if (q->span && ox0 >= xlo && ix + s->pw < xhi) {                                \
                RUN(q, arow + (ox0 - xlo) * O, w0, (ACC_T)xv, kw * O);                      \
                continue;                                                                   \
            }                                                                               \
            for (j = 0; j < kw; j++) {                                                      \
                const int32_t tx = ix + s->pw - j * s->dw;                                  \
                int32_t ox;                                                                 \
                if (tx < 0)                                                                 \
                    break;                                                                  \
                if (s->sw == 1)                                                             \
                    ox = tx;                                                                \
                else if (tx % s->sw != 0)                                                   \
                    continue;                                                               \
                else                                                                        \
                    ox = tx / s->sw;                                                        \
                if (ox >= xlo && ox < xhi)                                                  \
                    RUN(q, arow + (ox - xlo) * O, w0 + (uint32_t)((kw - 1 - j) * og), (ACC_T)xv, og); \
            }                                                                               \
        }                                                                                   \
    }
SNN_DEFINE_CONV_EVENT(conv_event16, int16_t, run16)
SNN_DEFINE_CONV_EVENT(conv_event32, int32_t, run32)
SNN_DEFINE_CONV_EVENT(conv_event64, int64_t, run64)

/* kernels.dense as a scatter: the input value x at (storage) position i adds x * W[:, i]
 * (the run of weights i * O + lo .. i * O + hi - 1) to the tile's outputs. */
#define SNN_DEFINE_DENSE_EVENT(NAME, ACC_T, RUN)                                            \
    static void NAME(const snn_acc_ctx *q, int32_t i, int64_t xv)                           \
    {                                                                                       \
        RUN(q, (ACC_T *)q->acc, (uint32_t)i * (uint32_t)q->O + (uint32_t)q->lo, (ACC_T)xv,  \
            q->hi - q->lo);                                                                 \
    }
SNN_DEFINE_DENSE_EVENT(dense_event16, int16_t, run16)
SNN_DEFINE_DENSE_EVENT(dense_event32, int32_t, run32)
SNN_DEFINE_DENSE_EVENT(dense_event64, int64_t, run64)

/* Calls EVENT(position, value) for every nonzero value of t[i0 .. i0 + n), in order:
 * spikes word by word (set bits), 4-bit values byte by byte, others element by element. */
#define SNN_SCAN_PLAIN(ST, t, i0, n, EVENT)                                                  \
    {                                                                                       \
        const ST *s_ = (const ST *)(t)->data + (i0);                                        \
        for (k = 0; k < (n); k++)                                                           \
            if (s_[k] != 0)                                                                 \
                EVENT(k, (int64_t)s_[k]);                                                   \
    }                                                                                       \
    break
#define SNN_SCAN(t, i0, n, EVENT)                                                           \
    switch ((t)->fmt) {                                                                     \
    case SNN_U1:                                                                            \
        for (k = 0; k < n; k += 32) {                                                       \
            uint32_t f_ = bits_field((const uint32_t *)t->data, i0 + k, min32(32, n - k));  \
            while (f_) {                                                                    \
                EVENT(k + ctz32(f_), 1);                                                    \
                f_ &= f_ - 1u;                                                              \
            }                                                                               \
        }                                                                                   \
        break;                                                                              \
    case SNN_U8: SNN_SCAN_PLAIN(uint8_t, t, i0, n, EVENT);                                                   \
    case SNN_S8: SNN_SCAN_PLAIN(int8_t, t, i0, n, EVENT);                                                    \
    case SNN_S16: SNN_SCAN_PLAIN(int16_t, t, i0, n, EVENT);                                                  \
    case SNN_S32: SNN_SCAN_PLAIN(int32_t, t, i0, n, EVENT);                                                  \
    case SNN_U4:                                                                            \
        if (((i0) & 1) == 0) {                                                              \
            const uint8_t *b_ = (const uint8_t *)t->data + ((i0) >> 1);                     \
            for (k = 0; k < n; k += 2) {                                                    \
                const uint32_t v_ = b_[k >> 1];                                             \
                if (v_ == 0)                                                                \
                    continue;                                                               \
                if (v_ & 15u)                                                               \
                    EVENT(k, (int64_t)(v_ & 15u));                                          \
                if ((v_ >> 4) && k + 1 < n)                                                 \
                    EVENT(k + 1, (int64_t)(v_ >> 4));                                       \
            }                                                                               \
            break;                                                                          \
        } /* fall through */                                                                \
    default:                                                                                \
        for (k = 0; k < n; k++) {                                                           \
            const int64_t v_ = ld(t, (i0) + k);                                             \
            if (v_ != 0)                                                                    \
                EVENT(k, v_);                                                               \
        }                                                                                   \
    }

/* the tile row of output row r */
static inline int32_t tile_row(const snn_acc_ctx *q, int32_t r)
{
    return q->ring ? r % q->ring : r - q->lo;
}

#define SNN_MAXKH 16 /* kernel rows whose tile rows an input row finds once (taller: per event) */

/* the tile rows an input row reaches, with their weight rows (rows_once) */
typedef struct {
    void *rows[SNN_MAXKH];
    uint32_t wrow[SNN_MAXKH];
    int32_t nr;
} snn_row_hits;

/* input (iy, ix, c) = v into the tile: per tile row in h (rows_once), one run of the taps
 * that land in the tile's columns [xlo, xhi) (those of one row of weights are adjacent,
 * as are their sums; three rows of 8-bit weights in one loop); a 1x1 stride-1 unpadded conv
 * in groups (a depthwise scale) adds its og weights at the input's own pixel; anything
 * else goes through the event function, which finds its taps itself.  Inlined into the
 * spike scan (the hot one), called out of line from the other formats' scans (inlined into
 * all of them it doubled the runtime's compile time for little). */
#define SNN_DEFINE_CONV_HIT(NAME, ACC_T, RUN, RUN3, EVENT_FN)                               \
    SNN_HOT void NAME##_in(const snn_acc_ctx *q, const snn_row_hits *h, int rows_once, int32_t iy, \
                     int32_t ix, int32_t c, ACC_T v)                                        \
    {                                                                                       \
        const snn_syn_t *s = q->s;                                                          \
        const int32_t O = q->O, xlo = q->xlo, xhi = q->xhi;                                 \
        if (rows_once) {                                                                    \
            const int32_t ox0 = ix + s->pw - (s->kw - 1);                                   \
            const int32_t oa = max32(ox0, xlo), ob = min32(ix + s->pw + 1, xhi), n = (ob - oa) * O; \
            const uint32_t w0 = (uint32_t)c * q->cstep + (uint32_t)((oa - ox0) * O);        \
            int32_t r;                                                                      \
            if (oa >= ob)                                                                   \
                return;                                                                     \
            if (h->nr == 3 && s->bits == 8) {                                               \
                const int8_t *w = (const int8_t *)s->w + w0;                                \
                RUN3((ACC_T *)h->rows[0] + (oa - xlo) * O, (ACC_T *)h->rows[1] + (oa - xlo) * O, \
                     (ACC_T *)h->rows[2] + (oa - xlo) * O, w + h->wrow[0], w + h->wrow[1],  \
                     w + h->wrow[2], v, n);                                                 \
            } else                                                                          \
                for (r = 0; r < h->nr; r++)                                                 \
                    RUN(q, (ACC_T *)h->rows[r] + (oa - xlo) * O, w0 + h->wrow[r], v, n);    \
        } else if (q->point) {                                                              \
            ACC_T *a = (ACC_T *)q->acc + (tile_row(q, iy) * (xhi - xlo) + ix - xlo) * O + c / q->cg * q->og; \
            if (q->og == 1) /* depthwise: one weight */                                     \
                a[0] = (ACC_T)(a[0] + (ACC_T)wget(s->w, (uint32_t)c, s->bits) * v);         \
            else                                                                            \
                RUN(q, a, (uint32_t)(c * q->og), v, q->og);                                 \
        } else                                                                              \
            EVENT_FN(q, iy, ix, c, v);                                                      \
    }                                                                                       \
    static void NAME(const snn_acc_ctx *q, const snn_row_hits *h, int rows_once, int32_t iy, \
                     int32_t ix, int32_t c, ACC_T v)                                        \
    {                                                                                       \
        NAME##_in(q, h, rows_once, iy, ix, c, v);                                           \
    }
SNN_DEFINE_CONV_HIT(conv_hit16, int16_t, run16, run3_16, conv_event16)
SNN_DEFINE_CONV_HIT(conv_hit32, int32_t, run32, run3_32, conv_event32)
SNN_DEFINE_CONV_HIT(conv_hit64, int64_t, run64, run3_64, conv_event64)

/* One conv synapse into a tile: the input rows that reach output rows lo .. hi - 1, each
 * scanned once, pixel by pixel (spikes: a pixel's channels are one bit field), every
 * nonzero input through the hit function.  With stride 1 and dilation 1 along x and one
 * group (q->span, rows_once), the tile rows an input row reaches, and their weight rows,
 * are found once per input row.  CONV_HIT_NOW and CONV_ACC_T are defined around each
 * instance (SNN_SCAN's event macro SNN_CONV_AT takes two arguments). */
#define SNN_DEFINE_CONV_ACC(NAME, ACC_T)                                                    \
    static void NAME(const snn_acc_ctx *q)                                                  \
    {                                                                                       \
        const snn_syn_t *s = q->s;                                                          \
        const snn_tensor_t *t = s->x;                                                       \
        const int32_t C = t->c, W = t->w, kw_ = s->kw, O = q->O;                            \
        const int32_t iy0 = q->ring ? q->in_lo : max32(0, q->lo * s->sh - s->ph);          \
        const int32_t iy1 = q->ring ? q->in_hi                                              \
                                    : min32(t->h, (q->hi - 1) * s->sh - s->ph + (s->kh - 1) * s->dh + 1); \
        const int32_t ix0 = max32(0, q->xlo * s->sw - s->pw);                               \
        const int32_t ix1 = min32(W, (q->xhi - 1) * s->sw - s->pw + (kw_ - 1) * s->dw + 1); \
        const int rows_once = q->span && s->kh <= SNN_MAXKH;                                \
        snn_row_hits h;                                                                     \
        int32_t iy, ix, c0, k, i;                                                           \
        for (iy = iy0; iy < iy1 && ix0 < ix1; iy++) {                                      \
            const int32_t base = (iy * W + ix0) * C;                                        \
            for (i = 0, h.nr = 0; rows_once && i < s->kh; i++) {                            \
                const int32_t ty = iy + s->ph - i * s->dh;                                  \
                if (ty < 0)                                                                 \
                    break; /* ty decreases with i */                                        \
                if (ty % s->sh != 0 || ty / s->sh < q->lo || ty / s->sh >= q->hi)           \
                    continue;                                                               \
                h.rows[h.nr] = (ACC_T *)q->acc + tile_row(q, ty / s->sh) * (q->xhi - q->xlo) * O; \
                h.wrow[h.nr++] = (uint32_t)(i * kw_ * q->og);                               \
            }                                                                               \
            if (rows_once && h.nr == 0)                                                     \
                continue;                                                                   \
            if (t->fmt == SNN_U1 && C > 1) {                                                \
                const uint32_t *bits = (const uint32_t *)t->data;                           \
                for (ix = ix0; ix < ix1; ix++)                                              \
                    for (c0 = 0; c0 < C; c0 += 32) {                                        \
                        uint32_t f = bits_field(bits, base + (ix - ix0) * C + c0, min32(32, C - c0)); \
                        while (f) {                                                         \
                            CONV_HIT_IN(q, &h, rows_once, iy, ix, c0 + ctz32(f), 1);        \
                            f &= f - 1u;                                                    \
                        }                                                                   \
                    }                                                                       \
            } else {                                                                        \
                const int32_t n = (ix1 - ix0) * C;                                          \
                int32_t cc = 0, px = ix0, last = 0; /* position k = (px - ix0) * C + cc */  \
                SNN_SCAN(t, base, n, SNN_CONV_AT)                                           \
            }                                                                               \
        }                                                                                   \
    }
/* position k of the row -> (px, cc) by stepping from the last position (no division) */
#define SNN_CONV_AT(pos, val)                                                               \
    do {                                                                                    \
        const int32_t pos_ = (pos);                                                         \
        if (C == 1) {                                                                       \
            px = ix0 + pos_;                                                                \
            cc = 0;                                                                         \
        } else {                                                                            \
            cc += pos_ - last;                                                              \
            while (cc >= C) {                                                               \
                cc -= C;                                                                    \
                px++;                                                                       \
            }                                                                               \
            last = pos_;                                                                    \
        }                                                                                   \
        CONV_HIT_NOW(q, &h, rows_once, iy, px, cc, (CONV_ACC_T)(val));                     \
    } while (0)
#define CONV_ACC_T int16_t
#define CONV_HIT_NOW conv_hit16
#define CONV_HIT_IN conv_hit16_in
SNN_DEFINE_CONV_ACC(conv_acc16, int16_t)
#undef CONV_ACC_T
#undef CONV_HIT_NOW
#undef CONV_HIT_IN
#define CONV_ACC_T int32_t
#define CONV_HIT_NOW conv_hit32
#define CONV_HIT_IN conv_hit32_in
SNN_DEFINE_CONV_ACC(conv_acc32, int32_t)
#undef CONV_ACC_T
#undef CONV_HIT_NOW
#undef CONV_HIT_IN
#define CONV_ACC_T int64_t
#define CONV_HIT_NOW conv_hit64
#define CONV_HIT_IN conv_hit64_in
SNN_DEFINE_CONV_ACC(conv_acc64, int64_t)
#undef CONV_ACC_T
#undef CONV_HIT_NOW
#undef CONV_HIT_IN

#define SNN_GB 16 /* outputs per gather block */
/* nb (<= SNN_GB) outputs og0 .. og0 + nb - 1 of group g at one output pixel: a constant nb
 * (SNN_GB for every full block) lets the compiler keep the sums in vector registers */
#define SNN_DEFINE_GATHER_BLOCK(NAME, ACC_T, X_T, P_T)                                      \
    static inline void NAME(const snn_acc_ctx *q, ACC_T *restrict arow, int32_t oy, int32_t ox, \
                            int32_t g, int32_t og0, const int32_t nb)                       \
    {                                                                                       \
        const snn_syn_t *s = q->s;                                                          \
        const snn_tensor_t *t = s->x;                                                       \
        const X_T *restrict x = (const X_T *)t->data;                                       \
        const int32_t C = t->c, og = q->og, cg = q->cg, kh = s->kh, kw = s->kw;             \
        const int32_t cstride = kh * kw * og; /* weights of one input channel */            \
        const int32_t y0 = oy * s->sh - s->ph, x0 = ox * s->sw - s->pw;                     \
        int32_t i0 = 0, i1 = kh, j0 = 0, j1 = kw, i, j, c, k; /* the taps inside the input */ \
        ACC_T a[SNN_GB];                                                                    \
        while (i0 < kh && y0 + i0 * s->dh < 0)                                              \
            i0++;                                                                           \
        while (i1 > i0 && y0 + (i1 - 1) * s->dh >= t->h)                                    \
            i1--;                                                                           \
        while (j0 < kw && x0 + j0 * s->dw < 0)                                              \
            j0++;                                                                           \
        while (j1 > j0 && x0 + (j1 - 1) * s->dw >= t->w)                                    \
            j1--;                                                                           \
        for (k = 0; k < nb; k++)                                                            \
            a[k] = arow[k];                                                                 \
        for (i = i0; i < i1; i++) {                                                         \
            const X_T *restrict xr = x + ((y0 + i * s->dh) * t->w + x0) * C + g * cg;       \
            const int8_t *restrict wr =                                                     \
                (const int8_t *)s->w + ((g * cg * kh + i) * kw + kw - 1) * og + og0;        \
            for (j = j0; j < j1; j++) {                                                     \
                const X_T *restrict xp = xr + j * s->dw * C;                                \
                const int8_t *restrict wp = wr - j * og;                                    \
                for (c = 0; c < cg; c++, wp += cstride) {                                   \
                    const P_T xv = (P_T)xp[c];                                              \
                    for (k = 0; k < nb; k++)                                                \
                        a[k] = (ACC_T)(a[k] + (P_T)(wp[k] * xv));                           \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        for (k = 0; k < nb; k++)                                                            \
            arow[k] = a[k];                                                                 \
    }

/* kernels.conv2d as a gather, for a graded input stored as a plain array (X_T) and 8-bit
 * weights: each output pixel of the tile sums x * W over its taps, SNN_GB outputs at a time
 * in local accumulators that are loaded from and stored to the tile once per pixel; 8-bit
 * inputs times 8-bit weights multiply in int16_t (|x w| <= 255 * 128 = 32640), then widen.
 * Dense graded inputs (images) make almost every tap nonzero, where the scatter's runs
 * (one pixel's outputs, for strides > 1) are short.  Any order of the partial sums is
 * exact: the emitter proves every subset sum fits ACC_T. */
#define SNN_DEFINE_CONV_GATHER(NAME, ACC_T, X_T, P_T)                                       \
    SNN_DEFINE_GATHER_BLOCK(NAME##_blk, ACC_T, X_T, P_T)                                    \
    static void NAME(const snn_acc_ctx *q)                                                  \
    {                                                                                       \
        const int32_t O = q->O, og = q->og, groups = q->s->groups;                          \
        int32_t oy, ox, g, ob;                                                              \
        for (oy = q->lo; oy < q->hi; oy++)                                                  \
            for (ox = q->xlo; ox < q->xhi; ox++) {                                          \
                ACC_T *restrict arow = (ACC_T *)q->acc + ((oy - q->lo) * (q->xhi - q->xlo) + ox - q->xlo) * O; \
                for (g = 0; g < groups; g++)                                                \
                    for (ob = 0; ob < og; ob += SNN_GB) {                                   \
                        if (og - ob >= SNN_GB)                                              \
                            NAME##_blk(q, arow + g * og + ob, oy, ox, g, ob, SNN_GB);       \
                        else                                                                \
                            NAME##_blk(q, arow + g * og + ob, oy, ox, g, ob, og - ob);      \
                    }                                                                       \
            }                                                                               \
    }
/* The same sums tap by tap, for few input channels per group (cg <= SNN_FEW_C: an image):
 * for each output row, tap (i, j) and input channel, the tap's nb weights are loaded once
 * and the pass over the row's output pixels adds x * w to each pixel's sums in the tile,
 * where the pixel-major gather would pay its tap loop for cg products per tap. */
#define SNN_FEW_C 4
#define SNN_DEFINE_GATHER_TAPS_ROW(NAME, ACC_T, X_T, P_T)                                   \
    static inline void NAME(const snn_acc_ctx *q, ACC_T *restrict ap, const X_T *restrict xp, \
                            const int8_t *restrict wp, int32_t ox_a, int32_t ox_b, int32_t dx, \
                            const int32_t nb)                                               \
    {                                                                                       \
        const int32_t O = q->O, C = q->s->x->c, sw = q->s->sw;                              \
        P_T wv[SNN_GB];                                                                     \
        int32_t ox, k;                                                                      \
        for (k = 0; k < nb; k++)                                                            \
            wv[k] = (P_T)wp[k];                                                             \
        for (ox = ox_a; ox < ox_b; ox++) {                                                  \
            const P_T xv = (P_T)xp[(ox * sw + dx) * C];                                     \
            ACC_T *restrict a = ap + (ox - q->xlo) * O;                                     \
            for (k = 0; k < nb; k++)                                                        \
                a[k] = (ACC_T)(a[k] + (P_T)(wv[k] * xv));                                   \
        }                                                                                   \
    }
#define SNN_DEFINE_CONV_GATHER_TAPS(NAME, ACC_T, X_T, P_T)                                  \
    SNN_DEFINE_GATHER_TAPS_ROW(NAME##_row, ACC_T, X_T, P_T)                                 \
    static void NAME(const snn_acc_ctx *q)                                                  \
    {                                                                                       \
        const snn_syn_t *s = q->s;                                                          \
        const snn_tensor_t *t = s->x;                                                       \
        const int32_t C = t->c, O = q->O, og = q->og, cg = q->cg, kh = s->kh, kw = s->kw;   \
        const int32_t xlo = q->xlo, xhi = q->xhi;                                           \
        int32_t oy, i, j, g, c, ob;                                                         \
        for (oy = q->lo; oy < q->hi; oy++)                                                  \
            for (i = 0; i < kh; i++) {                                                      \
                const int32_t iy = oy * s->sh - s->ph + i * s->dh;                          \
                if (iy < 0 || iy >= t->h)                                                   \
                    continue;                                                               \
                for (j = 0; j < kw; j++) {                                                  \
                    const int32_t dx = j * s->dw - s->pw; /* ix = ox * sw + dx */           \
                    int32_t ox_a = xlo, ox_b = xhi; /* the outputs whose tap j is inside */ \
                    while (ox_a < ox_b && ox_a * s->sw + dx < 0)                            \
                        ox_a++;                                                             \
                    while (ox_b > ox_a && (ox_b - 1) * s->sw + dx >= t->w)                  \
                        ox_b--;                                                             \
                    for (g = 0; g < s->groups; g++)                                         \
                        for (c = 0; c < cg; c++) {                                          \
                            const X_T *xp = (const X_T *)t->data + iy * t->w * C + g * cg + c; \
                            const int8_t *wp =                                              \
                                (const int8_t *)s->w + (((g * cg + c) * kh + i) * kw + kw - 1 - j) * og; \
                            ACC_T *ap = (ACC_T *)q->acc + (oy - q->lo) * (xhi - xlo) * O + g * og; \
                            for (ob = 0; ob < og; ob += SNN_GB) {                           \
                                if (og - ob >= SNN_GB)                                      \
                                    NAME##_row(q, ap + ob, xp, wp + ob, ox_a, ox_b, dx, SNN_GB); \
                                else                                                        \
                                    NAME##_row(q, ap + ob, xp, wp + ob, ox_a, ox_b, dx, og - ob); \
                            }                                                               \
                        }                                                                   \
                }                                                                           \
            }                                                                               \
    }
/* the image layer's x86 path (conv_image32 below) where AVX2 is there */
#if defined(__AVX2__) && !defined(SNNCC_PORTABLE)
static int conv_image32(const snn_acc_ctx *q);
#define SNN_IMAGE32(q) conv_image32(q)
#else
#define SNN_IMAGE32(q) 0
#endif
#define SNN_IMAGE16(q) 0
#define SNN_DEFINE_CONV_GATHERS(SFX, ACC_T)                                                 \
    SNN_DEFINE_CONV_GATHER(conv_gather##SFX##_u8, ACC_T, uint8_t, int16_t)                  \
    SNN_DEFINE_CONV_GATHER(conv_gather##SFX##_s8, ACC_T, int8_t, int16_t)                   \
    SNN_DEFINE_CONV_GATHER(conv_gather##SFX##_u16, ACC_T, uint16_t, ACC_T)                  \
    SNN_DEFINE_CONV_GATHER(conv_gather##SFX##_s16, ACC_T, int16_t, ACC_T)                   \
    SNN_DEFINE_CONV_GATHER_TAPS(conv_taps##SFX##_u8, ACC_T, uint8_t, int16_t)               \
    SNN_DEFINE_CONV_GATHER_TAPS(conv_taps##SFX##_s8, ACC_T, int8_t, int16_t)                \
    SNN_DEFINE_CONV_GATHER_TAPS(conv_taps##SFX##_u16, ACC_T, uint16_t, ACC_T)               \
    SNN_DEFINE_CONV_GATHER_TAPS(conv_taps##SFX##_s16, ACC_T, int16_t, ACC_T)                \
    static int conv_gather##SFX(const snn_acc_ctx *q)                                       \
    {                                                                                       \
        const int few = q->cg <= SNN_FEW_C;                                                 \
        switch (q->s->x->fmt) {                                                             \
        case SNN_U8:                                                                        \
            if (!(few && SNN_IMAGE##SFX(q)))                                                \
                (few ? conv_taps##SFX##_u8 : conv_gather##SFX##_u8)(q);                     \
            return 1;                                                                       \
        case SNN_S8: (few ? conv_taps##SFX##_s8 : conv_gather##SFX##_s8)(q); return 1;      \
        case SNN_U16: (few ? conv_taps##SFX##_u16 : conv_gather##SFX##_u16)(q); return 1;   \
        case SNN_S16: (few ? conv_taps##SFX##_s16 : conv_gather##SFX##_s16)(q); return 1;   \
        default: return 0;                                                                  \
        }                                                                                   \
    }
SNN_DEFINE_CONV_GATHERS(16, int16_t)
SNN_DEFINE_CONV_GATHERS(32, int32_t)

/* x86 with AVX2 only (every other target, and -DSNNCC_PORTABLE, keep the tap-major gather
 * above): the image layer (8-bit unsigned pixels, few input channels per group, 8-bit
 * weights, an int32_t tile, output channels per group in blocks of 16) pixel by pixel, two
 * taps per multiply.  _mm256_madd_epi16 multiplies the pixel pair (x_m, x_m+1), broadcast,
 * with the weight pairs (w_m[o], w_m+1[o]) of 8 outputs and adds each pair into the output's
 * int32 lane: 16 outputs take two multiply-adds and two adds per two taps and keep their
 * sums in registers, where the portable loop took a multiply, two widenings, two adds and the
 * tile's load and store per tap.  Every product and pair sum is exact in int32 (|x w| <=
 * 255 * 128), and so is any order of the sums (the emitter proves every partial sum fits the
 * tile's int32_t).  An odd last tap pairs with weight 0; at the border the taps in the
 * padding read pixel 0.  Returns 0 (nothing done) where it does not apply. */
#if defined(__AVX2__) && !defined(SNNCC_PORTABLE)
#include <immintrin.h>
#define SNN_IMG_TAPS 32      /* kh kw cg at most */
#define SNN_IMG_WPAIRS 128   /* weight vectors (groups x blocks x pairs x 2) on the stack: 4 KB */
static int conv_image32(const snn_acc_ctx *q)
{
    const snn_syn_t *s = q->s;
    const snn_tensor_t *t = s->x;
    const uint8_t *x = (const uint8_t *)t->data;
    const int8_t *w = (const int8_t *)s->w;
    const int32_t C = t->c, O = q->O, og = q->og, cg = q->cg, kh = s->kh, kw = s->kw, groups = s->groups;
    const int32_t nt = kh * kw * cg, np = (nt + 1) / 2, nblk = og / 16, xlo = q->xlo, xhi = q->xhi;
    int32_t off[SNN_IMG_TAPS + 1], woff[SNN_IMG_TAPS], ty[SNN_IMG_TAPS + 1], tx[SNN_IMG_TAPS + 1],
        tc[SNN_IMG_TAPS + 1];
    uint32_t pair[SNN_IMG_TAPS / 2];
    __m256i wv[SNN_IMG_WPAIRS];
    int32_t oy, ox, g, b, i, j, c, m, k, h;
    if (s->bits != 8 || t->fmt != SNN_U8 || og % 16 != 0 || nt > SNN_IMG_TAPS ||
        (int64_t)groups * nblk * np * 2 > SNN_IMG_WPAIRS)
        return 0;
    for (i = 0, m = 0; i < kh; i++)
        for (j = 0; j < kw; j++)
            for (c = 0; c < cg; c++, m++) {
                off[m] = (i * s->dh * t->w + j * s->dw) * C + c;
                woff[m] = ((c * kh + i) * kw + kw - 1 - j) * og;
                ty[m] = i * s->dh;
                tx[m] = j * s->dw;
                tc[m] = c;
            }
    off[nt] = 0; /* an odd last tap's partner: the first tap's pixel, times weight 0 */
    ty[nt] = tx[nt] = tc[nt] = 0;
    for (g = 0; g < groups; g++)
        for (b = 0; b < nblk; b++)
            for (m = 0; m < np; m++)
                for (h = 0; h < 2; h++) {
                    int16_t v[16];
                    const int8_t *wg = w + g * cg * kh * kw * og + b * 16 + h * 8;
                    for (k = 0; k < 8; k++) {
                        v[2 * k] = wg[woff[2 * m] + k];
                        v[2 * k + 1] = (int16_t)(2 * m + 1 < nt ? wg[woff[2 * m + 1] + k] : 0);
                    }
                    wv[((g * nblk + b) * np + m) * 2 + h] = _mm256_loadu_si256((const __m256i *)v);
                }
    for (oy = q->lo; oy < q->hi; oy++) {
        const int32_t y0 = oy * s->sh - s->ph;
        int32_t *arow = (int32_t *)q->acc + (oy - q->lo) * (xhi - xlo) * O;
        int32_t ia = xlo, ib = xhi; /* the outputs whose taps are all inside the input */
        if (y0 < 0 || y0 + (kh - 1) * s->dh >= t->h)
            ib = ia;
        while (ia < ib && ia * s->sw - s->pw < 0)
            ia++;
        while (ib > ia && (ib - 1) * s->sw - s->pw + (kw - 1) * s->dw >= t->w)
            ib--;
        for (ox = xlo; ox < xhi; ox++) { /* at the border: the taps outside read 0 */
            const int32_t x0 = ox * s->sw - s->pw;
            if (ox == ia && ia < ib)
                ox = ib - 1; /* the inside ones below */
            else
                for (g = 0; g < groups; g++) {
                    for (m = 0; m < 2 * np; m++) {
                        const int32_t iy = y0 + ty[m], ix = x0 + tx[m];
                        const uint32_t v = iy >= 0 && iy < t->h && ix >= 0 && ix < t->w
                                               ? x[(iy * t->w + ix) * C + g * cg + tc[m]] : 0u;
                        pair[m >> 1] = (m & 1) ? pair[m >> 1] | v << 16 : v;
                    }
                    for (b = 0; b < nblk; b++) {
                        int32_t *ap = arow + (ox - xlo) * O + g * og + b * 16;
                        const __m256i *wq = wv + (g * nblk + b) * np * 2;
                        __m256i a0 = _mm256_loadu_si256((const __m256i *)ap);
                        __m256i a1 = _mm256_loadu_si256((const __m256i *)(ap + 8));
                        for (m = 0; m < np; m++) {
                            const __m256i px = _mm256_set1_epi32((int32_t)pair[m]);
                            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(px, wq[2 * m]));
                            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(px, wq[2 * m + 1]));
                        }
                        _mm256_storeu_si256((__m256i *)ap, a0);
                        _mm256_storeu_si256((__m256i *)(ap + 8), a1);
                    }
                }
        }
        for (g = 0; g < groups; g++)
            for (b = 0; b < nblk; b++) {
                const __m256i *wq = wv + (g * nblk + b) * np * 2;
                const uint8_t *xb = x + (y0 * t->w + ia * s->sw - s->pw) * C + g * cg;
                int32_t *ap = arow + (ia - xlo) * O + g * og + b * 16;
                for (ox = ia; ox < ib; ox++, xb += s->sw * C, ap += O) {
                    __m256i a0 = _mm256_loadu_si256((const __m256i *)ap);
                    __m256i a1 = _mm256_loadu_si256((const __m256i *)(ap + 8));
                    for (m = 0; m < np; m++) {
                        const __m256i px = _mm256_set1_epi32((int32_t)((uint32_t)xb[off[2 * m]] |
                                                                       (uint32_t)xb[off[2 * m + 1]] << 16));
                        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(px, wq[2 * m]));
                        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(px, wq[2 * m + 1]));
                    }
                    _mm256_storeu_si256((__m256i *)ap, a0);
                    _mm256_storeu_si256((__m256i *)(ap + 8), a1);
                }
            }
    }
    return 1;
}
#endif

/* One dense synapse into a tile: every nonzero input (storage order) once. */
#define SNN_DEFINE_DENSE_ACC(NAME, EVENT_FN)                                                \
    static void NAME(const snn_acc_ctx *q)                                                  \
    {                                                                                       \
        const snn_tensor_t *t = q->s->x;                                                    \
        const int32_t n = t->n;                                                             \
        int32_t k;                                                                          \
        SNN_SCAN(t, 0, n, SNN_DENSE_AT)                                                     \
    }
#define SNN_DENSE_AT(pos, val) DENSE_EVENT_NOW(q, (pos), (val))
#define DENSE_EVENT_NOW dense_event16
SNN_DEFINE_DENSE_ACC(dense_acc16, dense_event16)
#undef DENSE_EVENT_NOW
#define DENSE_EVENT_NOW dense_event32
SNN_DEFINE_DENSE_ACC(dense_acc32, dense_event32)
#undef DENSE_EVENT_NOW
#define DENSE_EVENT_NOW dense_event64
SNN_DEFINE_DENSE_ACC(dense_acc64, dense_event64)
#undef DENSE_EVENT_NOW

/* A dense synapse of 8-bit weights from spikes into an int16_t tile of at most SNN_FEW_O
 * outputs (a readout, a small classifier): each spike adds the SNN_FEW_O weights of its row
 * from output lo to SNN_FEW_O local sums in one fixed-width add, of which only the tile's
 * hi - lo are kept.  The others sum weights of the next rows and are dropped; all are kept
 * modulo 2^16 in uint16_t, so no lane overflows, and a kept lane is this synapse's sum of
 * the tile's output, which the emitter proves fits int16_t: modulo 2^16 it is exact.  The
 * run of plain adds (dense_event16) was a short vector loop plus a scalar tail of up to 15
 * adds per spike.  Rows whose fixed-width read would pass the end of the weights take only
 * their hi - lo weights. */
#define SNN_FEW_O 16
static void dense_few16(const snn_acc_ctx *q)
{
    const snn_tensor_t *t = q->s->x;
    const int32_t n = t->n, O = q->O, nb = q->hi - q->lo;
    const int8_t *w = (const int8_t *)q->s->w + q->lo;
    const int64_t last = (int64_t)n * O - q->lo - SNN_FEW_O; /* row i reads SNN_FEW_O iff i O <= last */
    int16_t *acc = (int16_t *)q->acc;
    uint16_t a[SNN_FEW_O];
    int32_t k, o;
    for (o = 0; o < SNN_FEW_O; o++)
        a[o] = 0;
    for (k = 0; k < n; k += 32) {
        uint32_t f = bits_field((const uint32_t *)t->data, k, min32(32, n - k));
        while (f) {
            const int32_t i = k + ctz32(f);
            const int8_t *wr = w + (int64_t)i * O;
            f &= f - 1u;
            if ((int64_t)i * O <= last)
                for (o = 0; o < SNN_FEW_O; o++)
                    a[o] = (uint16_t)(a[o] + (uint16_t)wr[o]);
            else
                for (o = 0; o < nb; o++)
                    a[o] = (uint16_t)(a[o] + (uint16_t)wr[o]);
        }
    }
    for (o = 0; o < nb; o++)
        acc[o] = (int16_t)(acc[o] + ((int32_t)(a[o] ^ 0x8000u) - 0x8000));
}

/* What synapse s of layer L adds into the tile rows [lo, hi), columns [xlo, xhi). */
static snn_acc_ctx acc_ctx(const snn_layer_t *L, const snn_syn_t *s, int32_t lo, int32_t hi, int32_t xlo,
                           int32_t xhi)
{
    snn_acc_ctx q;
    q.s = s;
    q.acc = L->tile->acc;
    q.wbuf = L->tile->wbuf;
    q.O = s->conv ? L->out->c : L->out->n;
    q.og = q.O / (s->conv ? s->groups : 1);
    q.cg = s->conv ? s->x->c / s->groups : 1;
    q.lo = lo;
    q.hi = hi;
    q.xlo = xlo;
    q.xhi = xhi;
    q.span = s->conv && s->sw == 1 && s->dw == 1 && s->groups == 1;
    q.cstep = (uint32_t)(s->kh * s->kw * q.og);
    q.point = s->conv && s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0;
    q.ring = q.in_lo = q.in_hi = 0;
    return q;
}

/* a conv synapse's scatter in the tile's accumulator type */
static void conv_scatter(const snn_acc_ctx *q, uint8_t type)
{
    switch (type) {
    case SNN_I16: conv_acc16(q); break;
    case SNN_I32: conv_acc32(q); break;
    default: conv_acc64(q); break;
    }
}

/* The synapses of layer L into its tile lo .. hi - 1 (rows or outputs) of n values. */
static void accumulate(const snn_layer_t *L, int32_t lo, int32_t hi, int32_t xlo, int32_t xhi, int32_t n)
{
    const snn_tile_t *tl = L->tile;
    int32_t k;
    zero_bytes(tl->acc, n * snn_type_size(tl->type));
    for (k = 0; k < L->n_syn; k++) {
        const snn_syn_t *s = L->syn[k];
        const snn_acc_ctx q = acc_ctx(L, s, lo, hi, xlo, xhi);
        if (s->conv && s->bits == 8 && tl->type == SNN_I16 && conv_gather16(&q))
            continue; /* a graded input in a plain array: gather */
        if (s->conv && s->bits == 8 && tl->type == SNN_I32 && conv_gather32(&q))
            continue;
        if (s->conv)
            conv_scatter(&q, tl->type);
        else
            switch (tl->type) {
            case SNN_I16:
                if (s->bits == 8 && s->x->fmt == SNN_U1 && hi - lo <= SNN_FEW_O)
                    dense_few16(&q);
                else
                    dense_acc16(&q);
                break;
            case SNN_I32: dense_acc32(&q); break;
            default: dense_acc64(&q); break;
            }
    }
}

/* dst[k] = acc[i0 + k] * mul as T (k < n; the product fits T: the emitter proves it) */
#define SNN_DEFINE_ACC_LOAD(NAME, T)                                                        \
    static void NAME(const void *acc, uint8_t type, int32_t i0, int32_t n, T *restrict dst, T mul) \
    {                                                                                       \
        int32_t k;                                                                          \
        if (type == SNN_I16) {                                                              \
            const int16_t *restrict s_ = (const int16_t *)acc + i0;                         \
            for (k = 0; k < n; k++)                                                         \
                dst[k] = (T)s_[k] * mul;                                                    \
        } else if (type == SNN_I32) {                                                       \
            const int32_t *restrict s_ = (const int32_t *)acc + i0;                         \
            for (k = 0; k < n; k++)                                                         \
                dst[k] = (T)s_[k] * mul;                                                    \
        } else {                                                                            \
            const int64_t *restrict s_ = (const int64_t *)acc + i0;                         \
            for (k = 0; k < n; k++)                                                         \
                dst[k] = (T)s_[k] * mul;                                                    \
        }                                                                                   \
    }
SNN_DEFINE_ACC_LOAD(acc_load32, int32_t)
SNN_DEFINE_ACC_LOAD(acc_load64, int64_t)

/* The tiles of a layer with synapses: conv outputs in bands of `rows` output rows, or
 * (rows == 1, cols > 0) parts of one row of `cols` columns; dense outputs in runs of
 * `rows`.  The tile (rows [lo, hi), columns [xlo, xhi)) holds the contiguous elements
 * e0 .. e0 + n - 1 (channel-last). */
static int32_t tile_span(const snn_layer_t *L, int32_t lo, int32_t hi, int32_t xlo, int32_t xhi, int32_t *e0)
{
    if (!L->syn[0]->conv) {
        *e0 = lo;
        return hi - lo;
    }
    *e0 = (lo * L->out->w + xlo) * L->out->c;
    return (hi - lo) * (xhi - xlo) * L->out->c;
}

static int32_t tile_count(const snn_layer_t *L)
{
    return L->syn[0]->conv ? L->out->h : L->out->n;
}

/* columns of a conv tile (the whole output width unless the tile is part of a row) */
static int32_t tile_width(const snn_layer_t *L)
{
    return L->syn[0]->conv ? L->out->w : 1;
}

static int32_t tile_cols(const snn_layer_t *L)
{
    return L->syn[0]->conv && L->tile->cols > 0 ? L->tile->cols : tile_width(L);
}

/* The layer L as it runs this step: L itself (*fresh = 1), or, with tile->cache (its
 * synapses all read the model input), *whole: L as one tile over the whole layer in
 * cache->acc (tl its tile), with *fresh saying whether the sums there must be computed,
 * that is whether the input's bytes differ from those they were computed from (at first:
 * zeros, whose sums are the zeros the static acc starts with); the new bytes are then
 * recorded. The sums are a function of those bytes alone. */
static const snn_layer_t *cache_view(const snn_layer_t *L, snn_layer_t *whole, snn_tile_t *tl, int *fresh)
{
    snn_cache_t *c = L->tile->cache;
    const snn_tensor_t *x = L->syn[0]->x;
    const uint8_t *xb = (const uint8_t *)x->data;
    int32_t k, same = 1;
    *fresh = 1;
    if (c == 0)
        return L;
    *tl = *L->tile;
    tl->acc = c->acc;
    tl->rows = tile_count(L);
    tl->cols = 0;
    tl->ring = 0;
    tl->cache = 0;
    *whole = *L;
    whole->tile = tl;
    for (k = 1; k < L->n_syn; k++)
        same &= L->syn[k]->x == x; /* the emitter's promise; without it, no reuse */
    for (k = 0; same && k < x->bytes; k++)
        same = c->in[k] == xb[k];
    if (!same)
        for (k = 0; k < x->bytes; k++)
            c->in[k] = xb[k];
    *fresh = !same;
    return whole;
}

/* A synapse layer that stores its result (interpreter._eval); with tile->cache, in one
 * tile whose sums are computed only when the input changed (cache_view). */
static void synapse_layer(const snn_layer_t *L0)
{
    snn_layer_t whole;
    snn_tile_t whole_tile;
    int fresh;
    const snn_layer_t *L = cache_view(L0, &whole, &whole_tile, &fresh);
    const snn_tile_t *tl = L->tile;
    const snn_syn_t *s = L->syn[0];
    const int32_t total = tile_count(L), width = tile_width(L), cols = tile_cols(L);
    int32_t lo, hi, xlo, xhi, e0, n, k, j, m;
    for (lo = 0; lo < total; lo = hi) {
        hi = min32(total, lo + tl->rows);
        for (xlo = 0; xlo < width; xlo = xhi) {
            xhi = min32(width, xlo + cols);
            n = tile_span(L, lo, hi, xlo, xhi, &e0);
            if (fresh)
                accumulate(L, lo, hi, xlo, xhi, n);
            for (k = 0; k < n; k += m) {
                m = min32(SNN_TMP, n - k);
                acc_load64(tl->acc, tl->type, k, m, tl->tmp, 1);
                if (s->exp != 0 || s->out_bits != 0)
                    for (j = 0; j < m; j++)
                        tl->tmp[j] = synapse_out(tl->tmp[j], s->exp, s->out_bits);
                store64(L->out, e0 + k, m, tl->tmp);
            }
        }
    }
}

/* ---------------------------------------------------------------------------- neuron */
/* snncc.ops.neurons.NeuronState.step on elements e0 .. e0 + m - 1 (channel e % C), with
 * the input current in A (already a << act_shift + u_bias) and T the update's type:
 *   u = ovf_u(decay(u, du) + a)               (decay(u, 4096) = 0: no current state)
 *   v = ovf_v(decay(v, dv) + u + bias)
 *   s = fires && v > threshold;  v = s ? (0 | v - reset_value | v) : v
 *   v = state_quant(v, level)
 * per run of channels with their constants, one branch-free loop per (u, v) overflow
 * mode pair: with the mask f = -s, v -= f & ((v & drop) + (rv & sub)), where (drop,
 * sub) is (-1, 0) for reset zero, (0, -1) for subtract and (0, 0) for none. */
#define SNN_LIF_RUNS(T, SFX, OVF_U, OVF_V, DECAY)                                                \
    for (k = 0, c = c_first; k < m; c = 0) {                                                \
        const int32_t e = k + min32(m - k, C - c);                                          \
        const T *restrict th = thr + c, *restrict bi = bias + c, *restrict r = rv + c;     \
        int32_t i;                                                                          \
        if (has_u)                                                                          \
            for (i = 0; i < e - k; i++) {                                                   \
                const T u = OVF_U(DECAY(U[k + i], keep_u) + A[k + i], mu);                 \
                const T v = OVF_V(DECAY(V[k + i], keep_v) + u + bi[i], mv);                \
                const T sp = fire & (T)(v > th[i]);                                         \
                S[k + i] = sp;                                                              \
                V[k + i] = v - (-sp & ((v & drop) + (r[i] & sub)));                         \
                U[k + i] = u;                                                               \
            }                                                                               \
        else if (v_sh >= 0) /* the same with decay(v) = sign(v) (|v| >> v_sh) */            \
            for (i = 0; i < e - k; i++) {                                                   \
                const T v = OVF_V(decay_sh##SFX(V[k + i], v_sh) + OVF_U(A[k + i], mu) + bi[i], mv); \
                const T sp = fire & (T)(v > th[i]);                                         \
                S[k + i] = sp;                                                              \
                V[k + i] = v - (-sp & ((v & drop) + (r[i] & sub)));                         \
            }                                                                               \
        else                                                                                \
            for (i = 0; i < e - k; i++) {                                                   \
                const T v = OVF_V(DECAY(V[k + i], keep_v) + OVF_U(A[k + i], mu) + bi[i], mv); \
                const T sp = fire & (T)(v > th[i]);                                         \
                S[k + i] = sp;                                                              \
                V[k + i] = v - (-sp & ((v & drop) + (r[i] & sub)));                         \
            }                                                                               \
        k = e;                                                                              \
    }                                                                                       \
    break

/* BODY for every element k + i_ of a chunk of m elements from e0 (channel c_first =
 * e0 % C), with c + i_ its channel: in runs of channels, so each inner loop is free of
 * the channel's wrap-around and vectorizes (a loop over a whole chunk with c = (c + 1) %
 * C does not). Uses k, c of the caller. */
#define SNN_BY_CHANNEL(BODY)                                                                \
    for (k = 0, c = c_first; k < m; c = 0) {                                                \
        const int32_t e_ = k + min32(m - k, C - c);                                         \
        int32_t i_;                                                                         \
        for (i_ = 0; i_ < e_ - k; i_++) {                                                   \
            BODY                                                                            \
        }                                                                                   \
        k = e_;                                                                             \
    }

/* SpQuant-SNN's masks (section 4.3; "sparsity masks" below) on a chunk after its update,
 * on v as it will be stored (a code or a value), branch-free:
 * spatial (SK: the skip flags, then v and u as loaded): a skipped neuron keeps u, v and
 * does not fire; negative: v < 0 -> 0, no spike; the channel gate (keep_c from gate_prior,
 * before the step): channel c's spikes only where it is on. */
#define SNN_MASKS(T)                                                                        \
    if (SK)                                                                                 \
        for (k = 0; k < m; k++) {                                                           \
            const T f_ = -SK[k];                                                            \
            V[k] = (V[k] & ~f_) | (SK[m + k] & f_);                                         \
            S[k] &= ~f_;                                                                    \
        }                                                                                   \
    if (SK && has_u)                                                                        \
        for (k = 0; k < m; k++)                                                             \
            U[k] = (U[k] & ~-SK[k]) | (SK[2 * m + k] & -SK[k]);                             \
    if (p->neg_mask)                                                                        \
        for (k = 0; k < m; k++) {                                                           \
            const T f_ = -(T)(V[k] < 0);                                                    \
            V[k] &= ~f_;                                                                    \
            S[k] &= ~f_;                                                                    \
        }                                                                                   \
    if (p->gate_w != 0) {                                                                   \
        const int64_t *kp_ = p->gate_tmp + 2 * C;                                           \
        SNN_BY_CHANNEL(S[k + i_] &= (T)kp_[c + i_];)                                        \
    }

#define SNN_DEFINE_LIF_CHUNK(NAME, T, SFX, LOAD, STORE)                                     \
    static void NAME(const snn_lif_t *p, const snn_tensor_t *out, int32_t e0, int32_t m,    \
                     T *restrict A, T *restrict U, T *restrict V, T *restrict S,            \
                     T *restrict SK)                                                        \
    {                                                                                       \
        const int32_t C = out->c, c_first = e0 % C;                                         \
        const T *thr = (const T *)(p->fires ? p->thr : p->bias);                            \
        const T *bias = (const T *)p->bias, *lvl = (const T *)p->level;                     \
        const T *rv = (const T *)(p->rv ? p->rv : p->bias);                                 \
        const T keep_u = SNN_DECAY_ONE - p->du, keep_v = SNN_DECAY_ONE - p->dv;            \
        const T mu = (T)1 << (p->u_bits - 1), mv = (T)1 << (p->v_bits - 1);                 \
        const T drop = p->reset == SNN_RESET_ZERO ? -1 : 0;                                 \
        const T sub = p->reset == SNN_RESET_SUBTRACT ? -1 : 0, fire = p->fires ? 1 : 0;     \
        const int has_u = p->u != 0, coded = p->v->fmt == SNN_T2 || p->v->fmt == SNN_U1;    \
        const int32_t v_sh = decay_shift(keep_v, sizeof(T));                                \
        int32_t k, c;                                                                       \
        LOAD(p->v, e0, m, V);                                                               \
        if (SK) /* the spatial mask's saved state: v as stored (a code or a value) */       \
            for (k = 0; k < m; k++)                                                         \
                SK[m + k] = V[k];                                                           \
        if (coded)                                                                          \
            SNN_BY_CHANNEL(V[k + i_] *= lvl[c + i_];)                                       \
        if (has_u)                                                                          \
            LOAD(p->u, e0, m, U);                                                           \
        if (SK && has_u)                                                                    \
            for (k = 0; k < m; k++)                                                         \
                SK[2 * m + k] = U[k];                                                       \
        switch (3 * p->u_ovf + p->v_ovf) { /* [u overflow][v overflow] */                   \
        case 0: SNN_LIF_RUNS(T, SFX, ovf_saturate##SFX, ovf_saturate##SFX, decay##SFX);          \
        case 1: SNN_LIF_RUNS(T, SFX, ovf_saturate##SFX, ovf_wrap##SFX, decay##SFX);              \
        case 2: SNN_LIF_RUNS(T, SFX, ovf_saturate##SFX, ovf_wrap_lava##SFX, decay##SFX);         \
        case 3: SNN_LIF_RUNS(T, SFX, ovf_wrap##SFX, ovf_saturate##SFX, decay##SFX);              \
        case 4: SNN_LIF_RUNS(T, SFX, ovf_wrap##SFX, ovf_wrap##SFX, decay##SFX);                  \
        case 5: SNN_LIF_RUNS(T, SFX, ovf_wrap##SFX, ovf_wrap_lava##SFX, decay##SFX);             \
        case 6: SNN_LIF_RUNS(T, SFX, ovf_wrap_lava##SFX, ovf_saturate##SFX, decay##SFX);         \
        case 7: SNN_LIF_RUNS(T, SFX, ovf_wrap_lava##SFX, ovf_wrap##SFX, decay##SFX);             \
        default: SNN_LIF_RUNS(T, SFX, ovf_wrap_lava##SFX, ovf_wrap_lava##SFX, decay##SFX);       \
        }                                                                                   \
        if (p->quant != SNN_QUANT_NONE) { /* q = (2v >= L) - (2v <= -L); codes or q * L */  \
            const T tern = p->quant == SNN_QUANT_TERNARY ? 1 : 0;                           \
            SNN_BY_CHANNEL(const T L_ = lvl[c + i_]; const T x_ = 2 * V[k + i_];              \
                           const T q_ = (T)(x_ >= L_) - (tern & (T)(x_ <= -L_));             \
                           V[k + i_] = coded ? q_ : q_ * L_;)                                \
        }                                                                                   \
        SNN_MASKS(T)                                                                        \
        STORE(p->v, e0, m, V);                                                              \
        if (has_u)                                                                          \
            STORE(p->u, e0, m, U);                                                          \
        STORE(out, e0, m, S);                                                               \
    }
SNN_DEFINE_LIF_CHUNK(lif_chunk32, int32_t, 32, load32, store32)
SNN_DEFINE_LIF_CHUNK(lif_chunk64, int64_t, 64, load64, store64)

/* The input current of elements e0 .. e0 + m - 1 into A: the tile's accumulator at
 * offset k (after the synapse's shift and wrap when it has them), plus every stored
 * input term, then a << act_shift + u_bias. */
#define SNN_DEFINE_LIF_INPUT(NAME, T, ACC_LOAD, LOAD)                                       \
    static void NAME(const snn_layer_t *L, int32_t e0, int32_t k0, int32_t m, T *restrict A, \
                     T *restrict X)                                                         \
    {                                                                                       \
        const snn_lif_t *p = (const snn_lif_t *)L->p;                                       \
        const int32_t C = L->out->c;                                                        \
        const T in_mul = (T)1 << p->act_shift;                                              \
        const int out_ = L->n_syn == 1 && (L->syn[0]->exp != 0 || L->syn[0]->out_bits != 0); \
        const int scaled = L->n_syn > 0 && !out_ && L->n_in == 0; /* A = acc << shift at once */ \
        int32_t k, j, c;                                                                    \
        if (L->n_syn > 0) {                                                                 \
            const snn_syn_t *s = L->syn[0];                                                 \
            ACC_LOAD(L->tile->acc, L->tile->type, k0, m, A, scaled ? in_mul : 1);           \
            if (out_)                                                                       \
                for (k = 0; k < m; k++)                                                     \
                    A[k] = (T)synapse_out(A[k], s->exp, s->out_bits);                       \
        } else                                                                              \
            for (k = 0; k < m; k++)                                                         \
                A[k] = 0;                                                                   \
        for (j = 0; j < L->n_in; j++) {                                                     \
            LOAD(L->in[j], e0, m, X);                                                       \
            for (k = 0; k < m; k++)                                                         \
                A[k] += X[k];                                                               \
        }                                                                                   \
        for (k = 0; !scaled && k < m; k++)                                                  \
            A[k] *= in_mul;                                                                 \
        if (p->u_bias != 0)                                                                 \
            for (k = 0, c = e0 % C; k < m; k++, c = c + 1 == C ? 0 : c + 1)                 \
                A[k] += ((const T *)p->u_bias)[c];                                          \
    }
SNN_DEFINE_LIF_INPUT(lif_input32, int32_t, acc_load32, load32)
SNN_DEFINE_LIF_INPUT(lif_input64, int64_t, acc_load64, load64)

/* ------------------------------------------------------------------ neuron: one pass */
/* Whether layer L's neurons take the one-pass update (lif_fused32): the int32 update, no
 * stored u (du = 4096), the synapses' tile as the only input (lif_input32's `scaled`: no
 * shift or wrap of a single synapse's result; no u_bias), a membrane that is not
 * quantized, stored in S16, S24 or S32, both overflows saturate (the emitter lowers an
 * overflow the bounds prove never acts as saturate), spikes in U1 and no mask or TNP.
 * That is most deployed layers. */
static int lif_fusable(const snn_layer_t *L)
{
    const snn_lif_t *p = (const snn_lif_t *)L->p;
    const uint8_t vf = p->v->fmt;
    return !p->wide && p->u == 0 && L->n_in == 0 && L->n_syn > 0 &&
           !(L->n_syn == 1 && (L->syn[0]->exp != 0 || L->syn[0]->out_bits != 0)) && p->u_bias == 0 &&
           p->quant == SNN_QUANT_NONE && p->u_ovf == SNN_SATURATE && p->v_ovf == SNN_SATURATE &&
           L->out->fmt == SNN_U1 && (vf == SNN_S16 || vf == SNN_S24 || vf == SNN_S32) &&
           (L->tile->type == SNN_I16 || L->tile->type == SNN_I32) && !p->neg_mask &&
           p->spatial_level < 0 && p->gate_w == 0 && p->presim == 0;
}

/* 8 spikes s[0 .. 7] (each 0 or 1) as the bits of a byte: the multiply moves byte j's bit
 * to bit 56 + j, where no other partial product lands (SWAR) */
static inline uint32_t bits8(const uint8_t *s)
{
    uint64_t x = 0;
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    __builtin_memcpy(&x, s, 8); /* one load: byte j at bits 8j, as the loop below puts it */
#else
    int32_t j;
    for (j = 0; j < 8; j++)
        x |= (uint64_t)s[j] << (8 * j);
#endif
    return (uint32_t)((x * 0x0102040810204080ull) >> 56);
}

/* the spikes s[0 .. n) (0 or 1) into the U1 tensor t at i0 .. i0 + n - 1 */
static void pack_u1(const snn_tensor_t *t, int32_t i0, const uint8_t *s, int32_t n)
{
    int32_t k, j;
    for (k = 0; k < n; k += 32) {
        const int32_t m_ = min32(32, n - k);
        uint32_t f_ = 0;
        if (m_ == 32) /* a whole word: four multiplies, no loop */
            f_ = bits8(s + k) | bits8(s + k + 8) << 8 | bits8(s + k + 16) << 16 | bits8(s + k + 24) << 24;
        else {
            for (j = 0; j + 8 <= m_; j += 8)
                f_ |= bits8(s + k + j) << j;
            for (; j < m_; j++)
                f_ |= (uint32_t)s[k + j] << j;
        }
        bits_put((uint32_t *)t->data, i0 + k, f_, m_);
    }
}

/* the constants of lif_fused32's update */
typedef struct {
    int32_t in_mul, mu, mv, keep_v, v_sh, drop, sub, fire;
    const snn_tensor_t *vt; /* v's tensor: what -DSNNCC_CHECKED checks each stored value against */
} snn_fused_k;

/* v in S16 / S24 / S32: a load and a store of element i */
#define SNN_V16_LD(i) ((int32_t)v16[i])
#define SNN_V16_ST(i, x) (v16[i] = (int16_t)(x))
#define SNN_V24_LD(i) (((int32_t)(vhi[i] ^ 0x80u) - 0x80) * 65536 + (int32_t)vlo[i])
#define SNN_V24_ST(i, x) (vlo[i] = (uint16_t)((uint32_t)(x) & 0xffffu), vhi[i] = (uint8_t)((uint32_t)(x) >> 16))
#define SNN_V32_LD(i) (v32[i])
#define SNN_V32_ST(i, x) (v32[i] = (x))
#define SNN_DECAY_SH(x) decay_sh32(x, K->v_sh)
#define SNN_DECAY_MUL(x) decay32(x, K->keep_v)
/* lif_chunk32's update (u = sat(a): no stored u) of one run of n channels with their
 * constants, the current read from the tile and v from its storage (restrict parameters:
 * GCC vectorizes a loop over this many arrays only with them) */
#define SNN_DEFINE_FUSED_RUN(NAME, ACC_T, VLD, VST, DECAY)                                  \
    SNN_HOT void NAME(int32_t n, const ACC_T *restrict a, const int32_t *restrict th,      \
                      const int32_t *restrict bi, const int32_t *restrict r, uint8_t *restrict S, \
                      int16_t *restrict v16, uint16_t *restrict vlo, uint8_t *restrict vhi, \
                      int32_t *restrict v32, const snn_fused_k *K)                           \
    {                                                                                       \
        int32_t i;                                                                          \
        (void)v16, (void)vlo, (void)vhi, (void)v32;                                         \
        for (i = 0; i < n; i++) {                                                           \
            const int32_t u = ovf_saturate32((int32_t)a[i] * K->in_mul, K->mu);              \
            const int32_t v = ovf_saturate32(DECAY(VLD(i)) + u + bi[i], K->mv);             \
            const int32_t sp = K->fire & (int32_t)(v > th[i]);                              \
            const int32_t nv = v - (-sp & ((v & K->drop) + (r[i] & K->sub)));               \
            SNN_CHECK(K->vt, nv);                                                           \
            S[i] = (uint8_t)sp;                                                             \
            VST(i, nv);                                                                     \
        }                                                                                   \
    }
#define SNN_DEFINE_FUSED_RUNS(SFX, ACC_T)                                                   \
    SNN_DEFINE_FUSED_RUN(fused_16sh_##SFX, ACC_T, SNN_V16_LD, SNN_V16_ST, SNN_DECAY_SH)     \
    SNN_DEFINE_FUSED_RUN(fused_16mul_##SFX, ACC_T, SNN_V16_LD, SNN_V16_ST, SNN_DECAY_MUL)   \
    SNN_DEFINE_FUSED_RUN(fused_24sh_##SFX, ACC_T, SNN_V24_LD, SNN_V24_ST, SNN_DECAY_SH)     \
    SNN_DEFINE_FUSED_RUN(fused_24mul_##SFX, ACC_T, SNN_V24_LD, SNN_V24_ST, SNN_DECAY_MUL)   \
    SNN_DEFINE_FUSED_RUN(fused_32sh_##SFX, ACC_T, SNN_V32_LD, SNN_V32_ST, SNN_DECAY_SH)     \
    SNN_DEFINE_FUSED_RUN(fused_32mul_##SFX, ACC_T, SNN_V32_LD, SNN_V32_ST, SNN_DECAY_MUL)
SNN_DEFINE_FUSED_RUNS(a16, int16_t)
SNN_DEFINE_FUSED_RUNS(a32, int32_t)

/* the chunk through one of the functions above: in one call where the channels' constants
 * were laid out over the chunk (X), else per run of channels */
#define SNN_FUSED_RUNS(RUN, ACC_T)                                                          \
    if (X)                                                                                  \
        RUN(m, (const ACC_T *)L->tile->acc + k0, X, X + ch, X + 2 * ch, S, v16, vlo, vhi, v32, K); \
    else                                                                                    \
        for (k = 0, c = e0 % C; k < m; c = 0) {                                             \
            const int32_t e = k + min32(m - k, C - c);                                      \
            RUN(e - k, (const ACC_T *)L->tile->acc + k0 + k, thr + c, bias + c, rv + c, S + k, \
                v16 + k, vlo + k, vhi + k, v32 + k, K);                                     \
            k = e;                                                                          \
        }                                                                                   \
    break
#define SNN_FUSED_FORMATS(SFX, ACC_T)                                                       \
    switch (2 * (p->v->fmt == SNN_S16 ? 0 : p->v->fmt == SNN_S24 ? 1 : 2) + (K->v_sh < 0)) { \
    case 0: SNN_FUSED_RUNS(fused_16sh_##SFX, ACC_T);                                        \
    case 1: SNN_FUSED_RUNS(fused_16mul_##SFX, ACC_T);                                       \
    case 2: SNN_FUSED_RUNS(fused_24sh_##SFX, ACC_T);                                        \
    case 3: SNN_FUSED_RUNS(fused_24mul_##SFX, ACC_T);                                       \
    case 4: SNN_FUSED_RUNS(fused_32sh_##SFX, ACC_T);                                        \
    default: SNN_FUSED_RUNS(fused_32mul_##SFX, ACC_T);                                      \
    }

/* lif_input32 + lif_chunk32 of a lif_fusable layer in one pass over elements e0 .. e0 + m - 1
 * (tile offset k0), spikes collected as bytes in the chunk's scratch S and packed after.
 * X: NULL, or thr, bias and rv laid out over a chunk that starts at channel 0. */
static void lif_fused32(const snn_layer_t *L, const snn_fused_k *K, int32_t e0, int32_t k0, int32_t m,
                        uint8_t *S, const int32_t *X)
{
    const snn_lif_t *p = (const snn_lif_t *)L->p;
    const int32_t C = L->out->c, ch = p->chunk;
    const int32_t *thr = (const int32_t *)(p->fires ? p->thr : p->bias);
    const int32_t *bias = (const int32_t *)p->bias;
    const int32_t *rv = (const int32_t *)(p->rv ? p->rv : p->bias);
    int16_t *v16 = (int16_t *)p->v->data + e0;
    int32_t *v32 = (int32_t *)p->v->data + e0;
    uint16_t *vlo = (uint16_t *)p->v->data + e0;
    uint8_t *vhi = (uint8_t *)((uint16_t *)p->v->data + p->v->n) + e0;
    int32_t k, c;
    if (L->tile->type == SNN_I16) {
        SNN_FUSED_FORMATS(a16, int16_t)
    } else {
        SNN_FUSED_FORMATS(a32, int32_t)
    }
    pack_u1(L->out, e0, S, m);
}

/* Where a chunk holds whole pixels (C divides it: C < chunk, both powers of two), the
 * channels' constants (thr, bias, rv) laid out over one chunk in the scratch after the spike
 * bytes (13 bytes per element of the 16 the emitter gives): lif_layout writes them once per
 * layer and step, so each chunk is one long loop instead of runs of C (16 values: a loop
 * that barely starts its vector code).  NULL where the chunk does not hold whole pixels. */
static int32_t *lif_laid_out(const snn_lif_t *p, int32_t C)
{
    return C < p->chunk && p->chunk % C == 0 ? (int32_t *)p->tmp + p->chunk / 4 : 0;
}

static void lif_layout(const snn_layer_t *L)
{
    const snn_lif_t *p = (const snn_lif_t *)L->p;
    const int32_t C = L->out->c, ch = p->chunk;
    int32_t *X = lif_laid_out(p, C), k, j, c;
    const int32_t *src[3];
    if (X == 0 || !lif_fusable(L))
        return;
    src[0] = (const int32_t *)(p->fires ? p->thr : p->bias);
    src[1] = (const int32_t *)p->bias;
    src[2] = (const int32_t *)(p->rv ? p->rv : p->bias);
    for (j = 0; j < 3; j++)
        for (k = 0; k < ch; k += C)
            for (c = 0; c < C; c++)
                X[j * ch + k + c] = src[j][c];
}

/* The neuron update of elements e0 .. e0 + n - 1 of a lif_fusable layer (current from tile
 * element t0 on), chunk by chunk; the laid-out constants where e0 starts a pixel. */
static void lif_fused_span(const snn_layer_t *L, int32_t e0, int32_t n, int32_t t0)
{
    const snn_lif_t *p = (const snn_lif_t *)L->p;
    const int32_t C = L->out->c, ch = p->chunk;
    uint8_t *S = (uint8_t *)p->tmp;
    const int32_t *X = e0 % C == 0 ? lif_laid_out(p, C) : 0;
    snn_fused_k K;
    int32_t k;
    K.in_mul = (int32_t)1 << p->act_shift;
    K.mu = (int32_t)1 << (p->u_bits - 1);
    K.mv = (int32_t)1 << (p->v_bits - 1);
    K.keep_v = SNN_DECAY_ONE - p->dv;
    K.v_sh = decay_shift(K.keep_v, 4);
    K.drop = p->reset == SNN_RESET_ZERO ? -1 : 0;
    K.sub = p->reset == SNN_RESET_SUBTRACT ? -1 : 0;
    K.fire = p->fires ? 1 : 0;
    K.vt = p->v;
    for (k = 0; k < n; k += ch)
        lif_fused32(L, &K, e0 + k, t0 + k, min32(ch, n - k), S, X);
}

static int spatial_flags32(const snn_lif_t *p, int32_t e0, int32_t m, const int32_t *A, int32_t *SK);
static int spatial_flags64(const snn_lif_t *p, int32_t e0, int32_t m, const int64_t *A, int64_t *SK);

/* The neuron update of elements e0 .. e0 + n - 1, whose current is in the tile's
 * accumulator from element t0 on (or only in stored inputs). */
static void lif_span(const snn_layer_t *L, int32_t e0, int32_t n, int32_t t0)
{
    const snn_lif_t *p = (const snn_lif_t *)L->p;
    const int32_t ch = p->chunk;
    int32_t k, m;
    if (lif_fusable(L)) {
        lif_fused_span(L, e0, n, t0);
        return;
    }
    for (k = 0; k < n; k += m) {
        m = min32(ch, n - k);
        if (p->wide) {
            int64_t *t = (int64_t *)p->tmp, *sk = p->spatial_tmp;
            lif_input64(L, e0 + k, t0 + k, m, t, t + ch);
            if (p->spatial_level < 0 || !spatial_flags64(p, e0 + k, m, t, sk))
                sk = 0;
            lif_chunk64(p, L->out, e0 + k, m, t, t + ch, t + 2 * ch, t + 3 * ch, sk);
        } else {
            int32_t *t = (int32_t *)p->tmp, *sk = (int32_t *)p->spatial_tmp;
            lif_input32(L, e0 + k, t0 + k, m, t, t + ch);
            if (p->spatial_level < 0 || !spatial_flags32(p, e0 + k, m, t, sk))
                sk = 0;
            lif_chunk32(p, L->out, e0 + k, m, t, t + ch, t + 2 * ch, t + 3 * ch, sk);
        }
    }
}

/* A per-channel constant (int32_t or int64_t by `wide`); a NULL array is all zeros. */
static inline int64_t cget(const void *a, int wide, int32_t c)
{
    return a == 0 ? 0 : wide ? ((const int64_t *)a)[c] : ((const int32_t *)a)[c];
}

/* A neuron layer's initial state: u = 0, v = v_init (per channel; a quantized membrane
 * stores the code sign(v_init)). */
static void lif_start(const snn_lif_t *p)
{
    const int32_t C = p->v->c, coded = p->v->fmt == SNN_T2 || p->v->fmt == SNN_U1;
    int64_t *t = (int64_t *)p->tmp; /* chunk >= 1 values of 4 * 4 bytes: 2 int64 per chunk */
    const int32_t ch = p->chunk;
    int32_t i, n;
    if (p->u != 0)
        zero_bytes(p->u->data, p->u->bytes);
    if (p->v_init == 0) { /* v = 0 everywhere: zero bytes in every format (a code of 0 too) */
        zero_bytes(p->v->data, p->v->bytes);
        return;
    }
    for (i = 0; i < p->v->n; i += n) {
        int32_t j;
        n = min32(ch, p->v->n - i);
        for (j = 0; j < n; j++) {
            const int64_t v0 = cget(p->v_init, p->wide, (i + j) % C);
            t[j] = coded ? (v0 > 0) - (v0 < 0) : v0;
        }
        store64(p->v, i, n, t);
    }
}

/* TNP (test-time neuron pruning, NeuronState.step): before step presim, keep = v >
 * prune_level (v the membrane value: a quantized one is code x level), then start again. */
static void tnp_start(const snn_lif_t *p, int64_t t)
{
    const int32_t C = p->v->c, coded = p->v->fmt == SNN_T2 || p->v->fmt == SNN_U1;
    int32_t i;
    if (p->presim <= 0 || t != p->presim)
        return;
    for (i = 0; p->keep != 0 && i < p->v->n; i++) {
        const int32_t c = i % C;
        const int64_t v = ld(p->v, i) * (coded ? cget(p->level, p->wide, c) : 1);
        st(p->keep, i, v > cget(p->prune_level, p->wide, c));
    }
    lif_start(p);
}

/* TNP: from step presim on, only the kept neurons' spikes leave the layer. */
static void tnp_mask(const snn_layer_t *L, int64_t t)
{
    const snn_lif_t *p = (const snn_lif_t *)L->p;
    int32_t i;
    if (p->presim <= 0 || t < p->presim || p->keep == 0)
        return;
    for (i = 0; i < L->out->n; i++)
        if (!ld(p->keep, i))
            st(L->out, i, 0);
}

/* ------------------------------------------------------------------- sparsity masks */
/* SpQuant-SNN section 4.3 (IntLIF docstring, docs/semantics.md "Sparsity masks").
 * Spatial (Eq. 21-22): a neuron whose input current |a| <= spatial_level keeps u and v
 * and does not fire. The flags of a chunk (SK[k], 0 or 1) are computed from its current
 * before the update; the update runs branch-free over the whole chunk and SNN_MASKS puts
 * the skipped neurons' state back (lif_chunk32/64 save it as they load it). The work
 * saved is downstream: a silent neuron adds nothing in the next layer's event-driven
 * scatter (as do the channels the gate switches off and the negative mask's silenced
 * neurons). A is a << act_shift + u_bias, so |a| <= level <=> |A - u_bias| <= level <<
 * act_shift (in int64: the product may not fit the update's type). Returns whether any
 * neuron of the chunk is skipped. */
#define SNN_DEFINE_SPATIAL_FLAGS(NAME, T, T_MIN, T_MAX)                                    \
    static int NAME(const snn_lif_t *p, int32_t e0, int32_t m, const T *restrict A,         \
                    T *restrict SK)                                                         \
    {                                                                                       \
        const int32_t C = p->v->c, c_first = e0 % C;                                        \
        const int64_t lim = p->spatial_level * ((int64_t)1 << p->act_shift);                \
        const T *ub = (const T *)p->u_bias;                                                 \
        int32_t k, c;                                                                       \
        T any = 0;                                                                          \
        if (ub == 0) { /* -lim <= A <= lim, the bounds clamped to T (A is a T) */           \
            const T lo = lim > (int64_t)T_MAX ? T_MIN : (T)-lim;                            \
            const T hi = lim > (int64_t)T_MAX ? T_MAX : (T)lim;                             \
            for (k = 0; k < m; k++) {                                                       \
                SK[k] = (T)(A[k] >= lo) & (T)(A[k] <= hi);                                  \
                any |= SK[k];                                                               \
            }                                                                               \
        } else /* |A - u_bias| in int64 (the difference may not fit T) */                   \
            SNN_BY_CHANNEL(const int64_t a_ = (int64_t)A[k + i_] - (int64_t)ub[c + i_];      \
                           SK[k + i_] = (T)((a_ < 0 ? -a_ : a_) <= lim);                    \
                           any |= SK[k + i_];)                                              \
        return any != 0;                                                                    \
    }
SNN_DEFINE_SPATIAL_FLAGS(spatial_flags32, int32_t, INT32_MIN, INT32_MAX)
SNN_DEFINE_SPATIAL_FLAGS(spatial_flags64, int64_t, INT64_MIN, INT64_MAX)

/* gate weight k (stored in its narrowest type: once per channel pair and step) */
static int64_t gate_weight(const snn_lif_t *p, int32_t k)
{
    switch (p->gate_type) {
    case SNN_I8: return ((const int8_t *)p->gate_w)[k];
    case SNN_I16: return ((const int16_t *)p->gate_w)[k];
    case SNN_I32: return ((const int32_t *)p->gate_w)[k];
    default: return ((const int64_t *)p->gate_w)[k];
    }
}

/* Channel gate (Eq. 23) on the membrane prior (the state before the step): p_c = sum of
 * channel c's v (values: a code's sum times the channel's level), z = gate_w p, keep_c =
 * z_c >= gate_level[c]; SNN_MASKS applies keep to the step's spikes. v is read a chunk at
 * a time through the update's scratch (free before the update). */
static void gate_prior(const snn_lif_t *p)
{
    const int32_t C = p->v->c, coded = p->v->fmt == SNN_T2 || p->v->fmt == SNN_U1, ch = p->chunk;
    int64_t *sum = p->gate_tmp, *z = sum + C, *keep = z + C;
    int32_t i, j, k, c, m, c_first;
    if (p->gate_w == 0)
        return;
    for (j = 0; j < C; j++)
        sum[j] = 0;
    for (i = 0; i < p->v->n; i += m) {
        m = min32(ch, p->v->n - i);
        c_first = i % C;
        if (p->wide) {
            int64_t *restrict t = (int64_t *)p->tmp;
            load64(p->v, i, m, t);
            SNN_BY_CHANNEL(sum[c + i_] += t[k + i_];)
        } else {
            int32_t *restrict t = (int32_t *)p->tmp;
            load32(p->v, i, m, t);
            SNN_BY_CHANNEL(sum[c + i_] += t[k + i_];)
        }
    }
    for (j = 0; coded && j < C; j++)
        sum[j] *= cget(p->level, p->wide, j);
    for (i = 0; i < C; i++) {
        z[i] = 0;
        for (j = 0; j < C; j++)
            z[i] += gate_weight(p, i * C + j) * sum[j];
        keep[i] = z[i] >= p->gate_level[i];
    }
}

/* Lava's LIFReset: u = v = 0 before the layer's step t when t % interval == offset. */
static void periodic_reset(const snn_lif_t *p, int64_t t)
{
    if (p->reset_interval > 0 && t % p->reset_interval == p->reset_offset) {
        if (p->u != 0)
            zero_bytes(p->u->data, p->u->bytes);
        zero_bytes(p->v->data, p->v->bytes);
    }
}

/* the last input row output row oy of synapse s reads (stride 1, dilation 1) */
static inline int32_t ring_need(const snn_syn_t *s, int32_t oy)
{
    return oy - s->ph + s->kh - 1;
}

/* Whether every synapse of L scans its input in the order lif_ring assumes (the emitter's
 * lowering.ring_rows: conv, stride and dilation 1 along y, a run of kw taps or a 1x1 at
 * the input's pixel); a layer table that says ring without it runs in bands of `rows`
 * (the same tile), never on a wrong assumption. */
static int ring_ok(const snn_layer_t *L)
{
    int32_t k;
    for (k = 0; k < L->n_syn; k++) {
        const snn_syn_t *s = L->syn[k];
        const int span = s->sw == 1 && s->dw == 1 && s->groups == 1 && s->kh <= SNN_MAXKH;
        const int point = s->kh == 1 && s->kw == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0;
        if (!s->conv || s->sh != 1 || s->dh != 1 || !(span || point))
            return 0;
    }
    return L->tile->cols == 0;
}

/* A neuron layer whose conv synapses all scatter input row by input row with stride and
 * dilation 1 (the emitter sets tile->ring = the tallest kernel): before output row oy is
 * updated, each synapse scatters the input rows it has not yet scanned up to the last one
 * that row reads, into the tile rows r % ring of the output rows r >= oy they reach; then
 * row oy's neurons run and its tile row is zeroed for output row oy + ring.  Every input
 * row is scanned once (bands of rows re-scan the rows at their borders). */
static void lif_ring(const snn_layer_t *L)
{
    const snn_tile_t *tl = L->tile;
    const int32_t H = L->out->h, R = tl->ring, row = L->out->w * L->out->c;
    const int32_t row_bytes = row * snn_type_size(tl->type);
    int32_t oy, k;
    zero_bytes(tl->acc, R * row_bytes);
    for (oy = 0; oy < H; oy++) {
        for (k = 0; k < L->n_syn; k++) {
            const snn_syn_t *s = L->syn[k];
            snn_acc_ctx q = acc_ctx(L, s, oy, min32(H, oy + R), 0, L->out->w);
            q.ring = R;
            q.in_lo = oy == 0 ? 0 : max32(0, ring_need(s, oy - 1) + 1);
            q.in_hi = min32(s->x->h, ring_need(s, oy) + 1);
            if (q.in_lo < q.in_hi)
                conv_scatter(&q, tl->type);
        }
        lif_span(L, oy * row, row, (oy % R) * row);
        zero_bytes((uint8_t *)tl->acc + (oy % R) * row_bytes, row_bytes);
    }
}

static void lif_layer(const snn_layer_t *L, int64_t t)
{
    periodic_reset((const snn_lif_t *)L->p, t);
    tnp_start((const snn_lif_t *)L->p, t);
    gate_prior((const snn_lif_t *)L->p);
    lif_layout(L);
    if (L->n_syn == 0) {
        lif_span(L, 0, L->out->n, 0);
    } else {
        snn_layer_t whole;
        snn_tile_t whole_tile;
        int fresh;
        const snn_layer_t *V = cache_view(L, &whole, &whole_tile, &fresh); /* a cached view has no ring */
        const int32_t total = tile_count(V), width = tile_width(V), cols = tile_cols(V);
        int32_t lo, hi, xlo, xhi, e0, n;
        if (V->tile->ring && ring_ok(V))
            lif_ring(V);
        else
            for (lo = 0; lo < total; lo = hi) {
                hi = min32(total, lo + V->tile->rows);
                for (xlo = 0; xlo < width; xlo = xhi) {
                    xhi = min32(width, xlo + cols);
                    n = tile_span(V, lo, hi, xlo, xhi, &e0);
                    if (fresh)
                        accumulate(V, lo, hi, xlo, xhi, n);
                    lif_span(V, e0, n, 0);
                }
            }
    }
    tnp_mask(L, t);
}

/* ------------------------------------------------------------------ pooling, shapes */
/* 16 bits -> 16 nibbles (bit i -> bit 4i) */
static inline uint64_t spread16(uint32_t f)
{
    uint64_t x = f & 0xffffu;
    x = (x | (x << 24)) & 0x000000ff000000ffu;
    x = (x | (x << 12)) & 0x000f000f000f000fu;
    x = (x | (x << 6)) & 0x0303030303030303u;
    return (x | (x << 3)) & 0x1111111111111111u;
}

/* m / 2 bytes of nibbles (channel 2i in the low nibble of byte i) from acc */
static inline void put_nibbles(uint8_t *d, uint64_t acc, int32_t m)
{
    int32_t i;
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (m == 16) { /* one store: byte i of acc is byte i of d */
        __builtin_memcpy(d, &acc, 8);
        return;
    }
#endif
    for (i = 0; i < (m >> 1); i++)
        d[i] = (uint8_t)((acc >> (8 * i)) & 0xffu);
}

/* kernels.sum_pool / kernels.max_pool per output pixel, zero padding (a window position
 * outside the input contributes 0, to the max as well).  Spike inputs: a sum of at most
 * 15 spikes into 4-bit outputs adds 16 channels at once as nibbles; a max is an OR.  The
 * common 2x2 window of stride 2 without padding reads its four pixels directly. */
static int pool_bits(const snn_layer_t *L, int is_max, int32_t oy, int32_t ox)
{
    const snn_pool_t *p = (const snn_pool_t *)L->p;
    const snn_tensor_t *x = L->in[0], *y = L->out;
    const uint32_t *bits = (const uint32_t *)x->data;
    const int32_t C = x->c, step = is_max ? 32 : 16, o0 = (oy * y->w + ox) * C;
    const int quad = p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0;
    int32_t c0, i, j;
    if (x->fmt != SNN_U1 || y->fmt != (is_max ? SNN_U1 : SNN_U4) || (!is_max && (C & 1 || p->kh * p->kw > 15)))
        return 0;
    for (c0 = 0; c0 < C; c0 += step) {
        const int32_t m = min32(step, C - c0);
        uint64_t acc = 0;
        if (quad) { /* inside the input: the output size is floor((h - 2) / 2) + 1 */
            const int32_t i0 = (2 * oy * x->w + 2 * ox) * C + c0, row = x->w * C;
            const uint32_t f0 = bits_field(bits, i0, m), f1 = bits_field(bits, i0 + C, m);
            const uint32_t f2 = bits_field(bits, i0 + row, m), f3 = bits_field(bits, i0 + row + C, m);
            acc = is_max ? (uint64_t)(f0 | f1 | f2 | f3) : spread16(f0) + spread16(f1) + spread16(f2) + spread16(f3);
        } else
            for (i = 0; i < p->kh; i++) {
                const int32_t iy = oy * p->sh - p->ph + i;
                if (iy < 0 || iy >= x->h)
                    continue;
                for (j = 0; j < p->kw; j++) {
                    const int32_t ix = ox * p->sw - p->pw + j;
                    if (ix >= 0 && ix < x->w) {
                        const uint32_t f = bits_field(bits, (iy * x->w + ix) * C + c0, m);
                        acc = is_max ? (acc | f) : acc + spread16(f);
                    }
                }
            }
        if (is_max)
            bits_put((uint32_t *)y->data, o0 + c0, (uint32_t)acc, m);
        else
            put_nibbles((uint8_t *)y->data + ((o0 + c0) >> 1), acc, m);
    }
    return 1;
}

static void pool_layer(const snn_layer_t *L, int is_max)
{
    const snn_pool_t *p = (const snn_pool_t *)L->p;
    const snn_tensor_t *x = L->in[0], *y = L->out;
    const int32_t C = x->c;
    int64_t *acc = p->tmp, *val = p->tmp + min32(C, SNN_TMP);
    int32_t oy, ox, c0, i, j, k, m;
    for (oy = 0; oy < y->h; oy++)
        for (ox = 0; ox < y->w; ox++) {
            if (pool_bits(L, is_max, oy, ox))
                continue;
            for (c0 = 0; c0 < C; c0 += m) {
                int first = 1;
                m = min32(SNN_TMP, C - c0);
                for (k = 0; k < m; k++)
                    acc[k] = 0;
                for (i = 0; i < p->kh; i++)
                    for (j = 0; j < p->kw; j++) {
                        const int32_t iy = oy * p->sh - p->ph + i, ix = ox * p->sw - p->pw + j;
                        if (iy < 0 || iy >= x->h || ix < 0 || ix >= x->w)
                            for (k = 0; k < m; k++)
                                val[k] = 0;
                        else
                            load64(x, (iy * x->w + ix) * C + c0, m, val);
                        for (k = 0; k < m; k++)
                            acc[k] = !is_max ? acc[k] + val[k] : (first || val[k] > acc[k] ? val[k] : acc[k]);
                        first = 0;
                    }
                store64(y, (oy * y->w + ox) * C + c0, m, acc);
            }
        }
}

/* Flatten: the emitter aliases the output to the input's buffer where the order does
 * not matter (its consumers are dense synapses, whose weights it permutes, or the input
 * is (C, 1, 1) or (1, H, W)); otherwise this copies into (C, H, W) order. */
static void flatten_layer(const snn_layer_t *L)
{
    const snn_tensor_t *x = L->in[0], *y = L->out;
    const int32_t hw = x->h * x->w;
    int32_t c, q;
    if (y->data == x->data)
        return;
    for (c = 0; c < x->c; c++)
        for (q = 0; q < hw; q++)
            st(y, c * hw + q, ld(x, q * x->c + c));
}

/* interpreter._eval "Add": element-wise sum of n_in same-shape inputs. */
static void add_layer(const snn_layer_t *L)
{
    int64_t *a = L->tile->tmp, *b = L->tile->tmp + SNN_TMP;
    int32_t i, j, k, m;
    for (i = 0; i < L->out->n; i += m) {
        m = min32(SNN_TMP, L->out->n - i);
        load64(L->in[0], i, m, a);
        for (j = 1; j < L->n_in; j++) {
            load64(L->in[j], i, m, b);
            for (k = 0; k < m; k++)
                a[k] += b[k];
        }
        store64(L->out, i, m, a);
    }
}

/* ---------------------------------------------------------------------------- driver */
/* The layer has just written its fresh result to L->out: swap it with the oldest slot
 * of the ring, so L->out holds what was computed `depth` steps ago (zeros at first). */
static void delay_swap(const snn_layer_t *L)
{
    snn_delay_t *d = L->delay;
    const int32_t nbytes = L->out->bytes;
    uint8_t *a = (uint8_t *)L->out->data, *b = (uint8_t *)d->ring + d->head * nbytes;
    int32_t i;
    for (i = 0; i < nbytes; i++) {
        const uint8_t t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
    d->head = d->head + 1 == d->depth ? 0 : d->head + 1;
}

/* Initial state: empty delay lines, u = 0, v = v_init (per channel; a quantized
 * membrane stores the code sign(v_init)), step 0. */
void snncc_reset(const snn_model_t *m)
{
    int32_t k;
    *m->step = 0;
    for (k = 0; k < m->n_layers; k++) {
        const snn_layer_t *L = &m->layers[k];
        if (L->delay != 0) {
            zero_bytes(L->delay->ring, L->delay->depth * L->out->bytes);
            L->delay->head = 0;
        }
        if (L->kind == SNN_LIF)
            lif_start((const snn_lif_t *)L->p);
    }
}

/* values i0 .. i0 + n - 1 of the input in (C, H, W) order, stored channel-last */
void snncc_set_input_range(const snn_model_t *m, int32_t i0, int32_t n, const int32_t *x)
{
    const snn_tensor_t *t = m->input;
    const int32_t hw = t->h * t->w;
    int32_t k, c = i0 / hw, q = i0 % hw;
    for (k = 0; k < n; k++) {
        st(t, q * t->c + c, x[k]);
        if (++q == hw) {
            q = 0;
            c++;
        }
    }
}

void snncc_set_input(const snn_model_t *m, const int32_t *x)
{
    snncc_set_input_range(m, 0, m->input->n, x);
}

/* One time step: every layer in topological order (interpreter.run's inner loop). */
void snncc_step(const snn_model_t *m)
{
    int32_t k;
    for (k = 0; k < m->n_layers; k++) {
        const snn_layer_t *L = &m->layers[k];
        switch (L->kind) {
        case SNN_CONV:
        case SNN_DENSE: synapse_layer(L); break;
        case SNN_SUMPOOL: pool_layer(L, 0); break;
        case SNN_MAXPOOL: pool_layer(L, 1); break;
        case SNN_FLATTEN: flatten_layer(L); break;
        case SNN_ADD: add_layer(L); break;
        default: lif_layer(L, *m->step); break;
        }
        if (L->delay != 0)
            delay_swap(L);
    }
    *m->step += 1;
}
