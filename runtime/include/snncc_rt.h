/* snncc_rt.h - the C99 integer runtime of snncc's C target.
 *
 * Every kernel here is the C twin of a function in snncc/reference/kernels.py and must
 * agree with it bit for bit; the reference interpreter (snncc/reference/interpreter.py)
 * is the specification.  No floating point, no malloc: a generated model.c declares
 * every buffer statically and describes the network with the tables below.
 *
 * Memory (DEVELOPERS.md, "The C runtime's memory")
 * ------------------------------------------------
 * Every tensor is stored in the narrowest *format* that holds every value it can take
 * (the emitter proves it with snncc.ir.bounds), channel-last: element (y, x, c) of a
 * (C, H, W) tensor is element (y * W + x) * C + c.  Formats:
 *   SNN_U1   1 bit per element, in 32-bit words (bit i is bit i % 32 of word i / 32):
 *            spikes, binary membrane codes
 *   SNN_T2   ternary codes -1/0/1 in two such bit planes (q > 0, then q < 0)
 *   SNN_U4/S4  4 bits (two per byte, element 2k in the low nibble), e.g. pooled spikes
 *   SNN_U8 .. SNN_S64  plain C arrays (uint8_t, int8_t, uint16_t, int16_t, int32_t,
 *            int64_t), and SNN_S24: 24-bit values in two planes, the low 16 bits
 *            (uint16_t[n]) then the high 8 bits (uint8_t[n]): 3 bytes per element
 * A quantized membrane (state_quant ternary/binary) stores its codes q (T2/U1): the
 * value is q * level[c].
 *
 * Buffers that live beyond one layer are their own static arrays: neuron state (u, v),
 * spikes, delay lines, the network output.  Every other buffer - the input, synapse,
 * pooling and add results that are materialized, and all kernel scratch - lives in one
 * static arena, at offsets the emitter plans at compile time so that buffers whose
 * lifetimes (layer intervals of one step) overlap never share bytes.
 *
 * Layer-table design
 * ------------------
 * A model is a flat, topologically ordered array of snn_layer_t, walked once per step by
 * snncc_step().  A synapse feeding one neuron layer (directly, or with others through an
 * Add) is *fused* into it: the neuron layer's entry lists those synapses (syn) and any
 * other current terms (in), and the layer runs tile by tile: a tile is a band of
 * `rows` output rows (conv; where one row is over the budget, `cols` columns of one
 * row) or `rows` outputs (dense), contiguous in the output; the
 * synapses scatter their input events into the tile's accumulator (tile->acc, type
 * int16/32/64_t, proven by the emitter to hold every partial sum), then the neuron
 * update runs over the tile and its spikes are written bit-packed.  No layer needs a
 * full-size accumulator.  A synapse whose output is needed elsewhere (a delay, a pool,
 * the network output) is its own layer that stores its result, also tile by tile.
 *
 * Synapses scatter: for every nonzero input value (spikes: every set bit, found word by
 * word) and kernel row, the weights it sends to the outputs are one contiguous run
 * (conv weights are packed (C, kH, kW reversed, O/groups); dense weights (I, O), I in
 * the input's storage order), added into contiguous accumulators: a spike adds, a
 * graded value multiply-adds, in plain loops that compilers vectorize (the tile rows an
 * input row reaches are found once per row; three kernel rows run in one loop).  8-bit
 * weights are read in place; other widths are decoded per run into tile->wbuf.  Graded
 * inputs in plain arrays with 8-bit weights are gathered instead (per output pixel, or
 * tap by tap for few input channels).
 *
 * Neurons: chunks of p->chunk elements, widened to int32_t when the emitter proved that
 * every intermediate of the update fits (p->wide == 0), else int64_t; per overflow mode
 * pair one branch-free loop over runs of channels (constants per channel, expanded).
 *
 * Arithmetic: decays are (x * (4096 - d)) / 4096 truncated toward zero (int32_t: split
 * into the high and low 12 bits so that no product overflows); shifts are written as
 * multiplications / floor divisions: no step relies on implementation-defined or
 * undefined signed-shift behaviour.
 *
 * Weights are stored packed: `bits`-bit two's complement values, little-endian bit
 * order (bit k of weight i is bit (i*bits + k) % 8 of byte (i*bits + k) / 8), so a
 * layer's flash footprint is ceil(count * bits / 8) bytes.
 */
#ifndef SNNCC_RT_H
#define SNNCC_RT_H

#include <stdint.h>

#define SNN_DECAY_SHIFT 12
#define SNN_DECAY_ONE (1 << SNN_DECAY_SHIFT)
/* int64_t values per scratch array of stored synapse results, pools and adds (the
 * emitter sizes those arrays with the same number: lowering.TMP_VALUES) */
#define SNN_TMP 32

