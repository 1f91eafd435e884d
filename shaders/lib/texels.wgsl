// texels: reading tensors through texture copies, and aligning four
// elements that start inside a texel.
//
// Gpu::read_window copies a window of a tensor into an rgba32float 2-D
// array texture, four consecutive elements per texel: element i is
// component i % 4 of texel k = i / 4, at column k % TEX_ROW, row
// (k / TEX_ROW) % TEX_ROW of layer k / TEX_ROW². TEX_ROW_BITS, log2 of
// TEX_ROW, is a pipeline constant: the loader (src/shaders.rs, `resolve`)
// declares it with the host's default, `shaders::TEX_ROW_BITS` (4096-texel
// rows), and the host sets it when it compiles a kernel to the layout its
// copies use (`Gpu::texture_row_bits`; the gradient checks' small-limits
// pass lays copies out in 16-texel rows).
//
// In f64 the kernels' calls tex_at(t, i) and tex4_at(t, k) are rewritten to
// storage reads (`instantiate`): textures hold no f64.
//
// A shader uses this file with the line `// import texels` near its top.
// Thread mapping: none (functions only). Bounds: none; callers keep i and
// k inside the copy.

override TEX_ROW_MASK: u32 = (1u << TEX_ROW_BITS) - 1u;

// Element i of a texture copy.
fn tex_at(t: texture_2d_array<f32>, i: u32) -> real {
    let k = i >> 2u;
    return real(textureLoad(t, vec2<u32>(k & TEX_ROW_MASK, (k >> TEX_ROW_BITS) & TEX_ROW_MASK), k >> (2u * TEX_ROW_BITS), 0)[i & 3u]);
}

// Texel k of a texture copy: elements 4k .. 4k+3.
fn tex4_at(t: texture_2d_array<f32>, k: u32) -> vec4<real> {
    return vec4<real>(textureLoad(t, vec2<u32>(k & TEX_ROW_MASK, (k >> TEX_ROW_BITS) & TEX_ROW_MASK), k >> (2u * TEX_ROW_BITS), 0));
}

// Elements s .. s+3 of the eight in (a, b), s = 0 .. 3: four consecutive
// elements that start inside texel a.
fn shift4(a: vec4<real>, b: vec4<real>, s: u32) -> vec4<real> {
    let s1 = vec4<real>(a.yzw, b.x);
    let s2 = vec4<real>(a.zw, b.xy);
    let s3 = vec4<real>(a.w, b.xyz);
    return select(select(select(a, s1, s == 1u), s2, s == 2u), s3, s == 3u);
}
