//! postergrad: a from-scratch GPU compute engine. Hand-written WGSL compute
//! shaders run through wgpu; a small tape autograd and an Adam kernel train
//! networks with them; every backward kernel is gradient-checked.
//!
//! Where to start reading: `docs/architecture.md`, then [`gpu`] (the only
//! module that touches wgpu), [`tensor`], [`tape`], one op in [`ops`], and
//! [`gradcheck`].

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod gpu;
pub mod gradcheck;
pub mod loader;
pub mod metrics;
pub mod nn;
pub mod ops;
pub mod plot;
pub mod posters;
pub mod profile;
pub mod rng;
pub mod shaders;
pub mod tape;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use shaders::Precision;
pub use tape::{GradWrite, Gradients, Mode, Param, Tape, Var};
pub use tensor::{Shape, Tensor};
