// nonfinite_count: counts[slot] += #{i : x[i] is NaN or ±Inf};  counts[0] += the same
//
// A value is non-finite when its exponent bits are all ones (IEEE 754):
//   (bits(x) & 0x7f800000) == 0x7f800000.
// The test looks at the bits because WGSL lets a compiler assume floats are
// finite, so `x != x` or `abs(x) > MAX` may be folded away; a bit test cannot.
// Slot 0 is the total over every tensor counted since the buffer was cleared:
// adam_step reads it and leaves every parameter untouched when it is not zero.
//
// Thread mapping: one invocation per element; the 1-D index is folded into
// (x, y) workgroups when it would pass 65,535 workgroups:
//   i = gid.x + gid.y · num_workgroups.x · 256.
// Bounds: invocations with i ≥ n return.
// Windows: tensors larger than one binding are processed in element ranges; `base`
// is the range's first element in the bound window.
// f32 only: the bit test reads 32-bit floats (it guards f32 training).

alias real = f32;

struct NonfiniteParams {
    n: u32,     // elements in this range
    base: u32,  // first element of the range in the bound window
    slot: u32,  // which counter this tensor adds to (≥ 1)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: NonfiniteParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;

@compute @workgroup_size(256)
fn nonfinite_count(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let bits = bitcast<u32>(x[params.base + i]);
    if ((bits & 0x7f800000u) == 0x7f800000u) {
        atomicAdd(&counts[params.slot], 1u);
        atomicAdd(&counts[0], 1u);
    }
}
