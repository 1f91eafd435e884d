//! Recording kernels: bindings and windows, the uniform arena, the command
//! encoder, submission.

use super::pool::{DeviceArray, PooledBuffer, TexCopy};
use super::{Constants, Gpu, Kernel, Uniform};
use crate::error::{Error, Result};

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
    Buffer {
        buffer: &'t PooledBuffer,
        offset: u64,
    },
    Texture(&'t TexCopy),
}

impl<'t> Bind<'t> {
    /// The whole tensor.
    pub fn whole<A: DeviceArray + ?Sized>(tensor: &'t A) -> Bind<'t> {
        Bind {
            source: Source::Buffer {
                buffer: tensor.buffer(),
                offset: 0,
            },
            size: tensor.bytes(),
        }
    }

    /// `len` elements of `tensor` from element `start`; the caller keeps
    /// `start` aligned for the binding's kind (conv2d binds 64 KiB windows).
    pub fn range<A: DeviceArray + ?Sized>(tensor: &'t A, start: usize, len: usize) -> Bind<'t> {
        let e = tensor.bytes() / tensor.numel() as u64;
        Bind {
            source: Source::Buffer {
                buffer: tensor.buffer(),
                offset: start as u64 * e,
            },
            size: len as u64 * e,
        }
    }

    /// A texture copy, bound as `texture_2d_array<f32>`.
    pub(super) fn texture(copy: &'t TexCopy) -> Bind<'t> {
        Bind {
            source: Source::Texture(copy),
            size: copy.len as u64 * 4,
        }
    }
}

/// Kernel parameters recorded since the last submission, 256-byte aligned.
pub(super) struct UniformArena {
    pub(super) buffer: wgpu::Buffer,
    pub(super) staged: Vec<u8>,
    pub(super) align: usize,
}

pub(super) const UNIFORM_ARENA_BYTES: u64 = 1 << 18;

impl Gpu {
    pub(super) fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut slot = self.encoder.borrow_mut();
        let enc = slot.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                })
        });
        f(enc)
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

    pub(super) fn check_errors(&self) -> Result<()> {
        let mut errs = self.errors.lock().unwrap();
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("\n");
        errs.clear();
        Err(Error::Gpu(msg))
    }

    /// Records one kernel launch.
    ///
    /// Binding convention, shared by every shader: `@binding(0)` is the
    /// kernel's uniform parameter struct (`params`, mirrored by a `#[repr(C)]`
    /// struct on the host), `@binding(1..)` are the storage buffers in the
    /// order given.
    pub fn dispatch<P: Uniform>(
        &self,
        kernel: Kernel,
        params: &P,
        buffers: &[&dyn DeviceArray],
        groups: [u32; 3],
    ) -> Result<()> {
        let binds: Vec<Bind> = buffers.iter().map(Bind::whole).collect();
        self.dispatch_bound(kernel, params, &binds, groups)
    }

    /// Like [`Gpu::dispatch`], with each storage buffer bound as a [`Bind`]:
    /// a whole tensor or a window of it (for tensors larger than one binding).
    pub fn dispatch_bound<P: Uniform>(
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
    pub fn dispatch_specialized<P: Uniform>(
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
                    Source::Buffer { buffer, offset } => {
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: buffer.raw(),
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
        // order it after the kernels that wrote its inputs. While the
        // profiler runs, `timing` records the pass instead, with its
        // timestamps or a wall-clock wait.
        let bytes = || buffers.iter().map(|b| b.size).sum();
        if self.profiling.borrow().is_some() {
            self.record_timed_pass(kernel, &cached, &bind_group, groups, bytes())?;
        } else {
            self.with_encoder(|enc| {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(kernel),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&cached.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            });
        }
        self.bump(|s| s.dispatches += 1);
        Ok(())
    }

    pub(super) fn push_uniform(&self, bytes: &[u8]) -> Result<usize> {
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
    pub fn window<'t, A: DeviceArray + ?Sized>(
        &self,
        t: &'t A,
        start: usize,
        len: usize,
    ) -> (Bind<'t>, u32) {
        let e = self.real_bytes() as u64;
        let align = self.binding_align().max(8);
        let start_bytes = start as u64 * e;
        let offset = start_bytes / align * align;
        let end = ((start + len) as u64 * e).min(t.bytes());
        let bind = Bind {
            source: Source::Buffer {
                buffer: t.buffer(),
                offset,
            },
            size: end - offset,
        };
        (bind, ((start_bytes - offset) / e) as u32)
    }

    /// The alignment of storage binding offsets: the adapter's, or 256 bytes
    /// under [`Tuning::max_binding_bytes`](super::Tuning::max_binding_bytes).
    fn binding_align(&self) -> u64 {
        let adapter = self.limits.min_storage_buffer_offset_alignment as u64;
        match self.tuning.get().max_binding_bytes {
            Some(_) => adapter.max(256),
            None => adapter,
        }
    }

    /// The largest storage binding ops plan their windows for: the
    /// adapter's limit, or the tuning's lower cap.
    fn max_binding_bytes(&self) -> u64 {
        let adapter = self.limits.max_storage_buffer_binding_size;
        self.tuning
            .get()
            .max_binding_bytes
            .map_or(adapter, |cap| cap.min(adapter))
    }

    /// Splits `n` samples into consecutive ranges whose windows fit one
    /// binding, given the bytes one sample occupies in each bound tensor.
    pub fn batch_chunks(&self, n: usize, bytes_per_sample: &[u64]) -> Vec<std::ops::Range<usize>> {
        let align = self.binding_align().max(4);
        let room = self.max_binding_bytes().saturating_sub(align);
        let widest = bytes_per_sample.iter().copied().max().unwrap_or(1).max(1);
        let per = ((room / widest) as usize).clamp(1, n.max(1));
        (0..n).step_by(per).map(|s| s..(s + per).min(n)).collect()
    }

    /// Workgroup counts for `n` independent items with `wg` invocations per
    /// workgroup, folded into y when x would pass the per-dimension limit.
    /// Shaders recover the item as `gid.x + gid.y * num_workgroups.x * wg`.
    pub fn grid_1d(&self, n: usize, wg: u32) -> [u32; 3] {
        let groups = (n as u64).div_ceil(wg as u64);
        let adapter = self.limits.max_compute_workgroups_per_dimension;
        let limit = self
            .tuning
            .get()
            .fold_groups
            .map_or(adapter, |f| f.min(adapter)) as u64;
        if groups <= limit {
            [groups as u32, 1, 1]
        } else {
            let y = groups.div_ceil(limit);
            [groups.div_ceil(y) as u32, y as u32, 1]
        }
    }
}
