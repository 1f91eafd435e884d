// access: microkernels behind benches/access.rs — how each way of reading and
// writing memory costs on the adapter (lavapipe's traps: docs/performance.md,
// "Storage loads are lane loops").
//
// Every kernel has invocation t = gid.x + gid.y · 65536 own 16 floats
// (four vec4): it computes or reads them and stores or sums them. The
// `none` kernel is the baseline: the same arithmetic, no memory traffic
// (a store that never happens keeps it from being optimised away).
// Thread mapping: t → elements 16t .. 16t + 15 (texels 4t .. 4t + 3);
// ld_ch / ld_ch_uni: channel (t / 4096) % 64 of a per-channel table.
// Bounds: the host dispatches exactly 2^20 invocations for 2^24 floats.
// Not a model kernel: bench-only, several entry points in one file.

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(2) var img: texture_storage_2d<rgba32float, write>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
@group(0) @binding(4) var<storage, read> inp4: array<vec4<f32>>;
@group(0) @binding(5) var tin: texture_2d<f32>;
@group(0) @binding(6) var<uniform> uin: array<vec4<f32>, 4096>;

fn val(t: u32, j: u32) -> vec4<f32> {
    let b = f32(t) * 0.5 + f32(j);
    return vec4<f32>(b, b + 1.0, b + 2.0, b + 3.0);
}

fn index(g: vec3<u32>) -> u32 {
    return g.x + g.y * 65536u;
}

@compute @workgroup_size(64)
fn none(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    var s = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q++) {
        s += val(t, q);
    }
    if (s.x == 1.5) {
        out[t] = s.y;
    }
}

@compute @workgroup_size(64)
fn store_scalar(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    for (var q = 0u; q < 4u; q++) {
        let v = val(t, q);
        out[16u * t + 4u * q] = v.x;
        out[16u * t + 4u * q + 1u] = v.y;
        out[16u * t + 4u * q + 2u] = v.z;
        out[16u * t + 4u * q + 3u] = v.w;
    }
}

@compute @workgroup_size(64)
fn store_vec4(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    for (var q = 0u; q < 4u; q++) {
        out4[4u * t + q] = val(t, q);
    }
}

@compute @workgroup_size(64)
fn store_texture(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    for (var q = 0u; q < 4u; q++) {
        let k = 4u * t + q;
        textureStore(img, vec2<u32>(k & 4095u, k >> 12u), val(t, q));
    }
}

@compute @workgroup_size(64)
fn load_scalar(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    var s = 0.0;
    for (var j = 0u; j < 16u; j++) {
        s += inp[16u * t + j];
    }
    if (s == 1.5) {
        out[t] = s;
    }
}

@compute @workgroup_size(64)
fn load_vec4(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    var s = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        s += inp4[4u * t + j];
    }
    if (s.x == 1.5) {
        out[t] = s.y;
    }
}

@compute @workgroup_size(64)
fn load_texture(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    var s = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let k = 4u * t + j;
        s += textureLoad(tin, vec2<u32>(k & 4095u, k >> 12u), 0);
    }
    if (s.x == 1.5) {
        out[t] = s.y;
    }
}

@compute @workgroup_size(64)
fn load_uniform(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    var s = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        s += uin[(4u * t + j) & 4095u];
    }
    if (s.x == 1.5) {
        out[t] = s.y;
    }
}

@compute @workgroup_size(64)
fn load_channel_storage(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    let ch = (t / 4096u) % 64u;
    let s = inp[ch] + inp[64u + ch] + inp[128u + ch] + inp[192u + ch];
    if (s == 1.5) {
        out[t] = s;
    }
}

@compute @workgroup_size(64)
fn load_channel_uniform(@builtin(global_invocation_id) g: vec3<u32>) {
    let t = index(g);
    let ch = (t / 4096u) % 64u;
    let s = uin[ch >> 2u][ch & 3u] + uin[16u + (ch >> 2u)][ch & 3u] + uin[32u + (ch >> 2u)][ch & 3u] + uin[48u + (ch >> 2u)][ch & 3u];
    if (s == 1.5) {
        out[t] = s;
    }
}
