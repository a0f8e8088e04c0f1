"""The C text of the C model's kernels: TFLite's int8 reference kernels (tensorflow/lite/kernels/internal/
reference/integer_ops, as TFLite Micro runs them) and gemmlowp's fixed-point arithmetic they use
(SaturatingRoundingDoublingHighMul, RoundingDivideByPOT, the double-rounding MultiplyByQuantizedMultiplier that
TFLite Micro is built with, exp_on_negative_values and 1/(1+x) for the softmax), written again in C99 with
<stdint.h> only; TANH and LOGISTIC, functions of one int8 value, are tables computed at generation (c_graph's
Python port of the same fixed point). Each kernel takes a parameter struct its step fills in; only the kernels
a model uses (and the helpers they need) are emitted, so the file compiles warning-free. Signed right shifts are
arithmetic, as on every GCC, Clang and Arm compiler (the C file checks it at compile time). The standard library
only."""

from __future__ import annotations

# name -> (helpers it needs, C text). Helpers come first in the file, in this table's order.
HELPERS: dict[str, tuple[tuple[str, ...], str]] = {
    "clamp": (
        (),
        """
static int32_t clamp32(int32_t x, int32_t low, int32_t high) {
    return x < low ? low : (x > high ? high : x);
}
""",
    ),
    "window": (
        (),
        """
/* the first and one past the last filter tap (of dilation d) that falls inside [0, size) from origin */
static int window_start(int origin, int d) {
    return origin < 0 ? (-origin + d - 1) / d : 0;
}

static int window_end(int origin, int d, int k, int size) {
    const int end = size - origin > 0 ? (size - origin + d - 1) / d : 0;
    return end < k ? end : k;
}
""",
    ),
    "fixed": (
        (),
        """
/* gemmlowp's SaturatingRoundingDoublingHighMul: (a * b * 2) / 2^32, rounded to nearest, saturated. */
static int32_t srdhm(int32_t a, int32_t b) {
    int64_t ab, num;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    num = ab + (ab >= 0 ? (INT64_C(1) << 30) : (1 - (INT64_C(1) << 30)));
    return (int32_t)(num >= 0 ? (num >> 31) : -((-num) >> 31)); /* C division: toward zero */
}

/* gemmlowp's RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero. */
static int32_t rdbpot(int32_t x, int e) {
    const int32_t mask = (int32_t)((INT64_C(1) << e) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* tflite::MultiplyByQuantizedMultiplier, double rounding (TFLite Micro's build): x * m * 2^(shift - 31). */
static int32_t mbqm(int32_t x, int32_t m, int shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return rdbpot(srdhm((int32_t)((uint32_t)x << left), m), right);
}
""",
    ),
    "exp": (
        ("fixed",),
        """
/* gemmlowp's SaturatingRoundingMultiplyByPOT: x * 2^e, saturated (e > 0) or rounded (e < 0). */
static int32_t sat_pot(int32_t x, int e) {
    if (e > 0) {
        const int32_t threshold = (int32_t)((INT64_C(1) << (31 - e)) - 1);
        if (x > threshold) {
            return INT32_MAX;
        }
        if (x < -threshold) {
            return INT32_MIN;
        }
        return (int32_t)((uint32_t)x << e);
    }
    return e < 0 ? rdbpot(x, -e) : x;
}

/* gemmlowp's exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31. */
static int32_t exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = srdhm(x, x);
    const int32_t x3 = srdhm(x2, x);
    const int32_t x4 = srdhm(x2, x2);
    const int32_t x4_over_4 = rdbpot(x4, 2);
    const int32_t poly = rdbpot(srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return constant_term + srdhm(constant_term, x + poly);
}

/* gemmlowp's exp_on_negative_values: a is Q(bits).(31 - bits), a <= 0; the result is Q0.31. */
static int32_t exp_negative(int32_t a, int bits) {
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fraction = 31 - bits;
    const int32_t quarter = (int32_t)1 << (fraction - 2);
    const int32_t mod_minus_quarter = (a & (quarter - 1)) - quarter;
    const int32_t remainder = mod_minus_quarter - a;
    int32_t result = exp_quarter(sat_pot(mod_minus_quarter, bits));
    int k;
    for (k = 0; k < 7; ++k) {
        const int exponent = k - 2; /* exp(-2^exponent) */
        if (bits > exponent && (remainder & ((int32_t)1 << (fraction + exponent))) != 0) {
            result = srdhm(result, multipliers[k]);
        }
    }
    if (bits > 5 && a < -((int32_t)1 << (36 - bits))) {
        result = 0;
    }
    return a == 0 ? INT32_MAX : result;
}

/* gemmlowp's Newton-Raphson division of one_over_one_plus_x_for_x_in_0_1: 1/(1+a) as Q2.29, a in [0, 1) as
   Q0.31. */
static int32_t reciprocal_q2(int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810 + srdhm(half, -1010580540); /* 48/17 - 32/17 * half */
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = ((int32_t)1 << 29) - srdhm(half, x);
        x = x + sat_pot(srdhm(x, one_minus), 2);
    }
    return x;
}
""",
    ),
    "one_over": (
        ("exp",),
        """
/* gemmlowp's one_over_one_plus_x_for_x_in_0_1, Q0.31. */
static int32_t one_over_one_plus(int32_t a) {
    return sat_pot(reciprocal_q2(a), 1);
}
""",
    ),
}

