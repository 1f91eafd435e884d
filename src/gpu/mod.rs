//! The GPU layer: the only code that touches wgpu. Ops call it; it knows
//! buffers, textures, kernels and their uniforms, and nothing of tensors
//! beyond the [`DeviceArray`] trait that [`Tensor`](crate::tensor::Tensor)
//! implements.
//!
//! One file per job, each short enough to read in one sitting:
//! - [`adapter`]: choosing the adapter and opening the device;
//! - [`pipelines`]: compiling each `shaders/*.wgsl` entry point once per set
//!   of pipeline constants, and shader overrides;
//! - [`pool`]: storage buffers and texture copies on loan from a pool keyed
//!   by size, so a training step that repeats the previous step's shapes
//!   allocates nothing;
//! - [`transfer`]: uploads, downloads and buffer copies;
//! - [`dispatch`]: recording kernels into one command encoder, binding
//!   windows, the uniform arena, submission;
//! - [`timing`]: the profiler (timestamp queries or the wall clock).
//!
//! Kernels are recorded into one command encoder and submitted together only
//! when the caller reads something back ([`Gpu::read`]) or calls
//! [`Gpu::flush`]; blocking waits happen only there and in [`Gpu::sync`].

mod adapter;
mod dispatch;
mod pipelines;
mod pool;
mod timing;
mod transfer;
mod uniform;

pub use adapter::AdapterSummary;
pub use dispatch::Bind;
pub use pool::{DeviceArray, PooledBuffer, ReadWindow, TexCopy, TEX_LAYER, TEX_ROW};
pub use timing::{row_name, DispatchTime, Profile, Timer};
pub use uniform::{Uniform, UniformField};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::shaders::Precision;
use dispatch::UniformArena;
use pipelines::{CachedPipeline, PipelineKey};
use pool::Pool;
use timing::Profiling;

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

/// Settings that change how fast kernels run (and, through summation
/// order, their last bits), fixed per device and shown by `info` and
/// `profile`. The defaults are each adapter's measured best.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// Output pixels per chunk of conv2d's split weight and bias
    /// reductions (64 ..= 65536); `None`: the adapter's rule
    /// (`ops::conv2d::weight_chunk`).
    pub weight_chunk: Option<usize>,
    /// Fold 1-D grids into a second dimension past this many workgroups
    /// (at least 1) instead of at the adapter's limit: the gradient checks
    /// set it low so that every kernel's folded-grid indexing runs on small
    /// tensors. `None`: the adapter's limit.
    pub fold_groups: Option<u32>,
    /// Kernel variants to run wherever they are correct for the geometry
    /// and the adapter, instead of the adapter's own pick (by kernel name:
    /// `conv2d_backward_weight`, …): how the gradient checks reach every
    /// variant any adapter picks, and how a benchmark pins one.
    pub prefer: &'static [&'static str],
    /// Fill every new tensor (`Tensor::uninit`) with NaN before a kernel
    /// writes it: the gradient checks' folded-grid and variant passes set
    /// it, so that an element a kernel forgets to write shows as a NaN
    /// instead of the value a pooled buffer still holds from the last
    /// case. Off by default (it costs a pass over every new tensor).
    pub poison: bool,
    /// Cap storage bindings at this many bytes (below the adapter's limit)
    /// and align their offsets to 256 bytes, the coarsest alignment any
    /// adapter asks: ops then split every batch into per-sample windows
    /// whose first elements (`x_base`, `y_base`) are non-zero and differ
    /// between tensors, as they are on a large batch. The gradient checks'
    /// small-limits pass sets it; `None`: the adapter's limit.
    pub max_binding_bytes: Option<u64>,
    /// log2 of the texels per row, and rows per layer, of a texture copy
    /// (4 ..= 12; `None`: [`TEX_ROW_BITS`](crate::shaders::TEX_ROW_BITS),
    /// 4096 × 4096 texels a layer). The small-limits pass sets 4 (256
    /// texels a layer), so that copies of small tensors span many rows and
    /// layers and every term of `lib/texels.wgsl`'s address runs.
    pub texture_row_bits: Option<u32>,
    /// Hand every backward a zeroed gradient buffer to add into
    /// (`GradWrite::Add`), as when a tensor feeds two ops, instead of a
    /// fresh one to write (`GradWrite::Write`, which the ops recorded with
    /// `Tape::record_writing_first` take where they can): the gradient
    /// checks' split-batch pass sets it, so that those ops' adding paths
    /// are checked too. Off by default (writing skips a zeroing pass).
    pub accumulate_gradients: bool,
    /// Quads per chunk of bnpool's split sums (`bnpool_backward_partials`;
    /// at least 1). `None`: 256 (1,024 windows).
    pub bnpool_chunk: Option<usize>,
}

