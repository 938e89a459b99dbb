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
 * Arithmetic: values are loaded into int64_t, decays use an int64_t product, shifts are
 * written as multiplications / floor divisions so that no step relies on
 * implementation-defined or undefined signed-shift behaviour.  Conv and dense layers
 * accumulate in int32_t when the emitter proved that every partial sum fits (acc64 = 0),
 * in int64_t otherwise.
 *
 * Weights are stored packed: `bits`-bit two's complement values, little-endian bit
 * order (bit k of weight i is bit (i*bits + k) % 8 of byte (i*bits + k) / 8), so a
 * layer's flash footprint is ceil(count * bits / 8) bytes.  8-bit weights are thus
 * plain int8 bytes.  snn_wget() unpacks one weight on the fly.
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
    const uint8_t *w;      /* packed (O, C/groups, kH, kW) */
    uint8_t bits;          /* weight bits, 1..32 */
    int8_t exp;            /* weight_exp: << for >= 0, floor >> for < 0 */
    uint8_t acc64;         /* 1: accumulate in int64_t */
    uint8_t out_bits;      /* > 0: wrap the result to out_bits (two's complement) */
    int32_t kh, kw, sh, sw, ph, pw, dh, dw, groups;
} snn_conv_t;

typedef struct {
    const uint8_t *w;      /* packed (O, I) */
    uint8_t bits;
    int8_t exp;
    uint8_t acc64;
    uint8_t out_bits;
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
} snn_model_t;

/* tensor element access (values are assumed to fit the tensor's type: the emitter
 * proves it; compile with -DSNNCC_CHECKED to abort on a value that does not) */
int64_t snn_ld(const snn_tensor_t *t, int32_t i);
void snn_st(const snn_tensor_t *t, int32_t i, int64_t v);
int64_t snn_vget(const snn_vec_t *v, int32_t ch);
int32_t snn_type_size(uint8_t type);

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
