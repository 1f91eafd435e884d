//! The one module that touches wgpu descriptors.
//!
//! Everything an op needs from the GPU goes through [`Gpu`]:
//! - **adapter and device**: [`Gpu::new`] picks the best adapter (discrete >
//!   integrated > virtual > CPU), honouring `WGPU_BACKEND` and
//!   `WGPU_ADAPTER_NAME`, and opens a device with the adapter's own limits;
//! - **pipelines**: [`Gpu::dispatch`] compiles each `shaders/*.wgsl` entry point
//!   once per process and caches it;
//! - **buffers**: tensors take their storage from a pool keyed by byte size, so
//!   a training step that repeats the previous step's shapes allocates nothing;
//! - **commands**: kernels are recorded into one command encoder and submitted
//!   together only when the caller reads something back ([`Gpu::read`]) or
//!   calls [`Gpu::flush`]. Kernel parameters (uniforms) go into one staging
//!   arena that is written to the GPU just before that submission.
//!
//! Like wgpu's `hello_compute` example, each step is commented as a short lesson.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::shaders::{self, Precision};
use crate::tensor::Tensor;

/// Host element types a tensor can be written from and read into: f32 and
/// f64. Data of the device's own precision moves without a conversion pass
/// (a training batch is uploaded as it is); the other type is converted
/// through f64, which holds every f32 exactly.
pub trait Real: bytemuck::Pod {
    /// The device precision this type matches.
    const PRECISION: Precision;
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
}

impl Real for f32 {
    const PRECISION: Precision = Precision::F32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

impl Real for f64 {
    const PRECISION: Precision = Precision::F64;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(x: f64) -> Self {
        x
    }
}

/// One compute kernel, named once: `shaders/<name>.wgsl` holds the entry
/// point `<name>`, which is also the pipeline label, the bench id and the doc
/// heading (`dense_backward_weight`, ...).
pub type Kernel = &'static str;

/// Values of a kernel's pipeline-overridable constants (`override NAME: bool
/// = false;` in its WGSL), fixed when its pipeline is compiled
/// ([`Gpu::dispatch_specialized`]; each set of values is its own cached
/// pipeline). The shader compiler then drops the branches they decide. That
/// matters on lavapipe: a branch on a uniform value is not skipped — both
/// sides run under the SIMD lane mask, and a masked storage access is still
/// a loop over the lanes — so a mode that changes which memory a kernel
/// touches (add into y, or only write it) is a constant, not a uniform
/// field (docs/performance.md, "Modes as pipeline constants").
pub type Constants = &'static [(&'static str, f64)];

/// A compiled pipeline's key: the kernel and its [`Constants`] (as bits).
type PipelineKey = (Kernel, Vec<(&'static str, u64)>);

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

/// Counters for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// GPU buffers created since start (pool misses, staging, uniforms).
    pub buffers_created: u64,
    /// Command submissions since start.
    pub submissions: u64,
    /// Kernel dispatches since start.
    pub dispatches: u64,
    /// Texture copies recorded since start ([`Gpu::read_window`]).
    pub texture_copies: u64,
    /// Bytes those copies moved.
    pub texture_copy_bytes: u64,
}

/// One binding of a kernel: a tensor's whole buffer, an aligned window of
/// it, or a [`TexCopy`] (a texture copy of a window).
#[derive(Clone, Copy)]
pub struct Bind<'t> {
    source: Source<'t>,
    /// Bytes the binding covers (what a streaming kernel moves through it).
    size: u64,
}