# struct -> its fields: (C type, names); a step's struct is filled in with designated initializers
STRUCTS: dict[str, tuple[tuple[str, str], ...]] = {
    "window": (("int", "ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, ph, pw, dm"),
               ("int32_t", "in_offset, out_offset, act_min, act_max"), ("const int8_t *", "w"),
               ("const int32_t *", "bias"), ("const int32_t *", "mult"), ("const int8_t *", "shift")),
    "fc": (("int", "rows, depth, units"), ("int32_t", "in_offset, out_offset, act_min, act_max"),
           ("const int8_t *", "w"), ("const int32_t *", "bias"), ("const int32_t *", "mult"),
           ("const int8_t *", "shift")),
    "pool": (("int", "ih, iw, c, oh, ow, kh, kw, sh, sw, ph, pw"), ("int32_t", "act_min, act_max")),
    "pointwise": (("int", "n"), ("int32_t", "in_zp, out_zp, mult, shift, act_min, act_max, zero, six")),
    "softmax": (("int", "rows, depth"), ("int32_t", "mult, shift, diff_min")),
    "lut": (("int", "n"), ("const int8_t *", "table")),
}  # fmt: skip


def _struct(name: str) -> str:
    lines = [f"    {ctype}{'' if ctype.endswith('*') else ' '}{names};" for ctype, names in STRUCTS[name]]
    return "\ntypedef struct {\n" + "\n".join(lines) + f"\n}} {name}_params;\n"


