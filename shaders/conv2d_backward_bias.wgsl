// conv2d_backward_bias: partial[c, co] = Σ_{pixels of chunk c} dy[n, co, pixel]   (then reduce_partials: db += Σ_c partial)
//
//   forward:  y[n, co, oy, ox] = b[co] + …   so   db[co] = Σ_{n, oy, ox} dy[n, co, oy, ox]
//
// Thread mapping: invocation t (t = gid.x + gid.y·num_workgroups.x·64) sums
// channel t % Cout over the pixels of chunk t / Cout (chunks of params.chunk
// pixels out of N·OH·OW), split so that millions of pixels keep many
// invocations busy.
// Bounds: invocations past the last chunk return.
// Windows: y_base is the first element of the dy window.

alias real = f32;

struct ConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    oh: u32, ow: u32, pad_top: u32, pad_left: u32,
    x_base: u32, y_base: u32, chunk: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ConvParams;
@group(0) @binding(1) var<storage, read> dy: array<real>;
@group(0) @binding(2) var<storage, read_write> partial: array<real>;

@compute @workgroup_size(64)
fn conv2d_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 64u;
    let plane = params.oh * params.ow;
    let P = params.n * plane;
    let chunks = (P + params.chunk - 1u) / params.chunk;
    let co = t % params.cout;
    let c = t / params.cout;
    if (c >= chunks) {
        return;
    }
    var acc = real(0.0);
    let p_end = min((c + 1u) * params.chunk, P);
    for (var p = c * params.chunk; p < p_end; p = p + 1u) {
        acc = acc + dy[params.y_base + ((p / plane) * params.cout + co) * plane + p % plane];
    }
    partial[c * params.cout + co] = acc;
}
