// f64_math: exp and log for f64, from + − × ÷ and floor alone.
//
// Why: WGSL's exp and log on f64 compile to SPIR-V GLSL.std.450 Exp/Log,
// which are defined for 16- and 32-bit floats only; Vulkan drivers
// (lavapipe among them) silently return garbage for f64 (GUIDE §3). When a
// shader is instantiated in f64 (src/shaders.rs, `instantiate`), its calls
// exp(…) and log(…) are renamed exp_f64(…) and log_f64(…) and this file is
// appended. Only + − × ÷, comparisons and floor are used: those are exact
// (correctly rounded) in f64 on every Vulkan driver.
//
// exp(x) = 2^k · e^r,  k = round(x / ln 2),  r = x − k·ln 2 (|r| ≤ ln2/2 ≈ 0.347)
//   ln 2 is split into a high part with 21 trailing zero bits (k·LN2_HI is
//   exact for |k| < 2^21) and the low remainder (Cody & Waite), so r carries
//   no cancellation error; e^r is its Taylor series to r^15 (the next term is
//   below 0.347^16/16! ≈ 2e-21 of the result); 2^k is built by squaring
//   (exact: every factor is a power of two) and applied in two halves so that
//   2^k itself never overflows where the product does not.
// log(x) = e·ln 2 + 2·atanh(s),  x = m·2^e,  m ∈ [1/√2, √2),  s = (m − 1)/(m + 1)
//   e and m come from exact scalings by 2^±512, 2^±256, …, 2^±1 (subnormals
//   are first scaled by 2^54); |s| ≤ 0.1716, and 2·atanh(s) = 2·Σ s^(2j+1)/(2j+1)
//   to s^23 (the next term is below 0.1716^25/25 ≈ 3e-21 of the result).
// Accuracy: a few units in the last place; the test in tests/shaders.rs
// compares both with Rust's f64::exp / f64::ln over [−708, 709] and
// [1e-300, 1e300] (lavapipe: 2.2e-16 for both). A driver that re-associates
// the reduction rounds k·ln 2 once (NVIDIA's: exp off by 2.4e-14 at 708),
// so the test allows exp 1e-15 + |x|·2^-53 (docs/gradcheck.md).
// Special values: exp overflows to +inf above 709.78 and underflows to 0
// (through subnormals) below −745; log(0) = −inf, log(x < 0) = NaN.
// Thread mapping: none (functions only). Bounds: none.

const LN2_HI: f64 = 0.6931471803691238;      // ln 2 rounded to 32 significant bits
const LN2_LO: f64 = 1.9082149292705877e-10;  // ln 2 − LN2_HI
const INV_LN2: f64 = 1.4426950408889634;
const SQRT2: f64 = 1.4142135623730951;

// 2^k for an integer k in [−1100, 1100], exactly (0 or inf past the range of f64).
fn exp2_int_f64(k: i32) -> f64 {
    var base = select(f64(2.0), f64(0.5), k < 0);
    var n = abs(k);
    var result = f64(1.0);
    for (var bit = 0; bit < 11; bit = bit + 1) {
        if ((n & 1) != 0) {
            result = result * base;
        }
        base = base * base;
        n = n >> 1u;
    }
    return result;
}

fn exp_f64(x: f64) -> f64 {
    if (x != x) {
        return x; // NaN
    }
    // Clamp far outside the range: the result is already 0 or inf there,
    // and k stays small enough for i32 and for exp2_int_f64.
    let xc = clamp(x, f64(-1000.0), f64(1000.0));
    let kf = floor(xc * INV_LN2 + f64(0.5));
    let r = (xc - kf * LN2_HI) - kf * LN2_LO;
    // Taylor series of e^r to r^15, by Horner.
    var p = f64(1.0 / 1307674368000.0); // 1/15!
    p = p * r + f64(1.0 / 87178291200.0); // 1/14!
    p = p * r + f64(1.0 / 6227020800.0);
    p = p * r + f64(1.0 / 479001600.0);
    p = p * r + f64(1.0 / 39916800.0);
    p = p * r + f64(1.0 / 3628800.0);
    p = p * r + f64(1.0 / 362880.0);
    p = p * r + f64(1.0 / 40320.0);
    p = p * r + f64(1.0 / 5040.0);
    p = p * r + f64(1.0 / 720.0);
    p = p * r + f64(1.0 / 120.0);
    p = p * r + f64(1.0 / 24.0);
    p = p * r + f64(1.0 / 6.0);
    p = p * r + f64(0.5);
    p = p * r + f64(1.0);
    p = p * r + f64(1.0);
    let k = i32(kf);
    let half = k / 2;
    return p * exp2_int_f64(half) * exp2_int_f64(k - half);
}

fn log_f64(x: f64) -> f64 {
    if (x != x) {
        return x; // NaN
    }
    let zero = x - x; // 0, but not a constant: the divisions below happen at run time
    if (x < f64(0.0)) {
        return zero / zero; // NaN
    }
    if (x == f64(0.0)) {
        return f64(-1.0) / zero; // −inf
    }
    if (x > f64(1.7976931348623157e308)) {
        return x; // +inf
    }
    var m = x;
    var e = 0;
    if (m < f64(2.2250738585072014e-308)) {
        m = m * f64(18014398509481984.0); // subnormal: × 2^54
        e = -54;
    }
    // Bring m into [1, 2) by exact power-of-two scalings, 2^512 down to 2^1
    // (binary search for the exponent: at most 1023 either way).
    var b = 512;
    for (var i = 0; i < 10; i = i + 1) {
        if (m >= exp2_int_f64(b)) {
            m = m * exp2_int_f64(-b);
            e = e + b;
        }
        if (m < exp2_int_f64(1 - b)) {
            m = m * exp2_int_f64(b);
            e = e - b;
        }
        b = b / 2;
    }
    // Now m ∈ [1, 2); centre it on 1: m ∈ [1/√2, √2).
    if (m >= SQRT2) {
        m = m * f64(0.5);
        e = e + 1;
    }
    let s = (m - f64(1.0)) / (m + f64(1.0));
    let s2 = s * s;
    // 2·atanh(s) = 2s·(1 + s²/3 + s⁴/5 + … + s²²/23), by Horner in s².
    var q = f64(1.0 / 23.0);
    q = q * s2 + f64(1.0 / 21.0);
    q = q * s2 + f64(1.0 / 19.0);
    q = q * s2 + f64(1.0 / 17.0);
    q = q * s2 + f64(1.0 / 15.0);
    q = q * s2 + f64(1.0 / 13.0);
    q = q * s2 + f64(1.0 / 11.0);
    q = q * s2 + f64(1.0 / 9.0);
    q = q * s2 + f64(1.0 / 7.0);
    q = q * s2 + f64(1.0 / 5.0);
    q = q * s2 + f64(1.0 / 3.0);
    let ef = f64(e);
    // The small terms first, then the large e·LN2_HI (exact) last.
    return ef * LN2_HI + (ef * LN2_LO + f64(2.0) * s * (f64(1.0) + s2 * q));
}
