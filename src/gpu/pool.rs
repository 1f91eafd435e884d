//! Storage buffers and texture copies on loan from a pool keyed by size.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::dispatch::Bind;
use super::Gpu;
use crate::error::{Error, Result};
use crate::shaders::Precision;
use crate::shape::Shape;

/// What the GPU layer needs of a tensor: its pooled buffer and its shape
/// (for error messages). [`Tensor`](crate::tensor::Tensor) implements it;
/// the GPU layer knows nothing else of tensors.
pub trait DeviceArray {
    fn buffer(&self) -> &PooledBuffer;
    fn shape(&self) -> &Shape;
    /// Elements.
    fn numel(&self) -> usize {
        self.shape().numel()
    }
    /// Bytes of the buffer.
    fn bytes(&self) -> u64 {
        self.buffer().size()
    }
}

impl<A: DeviceArray + ?Sized> DeviceArray for &A {
    fn buffer(&self) -> &PooledBuffer {
        (**self).buffer()
    }
    fn shape(&self) -> &Shape {
        (**self).shape()
    }
}

/// Free buffers by byte size, shared by the [`Gpu`] and every live tensor.
#[derive(Default)]
pub(crate) struct Pool {
    pub(super) free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Texture copies by (row length, rows, layers).
    pub(super) textures: HashMap<(u32, u32, u32), Vec<wgpu::Texture>>,
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

pub use crate::shaders::{TEX_LAYER, TEX_ROW};

/// A read-only copy of `len` f32 elements of a tensor in an rgba32float 2-D
/// array texture, four elements per texel, for kernels that read their
/// inputs through `textureLoad` (on lavapipe a texel fetch is a gather,
/// cheaper than a storage load, and one fetch brings four
/// elements; docs/performance.md). The copy starts at the window's first
/// element rounded down to a multiple of four (texel copies move whole
/// texels): `base` elements before the window. Made by [`Gpu::read_window`];
/// the texture goes back to the pool when dropped.
pub struct TexCopy {
    texture: Option<wgpu::Texture>,
    pub(super) view: wgpu::TextureView,
    key: (u32, u32, u32),
    pub(super) len: usize,
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

impl Gpu {
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

    /// `len` elements of `t` from element `start`, for a kernel that reads
    /// them through `tex_at`: on f32 devices a texture copy, recorded in
    /// order with the kernels; on f64 devices the buffer window.
    pub fn read_window<'t>(
        &self,
        t: &'t (impl DeviceArray + ?Sized),
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
    /// 4096-texel rows (or the tuning's smaller layout), a power of two of
    /// rows up to as many and as many layers as needed, so the pool reuses
    /// them across nearby sizes.
    pub(super) fn texture_copy(
        &self,
        t: &(impl DeviceArray + ?Sized),
        start: usize,
        len: usize,
    ) -> Result<TexCopy> {
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
        // the layout: 4096-texel rows and layers of 4096 rows, unless the
        // tuning sets a smaller one (the kernels read it as the pipeline
        // constant TEX_ROW_BITS, `Gpu::pipeline`)
        let row_len = 1usize << self.texture_row_bits();
        let layer_len = row_len * row_len;
        let rows = texels.div_ceil(row_len);
        // GL picks a texture's target from its shape, and two of them cannot
        // be viewed as a 2-D array: one layer makes a TEXTURE_2D (so every
        // copy gets at least two layers), and square layers whose count is
        // a multiple of 6 make a cube map (wgpu's `is_cube_compatible`; so
        // those get one more layer).
        let gl = self.summary.backend == "Gl";
        let height = rows.min(row_len).next_power_of_two();
        let mut layers = rows.div_ceil(row_len).max(if gl { 2 } else { 1 });
        if gl && height == row_len && layers % 6 == 0 {
            layers += 1;
        }
        let key = (row_len as u32, height as u32, layers as u32);
        if layers as u32 > self.limits.max_texture_array_layers
            || key.1 > self.limits.max_texture_dimension_2d
            || key.0 > self.limits.max_texture_dimension_2d
        {
            return Err(Error::TooLarge {
                op: "texture_copy",
                bytes: len as u64 * 4,
                limit: self.limits.max_texture_array_layers as u64 * layer_len as u64 * 16,
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
                        width: key.0,
                        height: key.1,
                        depth_or_array_layers: key.2,
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
                let (row, layer) = ((first / row_len) % row_len, first / layer_len);
                let width = count.min(row_len);
                e.copy_buffer_to_texture(
                    wgpu::TexelCopyBufferInfo {
                        buffer: t.buffer().raw(),
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: ((first_texel + first) * 16) as u64,
                            bytes_per_row: Some((row_len * 16) as u32),
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
                        height: count.div_ceil(row_len) as u32,
                        depth_or_array_layers: 1,
                    },
                );
            };
            let whole = texels / row_len * row_len;
            for first in (0..whole).step_by(layer_len) {
                copy(first, (whole - first).min(layer_len));
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
}
