/* snncc_rt.h - the C99 integer runtime of snncc's C target.
 *
 * Every kernel here is the C twin of a function in snncc/reference/kernels.py and must
 * agree with it bit for bit; the reference interpreter (snncc/reference/interpreter.py)
 * is the specification.  No floating point, no malloc: a generated model.c declares
 * every buffer as a static array and describes the network with the tables below.
 *
 * Layer-table design
 * ------------------
 * A model is a flat, topologically ordered array of snn_layer_t.  Each entry names its
 * kind (an index into the kernel table in snncc_rt.c), its output tensor, its input
 * tensors and a pointer to a kind-specific, read-only parameter block (snn_conv_t,
 * snn_dense_t, snn_pool_t, snn_lif_t).  Tensors (snn_tensor_t) are descriptors of
 * static buffers: element type + (C, H, W) shape.  The element type of every buffer is
 * chosen per tensor by the emitter from worst-case value bounds (int8 for spikes,
 * wider only where a value can need it), so memory stays small and results stay exact.
 * snncc_step() walks the table once per time step; everything that survives a step
 * (LIF u/v, synaptic delay lines) lives in buffers the parameter blocks point to, and
 * snncc_reset() walks the same table to restore the initial state.  The input tensor is
 * filled by the caller (snncc_set_input) before each step; probes name the tensors a
 * harness may read back after a step (spikes, u, v, the network output).
 *
 * Arithmetic: element-wise kernels widen values to int64_t; decays are an int64_t
 * product divided by 4096 (C99 division truncates toward zero, as the reference's
 * decay rounds); shifts are written as multiplications / floor divisions, so that no
 * step relies on implementation-defined or undefined signed-shift behaviour.
 *
 * Weights are stored packed: `bits`-bit two's complement values, little-endian bit
 * order (bit k of weight i is bit (i*bits + k) % 8 of byte (i*bits + k) / 8), so a
 * layer's flash footprint is ceil(count * bits / 8) bytes.  8-bit weights are thus
 * plain int8 bytes, read in place; other widths are decoded on the fly.  Dense weights
 * are packed (O, I); conv weights input channel first, (C, kH, kW, O/groups), so that
 * the weights one input channel sends to its group's outputs are one contiguous run.
 *
 * Speed: the synapse kernels are event-driven (spikes are mostly 0) and free of
 * per-element type switches.
 *   Conv scatters.  For every input channel c with a nonzero value, its run of weights
 *   is decoded once per step into a small scratch table laid out (kH, kW reversed,
 *   O/groups).  For every nonzero x at (c, iy, ix) and every kernel tap (i, j) that
 *   maps it onto an output (oy, ox), x * W[group outputs, c, i, j] is added to a
 *   scratch accumulator laid out (H, W, O): the innermost loop is a contiguous add over
 *   output channels (a plain add for spikes, x == 1), written in fixed blocks of 8 that
 *   compilers vectorize at -O2 on any target.  With stride 1, dilation 1 and one group,
 *   the kW taps of an interior input hit kW adjacent outputs, so the whole kernel row
 *   is one contiguous run of kW*O sums (borders, strides and dilations go tap by tap,
 *   with the geometry resolved per row and per input, never in the innermost loop).
 *   The sums are then written out (O, H, W) with the shift and wrap.  The accumulator
 *   holds a band of output rows at a time (the emitter sizes the band to a small RAM
 *   budget; input rows that reach two bands are scanned twice).  The emitter picks
 *   the accumulator type (int16/32/64_t) so that every weight, input value and partial
 *   sum fits it (any subset of a window's products lies within the worst-case bounds);
 *   weights are decoded to int16_t under int16_t and int32_t sums (int32_t sums only
 *   where weights and inputs fit int16_t: a widening multiply-add that SSE2-class SIMD
 *   has; otherwise the sums go int64_t, with int64_t weights).  A depthwise 1x1
 *   conv (a residual shortcut's identity synapse) is a per-channel scale.
 *   Dense gathers: the nonzero inputs are listed once, then each output row sums its
 *   weights at those positions (int32_t or int64_t accumulator, acc64).
 *   Neuron, pooling, add: chunks of SNN_CHUNK values widened to int64_t, one neuron
 *   function per v overflow mode with a branch-free spike and reset; pooling windows
 *   inside the input skip the padding checks, with int8_t (spike) inputs read directly.
 * The scratch buffers (nonzero positions, accumulators, decoded weights) are static
 * arrays declared by model.c, sized by the emitter to the largest layer that uses them
 * and shared by all layers (one layer runs at a time); c_manifest.json reports their
 * size as scratch_bytes.
 */