/* scalar types of accumulators, constants and probe output, index = log2(bytes) */
enum { SNN_I8 = 0, SNN_I16 = 1, SNN_I32 = 2, SNN_I64 = 3 };
/* storage formats of tensor buffers (see above) */
enum { SNN_U1 = 0, SNN_U4, SNN_S4, SNN_U8, SNN_S8, SNN_U16, SNN_S16, SNN_S24, SNN_S32, SNN_S64, SNN_T2 };
/* layer kinds */
enum { SNN_CONV = 0, SNN_DENSE, SNN_SUMPOOL, SNN_MAXPOOL, SNN_FLATTEN, SNN_ADD, SNN_LIF, SNN_N_KINDS };
/* IntLIF options, in the order of snncc.ir.nodes.OVERFLOWS / RESETS / STATE_QUANTS */
enum { SNN_SATURATE = 0, SNN_WRAP, SNN_WRAP_LAVA };
enum { SNN_RESET_ZERO = 0, SNN_RESET_SUBTRACT, SNN_RESET_NONE };
enum { SNN_QUANT_NONE = 0, SNN_QUANT_TERNARY, SNN_QUANT_BINARY };

/* A (C, H, W) tensor stored channel-last in format `fmt`; a vector of n values is (n, 1, 1). */
typedef struct {
    void *data;
    uint8_t fmt;           /* SNN_U1 .. SNN_T2 */
    int32_t c, h, w, n;    /* n = c * h * w */
    int32_t bytes;         /* size of the buffer */
} snn_tensor_t;

/* A synaptic delay line of `depth` slots of the layer's output buffer (mutable). */
typedef struct {
    void *ring;
    int32_t depth;
    int32_t head;
} snn_delay_t;

/* A synapse: y = wrap_out_bits((W x) << exp). */
typedef struct {
    const uint8_t *w;      /* packed: conv (C, kH, kW reversed, O/groups); dense (I, O) */
    const snn_tensor_t *x; /* its input */
    uint8_t conv;          /* 1: conv2d, 0: dense */
    uint8_t bits;          /* weight bits, 1..32 */
    int8_t exp;            /* weight_exp: << for >= 0, floor >> for < 0 */
    uint8_t out_bits;      /* > 0: wrap the result to out_bits (two's complement) */
    int32_t kh, kw, sh, sw, ph, pw, dh, dw, groups; /* conv geometry */
} snn_syn_t;

/* The whole-layer sums of a layer (neurons or a stored synapse) whose synapses all read
 * the model input, kept between steps in a build with -DSNNCC_INPUT_CACHE (snncc_rt.c
 * cache_view): the synapses run again only when the input's bytes differ from those the
 * sums were computed from (a static image over T steps: once per sample).  The sums are a
 * function of those bytes alone (the weights are constants), so the result is the banded
 * path's, bit for bit.  Both arrays start as zeros, which they are: the sums of an
 * all-zero input are zero. */
typedef struct {
    void *acc;             /* the layer's sums (all output rows), of the tile's type */
    uint8_t *in;           /* the input's bytes they were computed from */
} snn_cache_t;

/* How a layer with synapses runs: tile by tile, in arena scratch. */
typedef struct {
    void *acc;             /* `rows` output rows (conv) or `rows` outputs (dense), of type `type` */
    void *wbuf;            /* decoded weights of one run, of type `type` (NULL: all weights 8-bit) */
    int64_t *tmp;          /* SNN_TMP values: results on their way to a stored output (or 2 * SNN_TMP: adds) */
    uint8_t type;          /* accumulator type SNN_I16 .. SNN_I64: holds every input, weight, partial sum */
    int32_t rows;          /* output rows (conv) or outputs (dense) per tile */
    int32_t cols;          /* conv, rows == 1: output columns per tile (0: whole rows) */
    int32_t ring;          /* > 0: a line buffer of `ring` (= rows) output rows used in turn: each
                            * input row is scattered once, an output row is updated as soon as its
                            * last input row is in (snncc_rt.c lif_ring); 0: bands of `rows` */
    snn_cache_t *cache;    /* NULL, or the layer's kept sums (-DSNNCC_INPUT_CACHE): then the layer runs
                            * as one tile over cache->acc instead of the above */
} snn_tile_t;

typedef struct {
    int32_t kh, kw, sh, sw, ph, pw;
    int64_t *tmp;          /* 2 * min(C, SNN_TMP) values of arena scratch */
} snn_pool_t;