impl Tuning {
    /// Whether `kernel` is a preferred variant.
    pub fn prefers(&self, kernel: &str) -> bool {
        self.prefer.contains(&kernel)
    }
}

/// The range [`Tuning::weight_chunk`] accepts.
pub const WEIGHT_CHUNK_RANGE: std::ops::RangeInclusive<usize> = 64..=65536;
/// The range [`Tuning::texture_row_bits`] accepts.
pub const TEXTURE_ROW_BITS_RANGE: std::ops::RangeInclusive<u32> = 4..=12;

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
    tuning: Cell<Tuning>,
    /// The pass the kernels recorded now serve, where one kernel serves
    /// two ([`Gpu::in_pass`]); the profiler labels its rows with it.
    pass: Cell<Option<&'static str>>,
}

impl Gpu {
    /// The element type of every tensor and kernel on this device.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Bytes per tensor element (4 for f32, 8 for f64).
    pub fn real_bytes(&self) -> usize {
        self.precision.bytes()
    }

    /// Runs `f` with the kernels it records labelled as serving `pass`
    /// (the stride-1 conv input gradient runs the forward kernel: its
    /// profile row reads `conv2d_forward_3x3 (backward-input)`). Read only
    /// by the profiler.
    pub fn in_pass<R>(&self, pass: &'static str, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let before = self.pass.replace(Some(pass));
        let out = f();
        self.pass.set(before);
        out
    }

    /// Every kernel this device has compiled, by name, sorted: a kernel is
    /// compiled at its first dispatch, so after a run of checks these are
    /// the kernels it reached on this adapter (`gradcheck --mutants`).
    pub fn kernels_compiled(&self) -> Vec<Kernel> {
        let mut names: Vec<Kernel> = self.pipelines.borrow().keys().map(|k| k.0).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The speed settings in force ([`Tuning`]).
    pub fn tuning(&self) -> Tuning {
        self.tuning.get()
    }

    /// log2 of a texture copy's row length in texels ([`Tuning::texture_row_bits`]).
    pub fn texture_row_bits(&self) -> u32 {
        self.tuning
            .get()
            .texture_row_bits
            .unwrap_or(crate::shaders::TEX_ROW_BITS)
    }

    /// Replaces the device's [`Tuning`]; a value out of range is an
    /// [`Error::Config`] naming it.
    pub fn set_tuning(&self, tuning: Tuning) -> Result<()> {
        if let Some(c) = tuning.weight_chunk {
            if !WEIGHT_CHUNK_RANGE.contains(&c) {
                return Err(Error::Config {
                    what: "weight chunk".into(),
                    message: format!(
                        "'{c}' is not a pixel count in 64 ..= 65536; leave it unset for the \
                         adapter's default"
                    ),
                });
            }
        }
        if let Some(bits) = tuning.texture_row_bits {
            if !TEXTURE_ROW_BITS_RANGE.contains(&bits) {
                return Err(Error::Config {
                    what: "texture row bits".into(),
                    message: format!(
                        "'{bits}' is not in 4 ..= 12 (16 to 4096 texels a row: a row must \
                         be a multiple of the 256-byte copy alignment)"
                    ),
                });
            }
        }
        if tuning.bnpool_chunk == Some(0) {
            return Err(Error::Config {
                what: "bnpool chunk".into(),
                message: "must be at least 1 quad".into(),
            });
        }
        if tuning.fold_groups == Some(0) {
            return Err(Error::Config {
                what: "fold groups".into(),
                message: "must be at least 1 workgroup per dimension".into(),
            });
        }
        self.tuning.set(tuning);
        Ok(())
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

    pub(super) fn bump(&self, f: impl FnOnce(&mut GpuStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }
}