#ifndef SNNCC_RT_H
#define SNNCC_RT_H

#include <stdint.h>

#define SNN_DECAY_SHIFT 12
#define SNN_DECAY_ONE (1 << SNN_DECAY_SHIFT)

/* element types of tensor buffers and constant vectors */
enum { SNN_I8 = 0, SNN_I16 = 1, SNN_I32 = 2, SNN_I64 = 3 };
/* layer kinds: the index into the kernel table */
enum { SNN_CONV = 0, SNN_DENSE, SNN_SUMPOOL, SNN_MAXPOOL, SNN_FLATTEN, SNN_ADD, SNN_LIF, SNN_N_KINDS };
/* IntLIF options, in the order of snncc.ir.nodes.OVERFLOWS / RESETS / STATE_QUANTS */
enum { SNN_SATURATE = 0, SNN_WRAP, SNN_WRAP_LAVA };
enum { SNN_RESET_ZERO = 0, SNN_RESET_SUBTRACT, SNN_RESET_NONE };
enum { SNN_QUANT_NONE = 0, SNN_QUANT_TERNARY, SNN_QUANT_BINARY };

/* A (C, H, W) tensor in a static buffer, C-major; a vector of n values is (n, 1, 1). */
typedef struct {
    void *data;
    uint8_t type;          /* SNN_I8 .. SNN_I64 */
    int32_t c, h, w, n;    /* n = c * h * w */
} snn_tensor_t;

/* Neuron constants: n == 1 is a scalar broadcast over channels, else one per channel. */
typedef struct {
    const void *data;
    uint8_t type;
    int32_t n;
} snn_vec_t;

/* A synaptic delay line of `depth` slots of the layer's output size (mutable). */
typedef struct {
    void *ring;
    int32_t depth;
    int32_t head;
} snn_delay_t;

typedef struct {
    const uint8_t *w;      /* packed (C, kH, kW, O/groups): W[g*O/groups + o, c % (C/groups), i, j]
                            * is weight ((c*kH + i)*kW + j)*O/groups + o, with g = c / (C/groups) */
    uint8_t bits;          /* weight bits, 1..32 */
    int8_t exp;            /* weight_exp: << for >= 0, floor >> for < 0 */
    uint8_t acc;           /* accumulator type SNN_I16..SNN_I64: holds every weight, input, partial sum */
    uint8_t wtype;         /* decoded weight type: SNN_I16 under SNN_I16 or SNN_I32 sums (every weight
                            * and input value fits int16_t: a widening multiply-add), else SNN_I64 */
    uint8_t out_bits;      /* > 0: wrap the result to out_bits (two's complement) */
    int32_t kh, kw, sh, sw, ph, pw, dh, dw, groups;
    int32_t band;          /* output rows per pass: the accumulator holds band*W*O sums */
    /* scratch (NULL for a depthwise 1x1 conv, which is a per-channel scale): */
    void *acc_buf;         /* type `acc`: the sums of `band` output rows, (band, W, O) order */
    void *w_buf;           /* type `wtype`: kH*kW*O/groups decoded weights of one input channel */
    int32_t *nz;           /* input width (W) positions: the nonzeros of one input row */
} snn_conv_t;

typedef struct {
    const uint8_t *w;      /* packed (O, I) */
    uint8_t bits;
    int8_t exp;
    uint8_t acc64;         /* 1: accumulate in int64_t, else int32_t */
    uint8_t out_bits;
    int32_t *nz;           /* scratch: I positions, the nonzero inputs */
} snn_dense_t;