# kernel -> (struct, helpers, C text)
KERNELS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "conv": (
        "window",
        ("window", "fixed", "clamp"),
        """
/* reference_integer_ops::ConvPerChannel: the same int32 sums, taken over the window's taps inside the image
   (the padding adds nothing), a row of taps at a time where they are contiguous (no dilation across a row) */
static void conv(const window_params *p, const int8_t *in, int8_t *out) {
    const int ih = p->ih, iw = p->iw, ic = p->ic, oc = p->oc, kh = p->kh, kw = p->kw, dh = p->dh, dw = p->dw;
    const int taps = kh * kw * ic;
    const int32_t offset = p->in_offset;
    int oy, ox, o, fy, fx, i;
    for (oy = 0; oy < p->oh; ++oy) {
        const int y0 = oy * p->sh - p->ph;
        const int fy0 = window_start(y0, dh);
        const int fy1 = window_end(y0, dh, kh, ih);
        for (ox = 0; ox < p->ow; ++ox) {
            const int x0 = ox * p->sw - p->pw;
            const int fx0 = window_start(x0, dw);
            const int fx1 = window_end(x0, dw, kw, iw);
            const int run = (fx1 - fx0) * ic; /* contiguous bytes of one row of taps when dw == 1 */
            int8_t *dst = out + (oy * p->ow + ox) * oc;
            for (o = 0; o < oc; ++o) {
                const int8_t *filter = p->w + o * taps;
                int32_t acc = 0;
                for (fy = fy0; fy < fy1; ++fy) {
                    const int8_t *src = in + ((y0 + dh * fy) * iw + x0 + dw * fx0) * ic;
                    const int8_t *tap = filter + (fy * kw + fx0) * ic;
                    if (dw == 1) {
                        for (i = 0; i < run; ++i) {
                            acc += (int32_t)tap[i] * ((int32_t)src[i] + offset);
                        }
                    } else {
                        for (fx = 0; fx < fx1 - fx0; ++fx) {
                            for (i = 0; i < ic; ++i) {
                                acc += (int32_t)tap[fx * ic + i] * ((int32_t)src[fx * dw * ic + i] + offset);
                            }
                        }
                    }
                }
                if (p->bias) {
                    acc += p->bias[o];
                }
                acc = mbqm(acc, p->mult[o], p->shift[o]) + p->out_offset;
                dst[o] = (int8_t)clamp32(acc, p->act_min, p->act_max);
            }
        }
    }
}
""",
    ),
    "dwconv": (
        "window",
        ("window", "fixed", "clamp"),
        """
/* reference_integer_ops::DepthwiseConvPerChannel, over the window's taps inside the image */
static void dwconv(const window_params *p, const int8_t *in, int8_t *out) {
    const int ih = p->ih, iw = p->iw, ic = p->ic, oc = p->oc, kh = p->kh, kw = p->kw, dh = p->dh, dw = p->dw;
    const int32_t offset = p->in_offset;
    int oy, ox, c, m, fy, fx;
    for (oy = 0; oy < p->oh; ++oy) {
        const int y0 = oy * p->sh - p->ph;
        const int fy0 = window_start(y0, dh);
        const int fy1 = window_end(y0, dh, kh, ih);
        for (ox = 0; ox < p->ow; ++ox) {
            const int x0 = ox * p->sw - p->pw;
            const int fx0 = window_start(x0, dw);
            const int fx1 = window_end(x0, dw, kw, iw);
            int8_t *dst = out + (oy * p->ow + ox) * oc;
            for (c = 0; c < ic; ++c) {
                for (m = 0; m < p->dm; ++m) {
                    const int o = m + c * p->dm;
                    int32_t acc = 0;
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *src = in + (y0 + dh * fy) * iw * ic + c;
                        const int8_t *tap = p->w + fy * kw * oc + o;
                        for (fx = fx0; fx < fx1; ++fx) {
                            acc += (int32_t)tap[fx * oc] * ((int32_t)src[(x0 + dw * fx) * ic] + offset);
                        }
                    }
                    if (p->bias) {
                        acc += p->bias[o];
                    }
                    acc = mbqm(acc, p->mult[o], p->shift[o]) + p->out_offset;
                    dst[o] = (int8_t)clamp32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}
""",
    ),
    "fc": (
        "fc",
        ("fixed", "clamp"),
        """
/* reference_integer_ops::FullyConnected(PerChannel) */
static void fc(const fc_params *p, const int8_t *in, int8_t *out) {
    int b, o, d;
    for (b = 0; b < p->rows; ++b) {
        const int8_t *row = in + b * p->depth;
        for (o = 0; o < p->units; ++o) {
            const int8_t *weights = p->w + o * p->depth;
            int32_t acc = 0;
            for (d = 0; d < p->depth; ++d) {
                acc += (int32_t)weights[d] * ((int32_t)row[d] + p->in_offset);
            }
            if (p->bias) {
                acc += p->bias[o];
            }
            acc = mbqm(acc, p->mult[o], p->shift[o]) + p->out_offset;
            out[b * p->units + o] = (int8_t)clamp32(acc, p->act_min, p->act_max);
        }
    }
}
""",
    ),
    "avgpool": (
        "pool",
        ("clamp",),
        """
/* reference_integer_ops::AveragePool: the window clamped to the image, rounded half away from zero */
static void avgpool(const pool_params *p, const int8_t *in, int8_t *out) {
    int oy, ox, c, y, x;
    for (oy = 0; oy < p->oh; ++oy) {
        const int y0 = oy * p->sh - p->ph;
        const int y_start = y0 < 0 ? 0 : y0;
        const int y_end = y0 + p->kh < p->ih ? y0 + p->kh : p->ih;
        for (ox = 0; ox < p->ow; ++ox) {
            const int x0 = ox * p->sw - p->pw;
            const int x_start = x0 < 0 ? 0 : x0;
            const int x_end = x0 + p->kw < p->iw ? x0 + p->kw : p->iw;
            const int32_t count = (y_end - y_start) * (x_end - x_start);
            for (c = 0; c < p->c; ++c) {
                int32_t acc = 0;
                for (y = y_start; y < y_end; ++y) {
                    for (x = x_start; x < x_end; ++x) {
                        acc += in[(y * p->iw + x) * p->c + c];
                    }
                }
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                out[(oy * p->ow + ox) * p->c + c] = (int8_t)clamp32(acc, p->act_min, p->act_max);
            }
        }
    }
}
""",
    ),
    "maxpool": (
        "pool",
        ("clamp",),
        """
/* reference_integer_ops::MaxPool */
static void maxpool(const pool_params *p, const int8_t *in, int8_t *out) {
    int oy, ox, c, y, x;
    for (oy = 0; oy < p->oh; ++oy) {
        const int y0 = oy * p->sh - p->ph;
        const int y_start = y0 < 0 ? 0 : y0;
        const int y_end = y0 + p->kh < p->ih ? y0 + p->kh : p->ih;
        for (ox = 0; ox < p->ow; ++ox) {
            const int x0 = ox * p->sw - p->pw;
            const int x_start = x0 < 0 ? 0 : x0;
            const int x_end = x0 + p->kw < p->iw ? x0 + p->kw : p->iw;
            for (c = 0; c < p->c; ++c) {
                int32_t best = -128;
                for (y = y_start; y < y_end; ++y) {
                    for (x = x_start; x < x_end; ++x) {
                        const int32_t v = in[(y * p->iw + x) * p->c + c];
                        best = v > best ? v : best;
                    }
                }
                out[(oy * p->ow + ox) * p->c + c] = (int8_t)clamp32(best, p->act_min, p->act_max);
            }
        }
    }
}
""",
    ),
    "softmax": (
        "softmax",
        ("one_over", "clamp"),
        """
/* reference_ops::Softmax for int8 in and out (scale 1/256, zero point -128): gemmlowp's fixed-point exp */
static void softmax(const softmax_params *p, const int8_t *in, int8_t *out) {
    int r, c;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *x = in + r * p->depth;
        int8_t *y = out + r * p->depth;
        int32_t max = -128, sum = 0, scale, headroom = 0;
        uint32_t bits;
        for (c = 0; c < p->depth; ++c) {
            max = x[c] > max ? x[c] : max;
        }
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max;
            if (diff >= p->diff_min) {
                sum += rdbpot(exp_negative(mbqm(diff, p->mult, (int)p->shift), 5), 12);
            }
        }
        for (bits = (uint32_t)sum; !(bits & 0x80000000u); bits <<= 1) {
            ++headroom; /* count leading zeros: sum > 0 (the largest input adds exp(0)) */
        }
        scale = one_over_one_plus((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max;
            int32_t value = -128;
            if (diff >= p->diff_min) {
                const int32_t e = exp_negative(mbqm(diff, p->mult, (int)p->shift), 5);
                value = clamp32(rdbpot(srdhm(scale, e), (12 - headroom) + 31 - 8) - 128, -128, 127);
            }
            y[c] = (int8_t)value;
        }
    }
}
""",
    ),
    "lut": (
        "lut",
        (),
        """
/* TANH and LOGISTIC (reference_integer_ops, gemmlowp's fixed point): a function of one int8 value, so its 256
   answers are computed at generation, the same arithmetic, and looked up */
static void lut_s8(const lut_params *p, const int8_t *in, int8_t *out) {
    int i;
    for (i = 0; i < p->n; ++i) {
        out[i] = p->table[(int)in[i] + 128];
    }
}
""",
    ),
    "relu": (
        "pointwise",
        ("fixed", "clamp"),
        """
/* tflite::ReluQuantized (TFLite Micro's activations.h) */
static void relu_s8(const pointwise_params *p, const int8_t *in, int8_t *out) {
    int i;
    for (i = 0; i < p->n; ++i) {
        const int32_t v = p->out_zp + mbqm((int32_t)in[i] - p->in_zp, p->mult, (int)p->shift);
        out[i] = (int8_t)clamp32(v, p->act_min, p->act_max);
    }
}
""",
    ),
    "relu6": (
        "pointwise",
        ("clamp",),
        """
/* TFLite Micro's Relu6Quantized: clamped in the input's quantization */
static void relu6_s8(const pointwise_params *p, const int8_t *in, int8_t *out) {
    int i;
    for (i = 0; i < p->n; ++i) {
        out[i] = (int8_t)clamp32(in[i], p->zero, p->six);
    }
}
""",
    ),
    "copy": (
        "pointwise",
        (),
        """
static void copy_bytes(const pointwise_params *p, const int8_t *in, int8_t *out) {
    int i;
    for (i = 0; i < p->n; ++i) {
        out[i] = in[i];
    }
}
""",
    ),
}

