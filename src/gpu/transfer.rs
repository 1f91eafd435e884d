//! Uploads, downloads and buffer-to-buffer copies.

use super::pool::DeviceArray;
use super::{Gpu, Real};
use crate::error::{Error, Result};
use crate::shaders::Precision;

impl Gpu {
    /// Records a zero fill of the tensor, in order with the recorded kernels.
    pub fn clear(&self, t: &impl DeviceArray) {
        self.with_encoder(|e| e.clear_buffer(t.buffer().raw(), 0, None));
    }

    /// Records a copy `src → dst` (same element count).
    pub fn copy(&self, src: &impl DeviceArray, dst: &impl DeviceArray) -> Result<()> {
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
    pub fn copy_into(
        &self,
        src: &impl DeviceArray,
        dst: &impl DeviceArray,
        dst_start: usize,
    ) -> Result<()> {
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
        self.with_encoder(|e| {
            e.copy_buffer_to_buffer(src.buffer().raw(), 0, dst.buffer().raw(), at, bytes)
        });
        Ok(())
    }

    /// Uploads host data into a tensor. `queue.write_buffer` takes effect at
    /// the *start* of the next submission, before any kernel recorded now, so
    /// pending kernels are submitted first to keep program order.
    /// Values are converted to the device's precision (f64 values are
    /// rounded on an f32 device).
    pub(crate) fn write<T: Real>(&self, t: &impl DeviceArray, data: &[T]) -> Result<()> {
        if self.encoder.borrow().is_some() {
            self.flush()?;
        }
        let buffer = t.buffer().raw();
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
    pub(crate) fn read<T: Real>(&self, t: &impl DeviceArray) -> Result<Vec<T>> {
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
        self.with_encoder(|e| e.copy_buffer_to_buffer(t.buffer().raw(), 0, &staging, 0, bytes));
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

    /// Waits for the submitted work and returns the bytes of a MAP_READ buffer.
    pub(super) fn map_read(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
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
}