typedef struct {
    int32_t du, dv, act_shift;
    uint8_t u_bits, u_ovf, v_bits, v_ovf, reset, quant, fires;
    uint8_t wide;          /* 0: the update runs in int32_t (proven exact), 1: int64_t */
    /* per channel (C entries), int32_t or int64_t (`wide`); NULL where unused */
    const void *thr, *bias, *rv, *level, *u_bias, *v_init;
    const snn_tensor_t *u; /* current state; NULL when du == 4096 (no current state). On Lava's
                            * schedule the state probes record u of every neuron; where
                            * du == 4096 it then holds the step's current (decay(u, 4096) = 0),
                            * so model.c declares it only with -DSNNCC_PROBE_STATE (the
                            * harness for --probe) and it is NULL in the deployed build */
    const snn_tensor_t *v; /* membrane state (codes for a quantized membrane in T2/U1) */
    int32_t reset_interval; /* > 0: u = v = 0 before the step t with t % reset_interval == reset_offset */
    int32_t reset_offset;
    int32_t chunk;         /* elements per chunk */
    void *tmp;             /* arena: 4 * chunk values of the update's type (a, u, v, s) */
    int32_t presim;        /* > 0: test-time neuron pruning (TNP): before step presim, keep = v > prune_level,
                            * u = 0, v = v_init; from then on only the kept neurons' spikes leave the layer */
    const void *prune_level; /* per channel, int32_t or int64_t (`wide`); NULL without TNP */
    const snn_tensor_t *keep; /* TNP's 0/1 per neuron (1 bit); NULL without TNP and for a readout */
    /* SpQuant-SNN's sparsity masks (IntLIF; snncc_rt.c "sparsity masks") */
    uint8_t neg_mask;      /* 1: v < 0 -> 0 and no spike (Eq. 19-20) */
    int64_t spatial_level; /* >= 0: a neuron with |a| <= it keeps its state, no spike (Eq. 21-22); -1: off */
    int64_t *spatial_tmp;  /* arena: 3 * chunk int64 (saved u, v and the skip flags of a chunk) */
    const void *gate_w;    /* (C, C) channel gate weights (Eq. 23) of type gate_type; NULL: no gate */
    uint8_t gate_type;     /* SNN_I8 .. SNN_I64: the narrowest that holds the gate weights */
    const int64_t *gate_level; /* C levels: channel c keeps its spikes where (gate_w p)_c >= gate_level[c] */
    int64_t *gate_tmp;     /* arena: 3 * C int64 (p, z, keep) */
} snn_lif_t;

typedef struct {
    uint8_t kind;                     /* SNN_CONV .. SNN_LIF */
    const char *name;                 /* the graph node's name */
    const snn_tensor_t *out;          /* spikes for SNN_LIF */
    const snn_tensor_t *const *in;    /* n_in stored inputs (SNN_LIF: terms of its input current) */
    int32_t n_in;
    const snn_syn_t *const *syn;      /* n_syn synapses this layer computes (SNN_LIF: fused) */
    int32_t n_syn;
    const void *p;                    /* snn_pool_t, snn_lif_t or NULL */
    const snn_tile_t *tile;           /* for layers with synapses */
    snn_delay_t *delay;               /* non-NULL: output delivered `depth` steps late */
} snn_layer_t;

typedef struct {
    const char *key;                  /* "name", "name/v", "name/u" or "output" */
    const snn_tensor_t *t;
    const void *level;                /* codes of a quantized membrane: value = code * level[c] */
    uint8_t wide;                     /* level is int64_t (else int32_t) */
    uint8_t io;                       /* written as SNN_I8 .. SNN_I64 little-endian */
    uint8_t state;                    /* 1: only written when states are probed */
} snn_probe_t;

typedef struct {
    const snn_layer_t *layers;
    int32_t n_layers;
    const snn_tensor_t *input;
    const snn_probe_t *probes;
    int32_t n_probes;
    int64_t *step;                    /* steps run since snncc_reset (the t of periodic resets) */
} snn_model_t;

/* element access in any format (values fit the format: the emitter proves it; compile
 * with -DSNNCC_CHECKED to abort on a value that does not) */
int64_t snn_ld(const snn_tensor_t *t, int32_t i);
void snn_st(const snn_tensor_t *t, int32_t i, int64_t v);
int32_t snn_type_size(uint8_t type);
/* elements i0 .. i0 + n - 1 of a probe (storage order), little-endian two's complement
 * in the probe's io width, into dst; returns the bytes written */
int32_t snn_write_probe(const snn_probe_t *p, int32_t i0, int32_t n, uint8_t *dst);

/* scalar arithmetic shared by the kernels (the reference's kernels.py, element-wise) */
int32_t snn_wget(const uint8_t *packed, uint32_t i, uint32_t bits);
int64_t snn_shift(int64_t x, int32_t e);
int64_t snn_decay(int64_t x, int32_t d);
int32_t snn_decay32(int32_t x, int32_t d);
int64_t snn_overflow(int64_t x, int32_t bits, int32_t mode);
int64_t snn_quant(int64_t v, int64_t level, int32_t kind);

/* driver */
void snncc_reset(const snn_model_t *m);
/* the input of one step, in (C, H, W) order: x[i] for i < input->n */
void snncc_set_input(const snn_model_t *m, const int32_t *x);
/* part of it: values i0 .. i0 + n - 1 of the (C, H, W) order */
void snncc_set_input_range(const snn_model_t *m, int32_t i0, int32_t n, const int32_t *x);
void snncc_step(const snn_model_t *m);

#endif /* SNNCC_RT_H */
