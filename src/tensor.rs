//! `Tensor`: numbers living in a GPU buffer, plus a row-major shape. The
//! element type is the device's [`Precision`](crate::shaders::Precision):
//! f32 (training) or f64 (gradient checks); host data is converted on upload
//! and download.
//!
//! A tensor owns a reference-counted handle to a pooled buffer: cloning a
//! tensor is cheap and shares the data, and when the last handle goes the
//! buffer returns to the [`Gpu`](crate::gpu::Gpu)'s pool for the next tensor of
//! the same size. Reshaping is a view (same buffer, new shape), never a copy.

use std::fmt;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::gpu::{DeviceArray, Gpu, PooledBuffer, Real};
pub use crate::shape::Shape;

crate::uniform! {
    /// Uniforms of `fill` (shaders/fill.wgsl).
    pub struct FillParams {
        pub n: u32,
        pub value: f32,
        pub base: u32,
        pub _pad: u32,
    }
}

impl DeviceArray for Tensor {
    fn buffer(&self) -> &PooledBuffer {
        &self.buf
    }
    fn shape(&self) -> &Shape {
        &self.shape
    }
}

/// Values (f32, or f64 on an f64 device) in a GPU buffer with a shape.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) buf: Rc<PooledBuffer>,
    shape: Shape,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor{}", self.shape)
    }
}

impl Tensor {
    /// A tensor with unspecified contents (taken from the pool).
    pub fn uninit(gpu: &Gpu, shape: impl Into<Shape>, op: &'static str) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() == 0 {
            return Err(Error::EmptyTensor { op, shape });
        }
        let buf = gpu.take_buffer((shape.numel() * gpu.real_bytes()) as u64, op)?;
        let t = Tensor {
            buf: Rc::new(buf),
            shape,
        };
        if gpu.tuning().poison {
            t.fill(gpu, f32::NAN)?;
        }
        Ok(t)
    }

    /// A tensor filled with zeros (cleared on the GPU, in order with the
    /// kernels already recorded).
    pub fn zeros(gpu: &Gpu, shape: impl Into<Shape>, op: &'static str) -> Result<Tensor> {
        let t = Tensor::uninit(gpu, shape, op)?;
        gpu.clear(&t);
        Ok(t)
    }

    /// A tensor with every element `value` (filled on the GPU, in order
    /// with the kernels already recorded).
    pub fn full(
        gpu: &Gpu,
        shape: impl Into<Shape>,
        value: f32,
        op: &'static str,
    ) -> Result<Tensor> {
        let t = Tensor::uninit(gpu, shape, op)?;
        t.fill(gpu, value)?;
        Ok(t)
    }

    /// Sets every element to `value` with the `fill` kernel, in ranges whose
    /// windows fit one storage binding.
    pub fn fill(&self, gpu: &Gpu, value: f32) -> Result<()> {
        for range in gpu.batch_chunks(self.numel(), &[gpu.real_bytes() as u64]) {
            let (bind, base) = gpu.window(self, range.start, range.len());
            let n = range.len() as u32;
            let params = FillParams {
                n,
                value,
                base,
                _pad: 0,
            };
            gpu.dispatch_bound("fill", &params, &[bind], gpu.grid_1d(range.len(), 256))?;
        }
        Ok(())
    }

    /// Uploads host data (f32 or f64, converted to the device's precision).
    /// `data.len()` must equal the shape's element count.
    pub fn from_slice<T: Real>(gpu: &Gpu, shape: impl Into<Shape>, data: &[T]) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::DataLength {
                op: "upload",
                len: data.len(),
                numel: shape.numel(),
                shape,
            });
        }
        let t = Tensor::uninit(gpu, shape, "upload")?;
        gpu.write(&t, data)?;
        Ok(t)
    }

    /// Overwrites the contents with host data of the same length.
    pub fn write<T: Real>(&self, gpu: &Gpu, data: &[T]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::DataLength {
                op: "upload",
                len: data.len(),
                numel: self.numel(),
                shape: self.shape.clone(),
            });
        }
        gpu.write(self, data)
    }

    /// Downloads the data (submits pending work and waits for it).
    pub fn to_vec(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        gpu.read(self)
    }

    /// Downloads the data as f64 (exact on an f64 device).
    pub fn to_vec_f64(&self, gpu: &Gpu) -> Result<Vec<f64>> {
        gpu.read(self)
    }

    /// Size of the buffer in bytes.
    pub fn bytes(&self) -> u64 {
        self.buf.size()
    }

    /// Bytes per element: 4 (f32) or 8 (f64).
    pub fn real_bytes(&self) -> usize {
        (self.buf.size() / self.numel() as u64) as usize
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// The same data under another shape with the same element count (no copy).
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::Shape {
                op: "reshape",
                what: format!("cannot view {} elements as {}", self.numel(), shape),
                got: self.shape.clone(),
                expected: format!("{} elements", shape.numel()),
            });
        }
        Ok(Tensor {
            buf: self.buf.clone(),
            shape,
        })
    }

    /// True when both tensors share one buffer.
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Rc::ptr_eq(&self.buf, &other.buf)
    }

    /// Fails with a typed error unless the shape is exactly `expected`.
    pub fn expect_shape(&self, op: &'static str, what: &str, expected: &[usize]) -> Result<()> {
        if self.dims() != expected {
            return Err(Error::Shape {
                op,
                what: what.to_string(),
                got: self.shape.clone(),
                expected: Shape(expected.to_vec()).to_string(),
            });
        }
        Ok(())
    }

    /// Fails unless the tensor has `rank` dimensions.
    pub fn expect_rank(&self, op: &'static str, what: &str, rank: usize) -> Result<()> {
        if self.shape.rank() != rank {
            return Err(Error::Shape {
                op,
                what: what.to_string(),
                got: self.shape.clone(),
                expected: format!("a rank-{rank} tensor"),
            });
        }
        Ok(())
    }
}