typedef struct {
    int32_t kh, kw, sh, sw, ph, pw;
} snn_pool_t;

typedef struct {
    int32_t du, dv, act_shift;
    uint8_t u_bits, u_ovf, v_bits, v_ovf, reset, quant, fires;
    snn_vec_t threshold, bias, reset_value, v_init, level;
    const snn_tensor_t *u;  /* current state; NULL when du == 4096 (no current state) */
    const snn_tensor_t *v;  /* membrane state */
    int32_t reset_interval; /* > 0: u = v = 0 before the step t with t % reset_interval == reset_offset */
    int32_t reset_offset;
    snn_vec_t u_bias;       /* constant input current added to u each step; n == 0: none */
    int32_t presim;         /* > 0: test-time neuron pruning (TNP): before step presim, keep = v > prune_level,
                             * u = 0, v = v_init; from then on the spikes are s & keep */
    snn_vec_t prune_level;
    const snn_tensor_t *keep; /* TNP's 0/1 per neuron (int8); NULL for a readout */
} snn_lif_t;

typedef struct {
    uint8_t kind;                    /* SNN_CONV .. SNN_LIF */
    const char *name;                /* the graph node's name */
    const snn_tensor_t *out;         /* spikes for SNN_LIF */
    const snn_tensor_t *const *in;   /* n_in input tensors */
    int32_t n_in;
    const void *p;                   /* kind-specific parameters or NULL */
    snn_delay_t *delay;              /* non-NULL: output delivered `depth` steps late */
} snn_layer_t;

typedef struct {
    const char *key;                 /* "name", "name/v", "name/u" or "output" */
    const snn_tensor_t *t;
    uint8_t state;                   /* 1: only written when states are probed */
} snn_probe_t;

typedef struct {
    const snn_layer_t *layers;
    int32_t n_layers;
    const snn_tensor_t *input;
    const snn_probe_t *probes;
    int32_t n_probes;
    int64_t *step;                   /* steps run since snncc_reset (the t of periodic resets) */
} snn_model_t;

/* values per chunk of the element-wise kernels (static int64_t scratch in snncc_rt.c) */
#define SNN_CHUNK 64

/* tensor element access (values are assumed to fit the tensor's type: the emitter
 * proves it; compile with -DSNNCC_CHECKED to abort on a value that does not) */
int64_t snn_ld(const snn_tensor_t *t, int32_t i);
void snn_st(const snn_tensor_t *t, int32_t i, int64_t v);
int64_t snn_vget(const snn_vec_t *v, int32_t ch);
int32_t snn_type_size(uint8_t type);
/* the n values of t, little-endian two's complement in its type's width, into dst;
 * returns the number of bytes written (n * snn_type_size(t->type)) */
int32_t snn_write_le(const snn_tensor_t *t, uint8_t *dst);

/* scalar arithmetic shared by the kernels (the reference's kernels.py, element-wise) */
int32_t snn_wget(const uint8_t *packed, uint32_t i, uint32_t bits);
int64_t snn_shift(int64_t x, int32_t e);
int64_t snn_decay(int64_t x, int32_t d);
int64_t snn_overflow(int64_t x, int32_t bits, int32_t mode);
int64_t snn_quant(int64_t v, int64_t level, int32_t kind);

/* layer kernels */
void snn_conv2d(const snn_layer_t *L);
void snn_dense(const snn_layer_t *L);
void snn_sum_pool(const snn_layer_t *L);
void snn_max_pool(const snn_layer_t *L);
void snn_flatten(const snn_layer_t *L);
void snn_add(const snn_layer_t *L);
void snn_lif(const snn_layer_t *L);

/* driver */
void snncc_reset(const snn_model_t *m);
void snncc_set_input(const snn_model_t *m, const int32_t *x);
void snncc_step(const snn_model_t *m);

#endif /* SNNCC_RT_H */