#[derive(Clone, Copy)]
enum Source<'t> {
    Buffer { tensor: &'t Tensor, offset: u64 },
    Texture(&'t TexCopy),
}

impl<'t> Bind<'t> {
    /// The whole tensor.
    pub fn whole(tensor: &'t Tensor) -> Bind<'t> {
        Bind {
            source: Source::Buffer { tensor, offset: 0 },
            size: tensor.bytes(),
        }
    }

    /// `len` elements of `tensor` from element `start`; the caller keeps
    /// `start` aligned for the binding's kind (conv2d binds 64 KiB windows).
    pub fn range(tensor: &'t Tensor, start: usize, len: usize) -> Bind<'t> {
        let e = tensor.real_bytes() as u64;
        Bind {
            source: Source::Buffer {
                tensor,
                offset: start as u64 * e,
            },
            size: len as u64 * e,
        }
    }

    /// A texture copy, bound as `texture_2d_array<f32>`.
    fn texture(copy: &'t TexCopy) -> Bind<'t> {
        Bind {
            source: Source::Texture(copy),
            size: copy.len as u64 * 4,
        }
    }
}

/// Texels per row of a [`TexCopy`] and rows per array layer. A texel holds
/// four consecutive elements (rgba32float): the shaders' `tex_at` reads
/// element i as component i % 4 of texel k = i / 4, at (k % 4096,
/// (k / 4096) % 4096) of layer k / 4096². A row of 4096 texels is 64 KiB, a
/// multiple of the 256-byte row alignment of buffer-to-texture copies, so
/// any window copies as whole rows plus one partial row.
const TEX_ROW: usize = 4096;
const TEX_LAYER: usize = TEX_ROW * TEX_ROW;

/// A read-only copy of `len` f32 elements of a tensor in an rgba32float 2-D
/// array texture, four elements per texel, for kernels that read their
/// inputs through `textureLoad` (on lavapipe a texel fetch is a gather,
/// about 3× cheaper than a storage load, and one fetch brings four
/// elements; docs/performance.md). The copy starts at the window's first
/// element rounded down to a multiple of four (texel copies move whole
/// texels): `base` elements before the window. Made by [`Gpu::read_window`];
/// the texture goes back to the pool when dropped.
pub struct TexCopy {
    texture: Option<wgpu::Texture>,
    view: wgpu::TextureView,
    key: (u32, u32),
    len: usize,
    base: u32,
    pool: Rc<RefCell<Pool>>,
}

/// A window that a kernel only reads, through `tex_at` (its binding
/// declared `texture_2d_array<f32>`): on f32 devices a [`TexCopy`] of the
/// window; on f64 devices, whose textures hold no f64, the buffer window
/// itself, which the f64 instantiation of the shader reads as a storage
/// array (`shaders::instantiate`).
pub enum ReadWindow<'t> {
    Texture(TexCopy),
    Buffer(Bind<'t>, u32),
}

impl ReadWindow<'_> {
    /// The binding to pass to [`Gpu::dispatch_bound`].
    pub fn bind(&self) -> Bind<'_> {
        match self {
            ReadWindow::Texture(copy) => Bind::texture(copy),
            ReadWindow::Buffer(bind, _) => *bind,
        }
    }

    /// The window's first element counted from the binding (the kernels'
    /// `x_base`): 0 to 3 for a texture copy, which starts at the last
    /// multiple of four elements at or before the window.
    pub fn base(&self) -> u32 {
        match self {
            ReadWindow::Texture(copy) => copy.base,
            ReadWindow::Buffer(_, base) => *base,
        }
    }
}

impl Drop for TexCopy {
    fn drop(&mut self) {
        if let Some(t) = self.texture.take() {
            self.pool
                .borrow_mut()
                .textures
                .entry(self.key)
                .or_default()
                .push(t);
        }
    }
}

/// Free buffers by byte size, shared by the [`Gpu`] and every live tensor.
#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Texture copies by (rows, layers).
    textures: HashMap<(u32, u32), Vec<wgpu::Texture>>,
}

/// A storage buffer on loan from the pool; it goes back when dropped.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    size: u64,
    pool: Rc<RefCell<Pool>>,
}

impl PooledBuffer {
    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
    /// Size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.pool
                .borrow_mut()
                .free
                .entry(self.size)
                .or_default()
                .push(b);
        }
    }
}

/// Kernel parameters recorded since the last submission, 256-byte aligned.
struct UniformArena {
    buffer: wgpu::Buffer,
    staged: Vec<u8>,
    align: usize,
}

const UNIFORM_ARENA_BYTES: u64 = 1 << 18;

struct CachedPipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// How the profiler timed the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// GPU timestamp queries around every dispatch (TIMESTAMP_QUERY).
    Timestamps,
    /// No timestamp queries on this adapter: every dispatch is submitted
    /// alone and timed by the wall clock from submit to completion (which
    /// includes the submission's fixed cost).
    WallClock,
}

/// One timed dispatch.
#[derive(Clone, Debug)]
pub struct DispatchTime {
    pub kernel: Kernel,
    pub seconds: f64,
    /// Bytes of every buffer window the dispatch bound (its inputs and
    /// outputs): what a streaming kernel reads or writes once.
    pub bytes: u64,
}

