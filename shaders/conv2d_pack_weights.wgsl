// conv2d_pack_weights: the uniform weight windows read by conv2d_forward
//
//   packed[(g·K + k)·WINDOW + ((c·KH + ky)·KW + kx)·16 + i] = w[co, ci, ky, kx]
//       with co = 16·g + i (the output channel), ci = k·cc + c (the input channel)
//   packed[(g·K + k)·WINDOW + WINDOW − 16 + i] = b[co] for k = 0 (bias), else 0
//   Transposed (mode bit 2, for backward-input): the roles swap and the taps flip,
//   packed[…((c·KH + ky)·KW + kx)·16 + i] = w[ci, co, KH−1−ky, KW−1−kx].
//   w: [Cout, Cin, KH, KW] (before the swap), b: [Cout]; channels past the
//   tensor (the last group's tail, the last chunk's tail) pack 0.
//
// Each window is 64 KiB, the largest uniform binding wgpu guarantees:
// WINDOW = 16384 values in f32, 8192 in f64; the host binds window (g, k) at
// byte offset (g·K + k)·65536.
// Thread mapping: one invocation per packed float; invocation
// gid.x + gid.y·num_workgroups.x·64 → (window, element).
// Bounds: invocations past `total` return; channels past Cout or Cin and
// taps past the chunk write 0, so every float of every window is defined.

alias real = f32;
const REAL_BYTES: u32 = 4u;
const WINDOW: u32 = 65536u / REAL_BYTES; // values per 64 KiB weight window

struct PackParams {
    cout: u32,    // output channels in the packed roles
    cin: u32,     // input channels in the packed roles
    kh: u32,
    kw: u32,
    chunks: u32,  // K: input-channel chunks per group
    cc: u32,      // input channels per chunk
    mode: u32,    // bit 1: pack the bias; bit 2: transposed and flipped
    total: u32,   // values to write: groups · K · WINDOW
}

@group(0) @binding(0) var<uniform> params: PackParams;
@group(0) @binding(1) var<storage, read> w: array<real>;
@group(0) @binding(2) var<storage, read> b: array<real>;
@group(0) @binding(3) var<storage, read_write> packed: array<real>;

@compute @workgroup_size(64)
fn conv2d_pack_weights(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= params.total) {
        return;
    }
    let window = idx / WINDOW;
    let e = idx % WINDOW;
    let g = window / params.chunks;
    let k = window % params.chunks;
    var v = real(0.0);
    if (e >= WINDOW - 16u) {
        let co = g * 16u + (e - (WINDOW - 16u));
        if ((params.mode & 1u) != 0u && k == 0u && co < params.cout) {
            v = b[co];
        }
    } else {
        let i = e % 16u;
        let taps = params.kh * params.kw;
        let tap = (e / 16u) % taps;
        let c = e / (16u * taps);
        let co = g * 16u + i;
        let ci = k * params.cc + c;
        if (c < params.cc && co < params.cout && ci < params.cin) {
            let ky = tap / params.kw;
            let kx = tap % params.kw;
            if ((params.mode & 2u) != 0u) {
                let flipped = (params.kh - 1u - ky) * params.kw + (params.kw - 1u - kx);
                v = w[(ci * params.cout + co) * taps + flipped];
            } else {
                v = w[(co * params.cin + ci) * taps + tap];
            }
        }
    }
    packed[idx] = v;
}
