// nonfinite_count: counts[slot] += #{i : x[i] is NaN or ±Inf};  counts[0] += the same
//
// A value is non-finite when its exponent bits are all ones (IEEE 754):
//   (bits(x) & 0x7f800000) == 0x7f800000.
// The test looks at the bits because WGSL lets a compiler assume floats are
// finite, so `x != x` or `abs(x) > MAX` may be folded away; a bit test cannot.
// Slot 0 is the total over every tensor counted since the buffer was cleared:
// adam_step reads it and leaves every parameter untouched when it is not zero.
//
// Thread mapping: one invocation per texel of the texture copy, four
// elements: r = gid.x + gid.y · num_workgroups.x · 256 → copy elements
// 4r .. 4r + 3, of which those in [base, base + n) are the range's.
// Input through a texture: x is read from a texture copy (Gpu::read_window),
// one fetch per four elements; on lavapipe a storage load at a
// per-invocation index is a loop over the SIMD lanes through memory
// (docs/performance.md). Adam::step_guarded counts each gradient from the
// copy that adam_step then reads.
// Bounds: invocations with 4r ≥ base + n return; copy elements outside
// [base, base + n) are not counted.
// Windows: tensors larger than one binding are counted in element ranges;
// `base` is the range's first element in its copy (0 .. 3).
// f32 only: the bit test reads 32-bit floats (it guards f32 training).
// import texels

alias real = f32;

struct NonfiniteParams {
    n: u32,     // elements in this range
    base: u32,  // first element of the range in the copy
    slot: u32,  // which counter this tensor adds to (≥ 1)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: NonfiniteParams;
@group(0) @binding(1) var x: texture_2d_array<f32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;

@compute @workgroup_size(256)
fn nonfinite_count(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (4u * r >= params.base + params.n) {
        return;
    }
    let bits = bitcast<vec4<u32>>(tex4_at(x, r));
    let e = vec4<u32>(4u * r) + vec4<u32>(0u, 1u, 2u, 3u);
    let inside = (e >= vec4<u32>(params.base)) & (e < vec4<u32>(params.base + params.n));
    let bad = inside & ((bits & vec4<u32>(0x7f800000u)) == vec4<u32>(0x7f800000u));
    let found = dot(select(vec4<u32>(0u), vec4<u32>(1u), bad), vec4<u32>(1u));
    if (found != 0u) {
        atomicAdd(&counts[params.slot], found);
        atomicAdd(&counts[0], found);
    }
}
