//! How much each way of reading and writing memory costs on the adapter:
//! the measurements behind the kernels' choices of uniform windows, texture
//! copies and constant-index stores (docs/performance.md, "Storage loads are
//! lane loops"). Each kernel of `benches/access.wgsl` moves 2^24 floats
//! (64 MiB) through one path; `none` does the same arithmetic without memory
//! traffic. Prints a markdown table: best time of `POSTERGRAD_BENCH_REPS`
//! (5) runs and the rate over the 64 MiB.
//!
//!     cargo bench --bench access
//!
//! wgpu directly, not the library: these are paths the library avoids.

use std::time::Instant;

mod common;

/// Invocations (16 floats each).
const N: u32 = 1 << 20;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` runs benches without --bench
    }
    let reps = common::env("POSTERGRAD_BENCH_REPS", 5);
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&Default::default())).expect("no adapter");
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .expect("no device");
    println!("adapter: {}\n", adapter.get_info().name);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("access"),
        source: wgpu::ShaderSource::Wgsl(include_str!("access.wgsl").into()),
    });
    let buffer = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: N as u64 * 64,
            usage,
            mapped_at_creation: false,
        })
    };
    let (out, input) = (
        buffer(wgpu::BufferUsages::STORAGE),
        buffer(wgpu::BufferUsages::STORAGE),
    );
    let uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 65536,
        usage: wgpu::BufferUsages::UNIFORM,
        mapped_at_creation: false,
    });
    let texture = |usage| {
        device
            .create_texture(&wgpu::TextureDescriptor {
                label: None,
                size: wgpu::Extent3d {
                    width: 4096,
                    height: N / 1024,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage,
                view_formats: &[],
            })
            .create_view(&Default::default())
    };
    let (written, read) = (
        texture(wgpu::TextureUsages::STORAGE_BINDING),
        texture(wgpu::TextureUsages::TEXTURE_BINDING),
    );
    // (entry point, what it does, the bindings it uses)
    let rows: [(&str, &str, &[u32]); 10] = [
        ("none", "no memory traffic (baseline)", &[0]),
        ("store_scalar", "16 scalar storage stores", &[0]),
        ("store_vec4", "4 vec4 storage stores", &[1]),
        ("store_texture", "4 textureStore (rgba32float)", &[2]),
        ("load_scalar", "16 scalar storage loads", &[0, 3]),
        ("load_vec4", "4 vec4 storage loads", &[0, 4]),
        ("load_texture", "4 texel fetches (rgba32float)", &[0, 5]),
        (
            "load_uniform",
            "4 vec4 uniform loads (per-invocation index)",
            &[0, 6],
        ),
        (
            "load_channel_storage",
            "4 per-channel storage loads (per 16 floats)",
            &[0, 3],
        ),
        (
            "load_channel_uniform",
            "4 per-channel uniform loads (per 16 floats)",
            &[0, 6],
        ),
    ];
    println!("| kernel | what each invocation does | ms | GB/s over 64 MiB |\n|---|---|---|---|");
    for (kernel, what, bindings) in rows {
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel),
            layout: None,
            module: &module,
            entry_point: Some(kernel),
            compilation_options: Default::default(),
            cache: None,
        });
        let entries: Vec<_> = bindings
            .iter()
            .map(|&b| wgpu::BindGroupEntry {
                binding: b,
                resource: match b {
                    0 | 1 => out.as_entire_binding(),
                    2 => wgpu::BindingResource::TextureView(&written),
                    5 => wgpu::BindingResource::TextureView(&read),
                    6 => uniform.as_entire_binding(),
                    _ => input.as_entire_binding(),
                },
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut best = f64::MAX;
        for _ in 0..=reps {
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(65536 / 64, N / 65536, 1);
            }
            let t = Instant::now();
            queue.submit([encoder.finish()]);
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("poll");
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "| `{kernel}` | {what} | {:.2} | {:.2} |",
            best * 1e3,
            N as f64 * 64.0 / best / 1e9
        );
    }
}
