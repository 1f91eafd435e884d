//! postergrad: a from-scratch GPU compute engine. Hand-written WGSL compute
//! shaders run through wgpu; a small tape autograd and an Adam kernel train
//! networks with them; every backward kernel is gradient-checked.
//!
//! The crate is two layers. The **engine** knows GPUs, tensors, kernels and
//! gradients and nothing of posters; the **application** builds the poster
//! models on it and trains, evaluates and reports them. Engine modules never
//! import application ones (`tests/layout.rs` checks it, and that the
//! engine's modules form no cycle).
//!
//! Where to start reading: `docs/architecture.md`, then [`gpu`] (the only
//! module that touches wgpu), [`tensor`], [`tape`], one op in [`ops`], and
//! [`gradcheck`].

// ---------------------------------------------------------------- engine
pub mod error;
pub mod gpu;
pub mod gradcheck;
pub mod ops;
pub mod rng;
pub mod shaders;
pub mod shape;
pub mod tape;
pub mod tensor;

// ----------------------------------------------------------- application
pub mod checkpoint;
pub mod data;
pub mod image_check;
pub mod images;
pub mod loader;
pub mod metrics;
pub mod nn;
pub mod plot;
pub mod posters;
pub mod profile;
pub mod train;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use shaders::Precision;
pub use shape::Shape;
pub use tape::{GradWrite, Gradients, Mode, Param, Tape, Var};
pub use tensor::Tensor;