/// Kernel times recorded between [`Gpu::profile_begin`] and
/// [`Gpu::profile_end`], one entry per dispatch in recording order.
#[derive(Clone, Debug)]
pub struct Profile {
    pub timer: Timer,
    pub dispatches: Vec<DispatchTime>,
}

/// Dispatches one profiling session can time with timestamp queries (two
/// queries each; wgpu allows 4,096 queries per set).
const PROFILE_CAPACITY: u32 = 2048;

struct Profiling {
    timer: Timer,
    queries: Option<wgpu::QuerySet>,
    names: Vec<Kernel>,
    bytes: Vec<u64>,
    wall: Vec<f64>,
}

/// The GPU context: device, queue, pipeline cache, buffer pool, pending commands.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    limits: wgpu::Limits,
    pipelines: RefCell<HashMap<PipelineKey, Rc<CachedPipeline>>>,
    overrides: RefCell<HashMap<String, String>>,
    pool: Rc<RefCell<Pool>>,
    staging: RefCell<HashMap<u64, Vec<wgpu::Buffer>>>,
    encoder: RefCell<Option<wgpu::CommandEncoder>>,
    uniforms: RefCell<UniformArena>,
    stats: Cell<GpuStats>,
    errors: Arc<Mutex<Vec<String>>>,
    profiling: RefCell<Option<Profiling>>,
    precision: Precision,
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

    async fn new_async(precision: Precision) -> Result<Gpu> {
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
        let info = adapter.get_info();

        // 3. The device: ask for the adapter's own limits (wgpu's defaults are
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

        // 4. Errors: wgpu reports validation errors through a callback (the
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

        let name_lc = info.name.to_lowercase();
        let summary = AdapterSummary {
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
        };

        // 5. One uniform buffer that holds every kernel's parameters for one
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
        })
    }

    /// The element type of every tensor and kernel on this device.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Bytes per tensor element (4 for f32, 8 for f64).
    pub fn real_bytes(&self) -> usize {
        self.precision.bytes()
    }

    /// Destroys the device, as a driver reset or an unplugged GPU would:
    /// every later call fails with [`Error::Gpu`] ("device lost"). For
    /// testing that a run survives losing its GPU.
    pub fn lose_device(&self) {
        self.device.destroy();
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// The device's limits (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Allocation, submission and dispatch counters.
    pub fn stats(&self) -> GpuStats {
        self.stats.get()
    }

    fn bump(&self, f: impl FnOnce(&mut GpuStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Replaces a shader's source for the rest of the process (to study or
    /// test a modified kernel without recompiling). Cached pipelines built
    /// from it are dropped.
    pub fn override_shader(&self, shader: &str, source: String) -> Result<()> {
        shaders::source(shader)?;
        self.flush()?;
        self.overrides
            .borrow_mut()
            .insert(shader.to_string(), source);
        self.pipelines.borrow_mut().retain(|k, _| k.0 != shader);
        Ok(())
    }

    /// Loads every `*.wgsl` in `dir` as an override of the shader of the same name.
    pub fn override_shaders_from_dir(&self, dir: &std::path::Path) -> Result<Vec<String>> {
        let io = |e| Error::Io {
            path: dir.display().to_string(),
            error: e,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
                continue;
            }
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let src = std::fs::read_to_string(&path).map_err(|e| Error::Io {
                path: path.display().to_string(),
                error: e,
            })?;
            self.override_shader(&name, src)?;
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    // ---------------------------------------------------------------- pipelines

    /// Compiles a kernel now (it is otherwise compiled at its first dispatch).
    pub fn compile(&self, kernel: Kernel) -> Result<()> {
        self.pipeline(kernel, &[]).map(|_| ())
    }

    fn pipeline(&self, kernel: Kernel, constants: Constants) -> Result<Rc<CachedPipeline>> {
        let key = (
            kernel,
            constants.iter().map(|&(n, v)| (n, v.to_bits())).collect(),
        );
        if let Some(p) = self.pipelines.borrow().get(&key) {
            return Ok(p.clone());
        }
        let source = match self.overrides.borrow().get(kernel) {
            Some(s) => s.clone(),
            None => shaders::source(kernel)?.to_string(),
        };
        let source = shaders::instantiate(&source, self.precision);
        // A shader module is the parsed WGSL; a compute pipeline is one entry
        // point of it, compiled for this device. `layout: None` lets wgpu derive
        // the bind-group layout from the bindings the entry point uses.
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel),
                layout: None,
                module: &module,
                entry_point: Some(kernel),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Shader {
                shader: match self.precision {
                    Precision::F32 => format!("shaders/{kernel}.wgsl"),
                    p => format!("shaders/{kernel}.wgsl (instantiated in {p})"),
                },
                message: e.to_string(),
            });
        }
        let layout = pipeline.get_bind_group_layout(0);
        let cached = Rc::new(CachedPipeline { pipeline, layout });
        self.pipelines.borrow_mut().insert(key, cached.clone());
        Ok(cached)
    }

    // ------------------------------------------------------------------ buffers

    pub(crate) fn take_buffer(&self, bytes: u64, op: &'static str) -> Result<PooledBuffer> {
        if bytes > self.limits.max_buffer_size {
            return Err(Error::TooLarge {
                op,
                bytes,
                limit: self.limits.max_buffer_size,
                what: "buffer",
            });
        }
        let reused = self
            .pool
            .borrow_mut()
            .free
            .get_mut(&bytes)
            .and_then(|v| v.pop());
        let buffer = match reused {
            Some(b) => b,
            None => {
                self.bump(|s| s.buffers_created += 1);
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(op),
                    // Whole 16-byte texels, so that a texture copy (see
                    // `texture_copy`) of a window that ends the tensor
                    // stays inside the buffer.
                    size: bytes.next_multiple_of(16),
                    // UNIFORM too: conv2d binds windows of its packed
                    // weights as uniform buffers (see conv2d_pack_weights).
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::UNIFORM
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        Ok(PooledBuffer {
            buffer: Some(buffer),
            size: bytes,
            pool: self.pool.clone(),
        })
    }

    /// Frees every pooled buffer not in use (e.g. after changing batch size).
    pub fn trim_pool(&self) {
        self.pool.borrow_mut().free.clear();
        self.pool.borrow_mut().textures.clear();
        self.staging.borrow_mut().clear();
    }

    fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut slot = self.encoder.borrow_mut();
        let enc = slot.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                })
        });
        f(enc)
    }

    /// Records a zero fill of the tensor, in order with the recorded kernels.
    pub fn clear(&self, t: &Tensor) {
        self.with_encoder(|e| e.clear_buffer(t.buf.raw(), 0, None));
    }

    /// Records a copy `src → dst` (same element count).
    pub fn copy(&self, src: &Tensor, dst: &Tensor) -> Result<()> {
        if src.numel() != dst.numel() {
            return Err(Error::Shape {
                op: "copy",
                what: "source and destination element counts differ".into(),
                got: src.shape().clone(),
                expected: dst.shape().to_string(),
            });
        }
        self.copy_into(src, dst, 0)
    }

    /// Records a copy of all of `src` into `dst` from element `dst_start`.
    pub fn copy_into(&self, src: &Tensor, dst: &Tensor, dst_start: usize) -> Result<()> {
        if dst_start + src.numel() > dst.numel() {
            return Err(Error::Shape {
                op: "copy_into",
                what: format!(
                    "{} elements from element {dst_start} do not fit the destination",
                    src.numel()
                ),
                got: src.shape().clone(),
                expected: format!("at most {} elements", dst.numel().saturating_sub(dst_start)),
            });
        }
        let at = (dst_start * self.real_bytes()) as u64;
        let bytes = src.bytes();
        self.with_encoder(|e| e.copy_buffer_to_buffer(src.buf.raw(), 0, dst.buf.raw(), at, bytes));
        Ok(())
    }

    /// `len` elements of `t` from element `start`, for a kernel that reads
    /// them through `tex_at`: on f32 devices a texture copy, recorded in
    /// order with the kernels; on f64 devices the buffer window.
    pub fn read_window<'t>(
        &self,
        t: &'t Tensor,
        start: usize,
        len: usize,
    ) -> Result<ReadWindow<'t>> {
        match self.precision {
            Precision::F32 => Ok(ReadWindow::Texture(self.texture_copy(t, start, len)?)),
            Precision::F64 => {
                let (bind, base) = self.window(t, start, len);
                Ok(ReadWindow::Buffer(bind, base))
            }
        }
    }

    /// Records a copy of `len` elements of `t` from element `start` into a
    /// pooled texture (f32 devices: textures hold no f64), whole texels of
    /// four elements from `start` rounded down to a multiple of four (tensor
    /// buffers are whole texels long, see `take_buffer`). Textures have
    /// 4096-texel rows, a power of two of rows up to 4096 and as many layers
    /// as needed, so the pool reuses them across nearby sizes.
    fn texture_copy(&self, t: &Tensor, start: usize, len: usize) -> Result<TexCopy> {
        if self.precision != Precision::F32 || len == 0 || start + len > t.numel() {
            return Err(Error::Gpu(format!(
                "texture_copy of elements {start}..{} of a tensor of {} in {}: \
                 needs an f32 device and a non-empty range inside the tensor",
                start + len,
                t.numel(),
                self.precision
            )));
        }
        let base = start % 4;
        let first_texel = start / 4;
        let texels = (base + len).div_ceil(4);
        let rows = texels.div_ceil(TEX_ROW);
        // GL makes a one-layer texture a TEXTURE_2D, which cannot be viewed
        // as an array: there every copy gets at least two layers.
        let min_layers = if self.summary.backend == "Gl" { 2 } else { 1 };
        let layers = rows.div_ceil(TEX_ROW).max(min_layers);
        let key = (rows.min(TEX_ROW).next_power_of_two() as u32, layers as u32);
        if layers as u32 > self.limits.max_texture_array_layers
            || key.0 > self.limits.max_texture_dimension_2d
            || TEX_ROW as u32 > self.limits.max_texture_dimension_2d
        {
            return Err(Error::TooLarge {
                op: "texture_copy",
                bytes: len as u64 * 4,
                limit: self.limits.max_texture_array_layers as u64 * TEX_LAYER as u64 * 16,
                what: "texture",
            });
        }
        let reused = self
            .pool
            .borrow_mut()
            .textures
            .get_mut(&key)
            .and_then(|v| v.pop());
        let texture = match reused {
            Some(t) => t,
            None => {
                self.bump(|s| s.buffers_created += 1);
                self.device.create_texture(&wgpu::TextureDescriptor {
                    label: Some("texture copy"),
                    size: wgpu::Extent3d {
                        width: TEX_ROW as u32,
                        height: key.0,
                        depth_or_array_layers: key.1,
                    },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format: wgpu::TextureFormat::Rgba32Float,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                    view_formats: &[],
                })
            }
        };
        // Whole rows in one copy per layer, then the last partial row
        // (`first` and `count` in texels).
        self.with_encoder(|e| {
            let mut copy = |first: usize, count: usize| {
                let (row, layer) = ((first / TEX_ROW) % TEX_ROW, first / TEX_LAYER);
                let width = count.min(TEX_ROW);
                e.copy_buffer_to_texture(
                    wgpu::TexelCopyBufferInfo {
                        buffer: t.buf.raw(),
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: ((first_texel + first) * 16) as u64,
                            bytes_per_row: Some((TEX_ROW * 16) as u32),
                            rows_per_image: None,
                        },
                    },
                    wgpu::TexelCopyTextureInfo {
                        texture: &texture,
                        mip_level: 0,
                        origin: wgpu::Origin3d {
                            x: 0,
                            y: row as u32,
                            z: layer as u32,
                        },
                        aspect: wgpu::TextureAspect::All,
                    },
                    wgpu::Extent3d {
                        width: width as u32,
                        height: count.div_ceil(TEX_ROW) as u32,
                        depth_or_array_layers: 1,
                    },
                );
            };
            let whole = texels / TEX_ROW * TEX_ROW;
            for first in (0..whole).step_by(TEX_LAYER) {
                copy(first, (whole - first).min(TEX_LAYER));
            }
            if whole < texels {
                copy(whole, texels - whole);
            }
        });
        self.bump(|s| {
            s.texture_copies += 1;
            s.texture_copy_bytes += texels as u64 * 16;
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor {
            dimension: Some(wgpu::TextureViewDimension::D2Array),
            ..Default::default()
        });
        Ok(TexCopy {
            texture: Some(texture),
            view,
            key,
            len: texels * 4,
            base: base as u32,
            pool: self.pool.clone(),
        })
    }

    /// Uploads host data into a tensor. `queue.write_buffer` takes effect at
    /// the *start* of the next submission, before any kernel recorded now, so
    /// pending kernels are submitted first to keep program order.
    /// Values are converted to the device's precision (f64 values are
    /// rounded on an f32 device).
    pub(crate) fn write<T: Real>(&self, t: &Tensor, data: &[T]) -> Result<()> {
        if self.encoder.borrow().is_some() {
            self.flush()?;
        }
        let buffer = t.buf.raw();
        if T::PRECISION == self.precision {
            self.queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(data));
            return Ok(());
        }
        match self.precision {
            Precision::F32 => {
                let v: Vec<f32> = data.iter().map(|x| x.to_f64() as f32).collect();
                self.queue.write_buffer(buffer, 0, bytemuck::cast_slice(&v));
            }
            Precision::F64 => {
                let v: Vec<f64> = data.iter().map(|x| x.to_f64()).collect();
                self.queue.write_buffer(buffer, 0, bytemuck::cast_slice(&v));
            }
        }
        Ok(())
    }

    /// Downloads a tensor: submits pending work, copies into a mappable
    /// staging buffer and waits for it.
    pub(crate) fn read<T: Real>(&self, t: &Tensor) -> Result<Vec<T>> {
        let bytes = t.bytes();
        let staging = self
            .staging
            .borrow_mut()
            .get_mut(&bytes)
            .and_then(|v| v.pop());
        let staging = match staging {
            Some(s) => s,
            None => {
                self.bump(|s| s.buffers_created += 1);
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        self.with_encoder(|e| e.copy_buffer_to_buffer(t.buf.raw(), 0, &staging, 0, bytes));
        self.flush()?;
        let bytes_read = self.map_read(&staging)?;
        let out = if T::PRECISION == self.precision {
            bytemuck::pod_collect_to_vec::<u8, T>(&bytes_read)
        } else {
            match self.precision {
                // (collected, not cast: the mapped bytes need not be aligned)
                Precision::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(&bytes_read)
                    .into_iter()
                    .map(|x| T::from_f64(x as f64))
                    .collect(),
                Precision::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(&bytes_read)
                    .into_iter()
                    .map(T::from_f64)
                    .collect(),
            }
        };
        self.staging
            .borrow_mut()
            .entry(bytes)
            .or_default()
            .push(staging);
        Ok(out)
    }

    /// Submits everything recorded so far as one command buffer.
    pub fn flush(&self) -> Result<()> {
        let Some(encoder) = self.encoder.borrow_mut().take() else {
            return self.check_errors();
        };
        let mut u = self.uniforms.borrow_mut();
        if !u.staged.is_empty() {
            self.queue.write_buffer(&u.buffer, 0, &u.staged);
            u.staged.clear();
        }
        self.queue.submit([encoder.finish()]);
        self.bump(|s| s.submissions += 1);
        self.check_errors()
    }

    /// Submits pending work and waits until the GPU has finished it.
    pub fn sync(&self) -> Result<()> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        self.check_errors()
    }

    fn check_errors(&self) -> Result<()> {
        let mut errs = self.errors.lock().unwrap();
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("\n");
        errs.clear();
        Err(Error::Gpu(msg))
    }

    // ----------------------------------------------------------------- dispatch

    /// Records one kernel launch.
    ///
    /// Binding convention, shared by every shader: `@binding(0)` is the
    /// kernel's uniform parameter struct (`params`, mirrored by a `#[repr(C)]`
    /// struct on the host), `@binding(1..)` are the storage buffers in the
    /// order given.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        params: &P,
        buffers: &[&Tensor],
        groups: [u32; 3],
    ) -> Result<()> {
        let binds: Vec<Bind> = buffers.iter().map(|t| Bind::whole(t)).collect();
        self.dispatch_bound(kernel, params, &binds, groups)
    }

    /// Like [`Gpu::dispatch`], with each storage buffer bound as a [`Bind`]:
    /// a whole tensor or a window of it (for tensors larger than one binding).
    pub fn dispatch_bound<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        params: &P,
        buffers: &[Bind],
        groups: [u32; 3],
    ) -> Result<()> {
        self.dispatch_specialized(kernel, &[], params, buffers, groups)
    }

    /// [`Gpu::dispatch_bound`] through the pipeline compiled with these
    /// values of the kernel's pipeline-overridable constants ([`Constants`]).
    pub fn dispatch_specialized<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        constants: Constants,
        params: &P,
        buffers: &[Bind],
        groups: [u32; 3],
    ) -> Result<()> {
        let limit = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > limit) {
            return Err(Error::DispatchTooLarge {
                kernel,
                groups,
                limit,
            });
        }
        if groups.contains(&0) {
            return Ok(());
        }
        for b in buffers {
            let bytes = b.size;
            let is_buffer = matches!(b.source, Source::Buffer { .. });
            if is_buffer && bytes > self.limits.max_storage_buffer_binding_size {
                return Err(Error::TooLarge {
                    op: kernel,
                    bytes,
                    limit: self.limits.max_storage_buffer_binding_size,
                    what: "storage binding",
                });
            }
        }
        let cached = self.pipeline(kernel, constants)?;
        let offset = self.push_uniform(bytemuck::bytes_of(params))?;

        // A bind group ties concrete buffers to the shader's @binding slots.
        let arena = self.uniforms.borrow();
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &arena.buffer,
                offset: offset as u64,
                size: wgpu::BufferSize::new(std::mem::size_of::<P>() as u64),
            }),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: match b.source {
                    Source::Buffer { tensor, offset } => {
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: tensor.buf.raw(),
                            offset,
                            size: wgpu::BufferSize::new(b.size),
                        })
                    }
                    Source::Texture(copy) => wgpu::BindingResource::TextureView(&copy.view),
                },
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &cached.layout,
            entries: &entries,
        });
        drop(arena);

        // A compute pass holds the dispatch; wgpu inserts the barriers that
        // order it after the kernels that wrote its inputs.
        let mut profiling = self.profiling.borrow_mut();
        let slot = match profiling.as_mut() {
            Some(p) if p.names.len() < PROFILE_CAPACITY as usize => {
                p.names.push(kernel);
                p.bytes.push(buffers.iter().map(|b| b.size).sum());
                Some((p.names.len() - 1) as u32)
            }
            _ => None,
        };
        let queries = profiling.as_ref().and_then(|p| p.queries.as_ref());
        let wall_clock = profiling.as_ref().map(|p| p.timer) == Some(Timer::WallClock);
        self.with_encoder(|enc| {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel),
                timestamp_writes: queries.zip(slot).map(|(q, i)| {
                    wgpu::ComputePassTimestampWrites {
                        query_set: q,
                        beginning_of_pass_write_index: Some(2 * i),
                        end_of_pass_write_index: Some(2 * i + 1),
                    }
                }),
            });
            pass.set_pipeline(&cached.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        });
        drop(profiling);
        self.bump(|s| s.dispatches += 1);
        if wall_clock && slot.is_some() {
            // Everything before this dispatch was drained when profiling
            // began or after the previous dispatch: time it alone.
            let t = std::time::Instant::now();
            self.sync()?;
            let seconds = t.elapsed().as_secs_f64();
            if let Some(p) = self.profiling.borrow_mut().as_mut() {
                p.wall.push(seconds);
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- profiling

    /// Starts timing every dispatch: with GPU timestamp queries where the
    /// adapter has them, else by the wall clock, one submission per dispatch.
    /// Pending work is submitted and finished first.
    pub fn profile_begin(&self) -> Result<()> {
        self.sync()?;
        let queries = self.summary.timestamps.then(|| {
            self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * PROFILE_CAPACITY,
            })
        });
        *self.profiling.borrow_mut() = Some(Profiling {
            timer: if queries.is_some() {
                Timer::Timestamps
            } else {
                Timer::WallClock
            },
            queries,
            names: Vec::new(),
            bytes: Vec::new(),
            wall: Vec::new(),
        });
        Ok(())
    }

    /// Finishes the recorded work and returns every dispatch's time since
    /// [`Gpu::profile_begin`] (dispatches past the first 2,048 are not timed).
    pub fn profile_end(&self) -> Result<Profile> {
        self.sync()?;
        let Some(p) = self.profiling.borrow_mut().take() else {
            return Err(Error::Gpu("profile_end without profile_begin".into()));
        };
        let seconds = match &p.queries {
            None => p.wall,
            Some(q) => {
                let count = 2 * p.names.len() as u32;
                if count == 0 {
                    Vec::new()
                } else {
                    let bytes = count as u64 * 8;
                    let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("profile resolve"),
                        size: bytes,
                        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    });
                    let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("profile readback"),
                        size: bytes,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    self.with_encoder(|e| {
                        e.resolve_query_set(q, 0..count, &resolve, 0);
                        e.copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
                    });
                    self.flush()?;
                    let ticks = self.map_read(&readback)?;
                    let ticks: &[u64] = bytemuck::cast_slice(&ticks);
                    let ns = self.queue.get_timestamp_period() as f64;
                    ticks
                        .chunks(2)
                        .map(|t| t[1].saturating_sub(t[0]) as f64 * ns * 1e-9)
                        .collect()
                }
            }
        };
        Ok(Profile {
            timer: p.timer,
            dispatches: p
                .names
                .into_iter()
                .zip(seconds)
                .zip(p.bytes)
                .map(|((kernel, seconds), bytes)| DispatchTime {
                    kernel,
                    seconds,
                    bytes,
                })
                .collect(),
        })
    }

    /// Waits for the submitted work and returns the bytes of a MAP_READ buffer.
    fn map_read(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        self.check_errors()?;
        rx.recv()
            .map_err(|_| Error::Gpu("buffer mapping never completed".into()))?
            .map_err(|e| Error::Gpu(format!("mapping the readback buffer failed: {e}")))?;
        let out = buffer
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("reading the readback buffer failed: {e}")))?
            .to_vec();
        buffer.unmap();
        Ok(out)
    }

    fn push_uniform(&self, bytes: &[u8]) -> Result<usize> {
        debug_assert!(
            bytes.len().is_multiple_of(16),
            "uniform structs are padded to 16 bytes"
        );
        let full = {
            let u = self.uniforms.borrow();
            let start = u.staged.len().div_ceil(u.align) * u.align;
            start + bytes.len() > UNIFORM_ARENA_BYTES as usize
        };
        if full {
            self.flush()?;
        }
        let mut u = self.uniforms.borrow_mut();
        let start = u.staged.len().div_ceil(u.align) * u.align;
        u.staged.resize(start, 0);
        u.staged.extend_from_slice(bytes);
        Ok(start)
    }

    /// A window of `len` elements of `t` starting at element `start`, bound
    /// at the nearest aligned offset below; returns the binding and `base`,
    /// the window's first element counted from the bound offset (kernels add
    /// it to their indices).
    pub fn window<'t>(&self, t: &'t Tensor, start: usize, len: usize) -> (Bind<'t>, u32) {
        let e = t.real_bytes() as u64;
        let align = self.limits.min_storage_buffer_offset_alignment.max(8) as u64;
        let start_bytes = start as u64 * e;
        let offset = start_bytes / align * align;
        let end = ((start + len) as u64 * e).min(t.bytes());
        let bind = Bind {
            source: Source::Buffer { tensor: t, offset },
            size: end - offset,
        };
        (bind, ((start_bytes - offset) / e) as u32)
    }

    /// Splits `n` samples into consecutive ranges whose windows fit one
    /// binding, given the bytes one sample occupies in each bound tensor.
    pub fn batch_chunks(&self, n: usize, bytes_per_sample: &[u64]) -> Vec<std::ops::Range<usize>> {
        let align = self.limits.min_storage_buffer_offset_alignment.max(4) as u64;
        let room = self
            .limits
            .max_storage_buffer_binding_size
            .saturating_sub(align);
        let widest = bytes_per_sample.iter().copied().max().unwrap_or(1).max(1);
        let per = ((room / widest) as usize).clamp(1, n.max(1));
        (0..n).step_by(per).map(|s| s..(s + per).min(n)).collect()
    }

    /// Workgroup counts for `n` independent items with `wg` invocations per
    /// workgroup, folded into y when x would pass the per-dimension limit.
    /// Shaders recover the item as `gid.x + gid.y * num_workgroups.x * wg`.
    pub fn grid_1d(&self, n: usize, wg: u32) -> [u32; 3] {
        let groups = (n as u64).div_ceil(wg as u64);
        let limit = self.limits.max_compute_workgroups_per_dimension as u64;
        if groups <= limit {
            [groups as u32, 1, 1]
        } else {
            let y = groups.div_ceil(limit);
            [groups.div_ceil(y) as u32, y as u32, 1]
        }
    }
}
