// conv2d_backward_input: dx += ∂L/∂x
//
//   forward:  y[n, co, oy, ox] = b[co] + Σ_{ci, ky, kx} x[n, ci, oy·s + ky − pt, ox·s + kx − pl] · w[co, ci, ky, kx]
//   backward: dx[n, ci, iy, ix] += Σ_{co, ky, kx} dy[n, co, oy, ox] · w[co, ci, ky, kx]
//             over the (oy, ox) with oy·s = iy + pt − ky and ox·s = ix + pl − kx inside the output.
//
// Thread mapping (register-blocked, no workgroup memory): workgroup
// (wg.x + wg.z·num_workgroups.x, wg.y) covers 512 input pixels × 8 input
// channels; invocation l owns pixels p = tile·512 + l + 64·j (j = 0..7) for
// channels 8·wg.y .. +8. Each (co, ky, kx) loads 8 weights and up to 8 output
// gradients and does 64 multiply-adds.
// Bounds: pixels ≥ N·H·W and channels ≥ Cin are clamped for loads and not
// stored; taps whose output position is fractional (stride) or outside read 0.
// Windows: dy_base / dx_base (in x_base / y_base's slots: y_base = dy's, x_base
// = dx's) are the windows' first elements. Gradients accumulate (+=).

alias real = f32;

struct ConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    oh: u32, ow: u32, pad_top: u32, pad_left: u32,
    x_base: u32, y_base: u32, chunk: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ConvParams;
@group(0) @binding(1) var<storage, read> dy: array<real>;
@group(0) @binding(2) var<storage, read> w: array<real>;
@group(0) @binding(3) var<storage, read_write> dx: array<real>;

@compute @workgroup_size(64)
fn conv2d_backward_input(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) l: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let P = params.n * params.h * params.w;
    let tile = wg.x + wg.z * nwg.x;
    let ci0 = wg.y * 8u;
    let S = i32(params.stride);
    let OH = i32(params.oh);
    let OW = i32(params.ow);
    var dyoff: array<u32, 8>;
    var ty0: array<i32, 8>;
    var tx0: array<i32, 8>;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let p = min(tile * 512u + l + 64u * j, P - 1u);
        let ix = p % params.w;
        let t = p / params.w;
        let iy = t % params.h;
        let n = t / params.h;
        dyoff[j] = params.y_base + n * params.cout * params.oh * params.ow;
        ty0[j] = i32(iy + params.pad_top);
        tx0[j] = i32(ix + params.pad_left);
    }
    var ci: array<u32, 8>;
    for (var i = 0u; i < 8u; i = i + 1u) {
        ci[i] = min(ci0 + i, params.cin - 1u);
    }
    var acc: array<array<real, 8>, 8>; // [pixel j][channel i]
    for (var co = 0u; co < params.cout; co = co + 1u) {
        for (var ky = 0u; ky < params.kh; ky = ky + 1u) {
            for (var kx = 0u; kx < params.kw; kx = kx + 1u) {
                var wv: array<real, 8>;
                for (var i = 0u; i < 8u; i = i + 1u) {
                    wv[i] = w[((co * params.cin + ci[i]) * params.kh + ky) * params.kw + kx];
                }
                for (var j = 0u; j < 8u; j = j + 1u) {
                    let ty = ty0[j] - i32(ky);
                    let tx = tx0[j] - i32(kx);
                    let oy = ty / S;
                    let ox = tx / S;
                    let hit = ty >= 0 && tx >= 0 && ty % S == 0 && tx % S == 0 && oy < OH && ox < OW;
                    let idx = dyoff[j] + (co * params.oh + u32(clamp(oy, 0, OH - 1))) * params.ow
                        + u32(clamp(ox, 0, OW - 1));
                    let g = select(real(0.0), dy[idx], hit);
                    for (var i = 0u; i < 8u; i = i + 1u) {
                        acc[j][i] = acc[j][i] + g * wv[i];
                    }
                }
            }
        }
    }
    let plane = params.h * params.w;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let p = tile * 512u + l + 64u * j;
        if (p >= P) {
            continue;
        }
        let n = p / plane;
        let pix = p % plane;
        for (var i = 0u; i < 8u; i = i + 1u) {
            let c = ci0 + i;
            if (c < params.cin) {
                let idx = params.x_base + (n * params.cin + c) * plane + pix;
                dx[idx] = dx[idx] + acc[j][i];
            }
        }
    }
}