C_TYPES = {"s8": "int8_t", "u8": "uint8_t"}
for _src in C_TYPES:
    for _dst in C_TYPES:
        if _src == _dst == "u8":
            continue
        KERNELS[f"requant_{_src}_{_dst}"] = (
            "pointwise",
            ("fixed",),
            f"""
/* reference_ops::Requantize ({C_TYPES[_src]} -> {C_TYPES[_dst]}) */
static void requant_{_src}_{_dst}(const pointwise_params *p, const int8_t *in, int8_t *out) {{
    const {C_TYPES[_src]} *x = (const {C_TYPES[_src]} *)in;
    {C_TYPES[_dst]} *y = ({C_TYPES[_dst]} *)out;
    const int32_t low = {-128 if _dst == "s8" else 0}, high = {127 if _dst == "s8" else 255};
    int i;
    for (i = 0; i < p->n; ++i) {{
        int32_t v = mbqm((int32_t)x[i] - p->in_zp, p->mult, (int)p->shift) + p->out_zp;
        v = v < low ? low : (v > high ? high : v);
        y[i] = ({C_TYPES[_dst]})v;
    }}
}}
""",
        )

FUNCTIONS = {"lut": "lut_s8", "relu": "relu_s8", "relu6": "relu6_s8", "copy": "copy_bytes"}
STRUCT_FIELDS = {name: {f.strip() for _, names in fields for f in names.split(",")} for name, fields in STRUCTS.items()}


def function(kernel: str) -> str:
    """The C function a kernel is called by."""
    return FUNCTIONS.get(kernel, kernel)


def struct_of(kernel: str) -> str:
    return f"{KERNELS[kernel][0]}_params"


def kernel_text(kernels: list[str]) -> str:
    """The struct types, helpers and kernels ``kernels`` need, each once, in a fixed order."""
    helpers: list[str] = []

    def need(name: str) -> None:
        for dependency in HELPERS[name][0]:
            need(dependency)
        if name not in helpers:
            helpers.append(name)

    for kernel in kernels:
        for helper in KERNELS[kernel][1]:
            need(helper)
    structs = sorted({KERNELS[k][0] for k in kernels}, key=list(STRUCTS).index)
    ordered_helpers = sorted(helpers, key=list(HELPERS).index)
    ordered_kernels = sorted(set(kernels), key=list(KERNELS).index)
    parts = [_struct(s) for s in structs] + [HELPERS[h][1] for h in ordered_helpers]
    parts += [KERNELS[k][2] for k in ordered_kernels]
    return "".join(parts)
