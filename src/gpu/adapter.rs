//! Choosing the adapter and opening the device.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use super::dispatch::{UniformArena, UNIFORM_ARENA_BYTES};
use super::pool::Pool;
use super::{Gpu, GpuStats};
use crate::error::{Error, Result};
use crate::shaders::Precision;

/// What the chosen adapter is, for reports.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// True for software adapters (lavapipe, llvmpipe, WARP).
    pub is_cpu: bool,
    pub timestamps: bool,
    pub shader_f64: bool,
    /// Subgroup operations in compute shaders, with subgroups of at least 8
    /// invocations (`conv2d_forward_3x3` shares weights across 8 lanes).
    pub subgroups: bool,
    /// The largest subgroup size the adapter may use (0 without subgroups):
    /// `conv2d_backward_weight_3x3_subgroup` is dispatched for it.
    pub subgroup_max_size: u32,
    pub max_binding_bytes: u64,
    pub max_buffer_bytes: u64,
    pub max_workgroups_per_dim: u32,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}{})",
            self.name,
            self.backend,
            self.device_type,
            if self.driver.is_empty() {
                String::new()
            } else {
                format!(", driver {}", self.driver)
            }
        )
    }
}

fn rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    }
}

impl Gpu {
    /// Opens the best adapter. `WGPU_BACKEND` (`vulkan`, `gl`, `metal`, `dx12`)
    /// restricts the backends, `WGPU_ADAPTER_NAME` keeps only adapters whose
    /// name contains it (case-insensitive). Among the rest: discrete GPU first,
    /// then integrated, virtual, CPU; Vulkan before GL on a tie.
    pub fn new() -> Result<Gpu> {
        Self::with_precision(Precision::F32)
    }

    /// Like [`Gpu::new`], with every kernel instantiated in `precision` and
    /// every tensor stored in it. f64 needs the adapter's `SHADER_F64`
    /// (lavapipe has it; many desktop GPUs do): without it, a
    /// [`Error::Precision`] says so.
    pub fn with_precision(precision: Precision) -> Result<Gpu> {
        let gpu = pollster::block_on(Self::new_async(precision))?;
        if precision == Precision::F64 && !gpu.summary.shader_f64 {
            return Err(Error::Precision {
                what: format!("adapter '{}'", gpu.summary.name),
                message: "has no SHADER_F64 feature, so kernels cannot run in f64 \
                          (Mesa's Vulkan lavapipe and most desktop Vulkan drivers have it; \
                          WGPU_BACKEND=vulkan selects Vulkan)"
                    .into(),
            });
        }
        Ok(gpu)
    }

    pub(super) async fn new_async(precision: Precision) -> Result<Gpu> {
        // 1. The adapter: a physical device (or a software one) on a backend.
        let adapter = pick_adapter().await?;
        let info = adapter.get_info();

        // 2. The device: ask for the adapter's own limits (wgpu's defaults are
        //    far lower: 128 MiB bindings, 256 invocations) and the optional
        //    features we use when they exist.
        let limits = adapter.limits();
        let mut wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F64;
        if info.subgroup_min_size >= 8 {
            wanted |= wgpu::Features::SUBGROUP;
        }
        let features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("postergrad"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: Default::default(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: Default::default(),
            })
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: info.name.clone(),
                message: e.to_string(),
            })?;

        // 3. Errors: wgpu reports validation errors through a callback (the
        //    default panics). Keep them and return them at the next sync point.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            lost.lock()
                .unwrap()
                .push(format!("device lost ({reason:?}): {msg}"));
        });

        let summary = summarize(&info, features, &limits);

        // 4. One uniform buffer that holds every kernel's parameters for one
        //    submission, each at an aligned offset.
        let uniforms = UniformArena {
            buffer: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("uniform arena"),
                size: UNIFORM_ARENA_BYTES,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            staged: Vec::new(),
            align: limits.min_uniform_buffer_offset_alignment.max(16) as usize,
        };

        Ok(Gpu {
            device,
            queue,
            summary,
            limits,
            pipelines: RefCell::new(HashMap::new()),
            overrides: RefCell::new(HashMap::new()),
            pool: Rc::new(RefCell::new(Pool::default())),
            staging: RefCell::new(HashMap::new()),
            encoder: RefCell::new(None),
            uniforms: RefCell::new(uniforms),
            profiling: RefCell::new(None),
            stats: Cell::new(GpuStats {
                buffers_created: 1,
                ..Default::default()
            }),
            errors,
            precision,
            tuning: Cell::new(Default::default()),
            pass: Cell::new(None),
        })
    }
}

/// The best adapter: `WGPU_BACKEND` restricts the backends and
/// `WGPU_ADAPTER_NAME` the names; then discrete GPU, integrated, virtual,
/// CPU, and Vulkan/Metal/DX12 before GL on a tie.
async fn pick_adapter() -> Result<wgpu::Adapter> {
    // 1. The instances: which backends to look at (from the environment).
    //    Vulkan, Metal and DX12 first; GL only where they give no GPU
    //    (none, or only a CPU adapter), since opening GL is not free: on
    //    an H100 VM NVIDIA's EGL fails ("Parent device is lost") and
    //    hung processes that opened devices from several threads at once.
    let backends = wgpu::InstanceDescriptor::new_without_display_handle_from_env().backends;
    let instance = |only: wgpu::Backends| {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = only;
        wgpu::Instance::new(desc)
    };

    // 2. The adapter: a physical device (or a software one) on a backend.
    let name_filter = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|s| !s.is_empty());
    let named = |mut adapters: Vec<wgpu::Adapter>| {
        if let Some(f) = &name_filter {
            let f = f.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&f));
        }
        adapters
    };
    let primary = backends & wgpu::Backends::PRIMARY;
    let mut adapters = if primary.is_empty() {
        vec![]
    } else {
        named(instance(primary).enumerate_adapters(primary).await)
    };
    let secondary = backends & wgpu::Backends::SECONDARY;
    let gpu_found = adapters
        .iter()
        .any(|a| a.get_info().device_type != wgpu::DeviceType::Cpu);
    if !gpu_found && !secondary.is_empty() {
        adapters.extend(named(
            instance(secondary).enumerate_adapters(secondary).await,
        ));
    }
    adapters.sort_by_key(|a| {
        let i = a.get_info();
        let backend = match i.backend {
            wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 1,
            _ => 0,
        };
        std::cmp::Reverse((rank(i.device_type), backend))
    });
    let Some(adapter) = adapters.into_iter().next() else {
        return Err(Error::NoAdapter {
            backends: format!("{backends:?}"),
            filter: name_filter
                .map(|f| format!(", WGPU_ADAPTER_NAME={f}"))
                .unwrap_or_default(),
        });
    };
    Ok(adapter)
}

/// What the chosen adapter is and can do, for reports and kernel picks.
fn summarize(
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
    limits: &wgpu::Limits,
) -> AdapterSummary {
    let name_lc = info.name.to_lowercase();
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
        is_cpu: info.device_type == wgpu::DeviceType::Cpu
            || name_lc.contains("llvmpipe")
            || name_lc.contains("lavapipe"),
        timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        shader_f64: features.contains(wgpu::Features::SHADER_F64),
        subgroups: features.contains(wgpu::Features::SUBGROUP),
        subgroup_max_size: if features.contains(wgpu::Features::SUBGROUP) {
            info.subgroup_max_size
        } else {
            0
        },
        max_binding_bytes: limits.max_storage_buffer_binding_size,
        max_buffer_bytes: limits.max_buffer_size,
        max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
    }
}
