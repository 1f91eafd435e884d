//! Kernel parameters: each kernel's `@binding(0)` uniform struct has a
//! `#[repr(C)]` mirror on the host, declared with [`uniform!`](crate::uniform),
//! which also records every field's name and byte offset. `tests/shaders.rs`
//! compares those, field by field, with naga's reflection of the WGSL
//! struct, so a renamed, reordered or mistyped field is a test failure, not
//! a silently wrong kernel.

/// A host mirror of a kernel's uniform struct. [`Gpu::dispatch`](super::Gpu::dispatch)
/// takes only these.
pub trait Uniform: bytemuck::Pod {
    /// Appends every field as (name, byte offset from `base`), nested
    /// structs flattened, in declaration order.
    fn fields(base: usize, out: &mut Vec<(&'static str, usize)>);

    /// Every field as (name, byte offset).
    fn layout() -> Vec<(&'static str, usize)> {
        let mut out = Vec::new();
        Self::fields(0, &mut out);
        out
    }
}

/// One field of a [`Uniform`]: a scalar or array is one entry, a nested
/// uniform struct its own fields.
pub trait UniformField {
    fn push(name: &'static str, offset: usize, out: &mut Vec<(&'static str, usize)>);
}

macro_rules! scalar_fields {
    ($($t:ty),*) => {$(
        impl UniformField for $t {
            fn push(name: &'static str, offset: usize, out: &mut Vec<(&'static str, usize)>) {
                out.push((name, offset));
            }
        }
    )*};
}
scalar_fields!(u32, i32, f32, [u32; 2], [u32; 3], [u32; 4], [f32; 2], [f32; 3], [f32; 4]);

/// Declares a kernel's uniform struct: `#[repr(C)]`, `Pod`, and a
/// [`Uniform`] impl listing its fields. Every field is `pub`.
#[macro_export]
macro_rules! uniform {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty ),*
        }
        impl $crate::gpu::Uniform for $name {
            fn fields(base: usize, out: &mut Vec<(&'static str, usize)>) {
                $(
                    <$ty as $crate::gpu::UniformField>::push(
                        stringify!($field),
                        base + std::mem::offset_of!($name, $field),
                        out,
                    );
                )*
            }
        }
        impl $crate::gpu::UniformField for $name {
            fn push(_: &'static str, offset: usize, out: &mut Vec<(&'static str, usize)>) {
                <$name as $crate::gpu::Uniform>::fields(offset, out);
            }
        }
    };
}
