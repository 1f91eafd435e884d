//! The library's one error type. Messages are lowercase and name the op, the
//! shapes, the file or the limit involved, and say what to do about it.

use crate::shape::Shape;

/// Every failure the library can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// wgpu found no adapter on any enabled backend.
    #[error(
        "no GPU adapter found (backends tried: {backends}{filter}). Install a GPU driver; on a \
         machine without a GPU install Mesa's CPU driver with `apt-get install -y \
         mesa-vulkan-drivers` (Vulkan lavapipe), or try `WGPU_BACKEND=gl` (OpenGL llvmpipe)"
    )]
    NoAdapter { backends: String, filter: String },

    /// The adapter refused to open a device.
    #[error("the adapter '{adapter}' refused to open a device: {message}")]
    RequestDevice { adapter: String, message: String },

    /// Two shapes that must agree do not.
    #[error("{op}: shape mismatch: {what} — got {got}, expected {expected}")]
    Shape {
        op: &'static str,
        what: String,
        got: Shape,
        expected: String,
    },

    /// A host slice does not match the tensor it is meant to fill.
    #[error("{op}: {len} values given for a tensor of shape {shape} ({numel} elements)")]
    DataLength {
        op: &'static str,
        len: usize,
        shape: Shape,
        numel: usize,
    },

    /// A tensor with no elements (a zero dimension) was asked for.
    #[error("{op}: tensors must have at least one element, got shape {shape}")]
    EmptyTensor { op: &'static str, shape: Shape },

    /// A buffer larger than the adapter's limit was asked for.
    #[error(
        "{op}: needs a {bytes}-byte buffer but the adapter allows at most {limit} bytes per \
         {what}; use a smaller batch or input size"
    )]
    TooLarge {
        op: &'static str,
        bytes: u64,
        limit: u64,
        what: &'static str,
    },

    /// A dispatch exceeds the workgroup-count limit even after splitting.
    #[error("{kernel}: dispatch of {groups:?} workgroups exceeds the adapter's limit of {limit} per dimension")]
    DispatchTooLarge {
        kernel: &'static str,
        groups: [u32; 3],
        limit: u32,
    },

    /// A shader failed to compile or a pipeline failed to build.
    #[error("{shader} failed to compile: {message}")]
    Shader { shader: String, message: String },

    /// No shader of that name is compiled into the binary.
    #[error("no shader named '{0}' (the shaders are the files in shaders/*.wgsl)")]
    UnknownShader(String),

    /// f64 kernels were asked for on an adapter without `SHADER_F64`, or an
    /// f32-only kernel was asked for in f64.
    #[error("{what}: {message}")]
    Precision { what: String, message: String },

    /// wgpu reported a validation or out-of-memory error, or lost the device.
    #[error("GPU error: {0}")]
    Gpu(String),

    /// A caller passed a value that makes no sense (a negative learning rate, ...).
    #[error("{what}: {message}")]
    Config { what: String, message: String },

    /// Reading or writing a file failed.
    #[error("{path}: {}", io_reason(error))]
    Io { path: String, error: std::io::Error },

    /// Writing a file failed part-way (a full disk, a file-size limit):
    /// the file on disk is still the previous one, whole.
    #[error(
        "could not write {path}: {}; the previous {path} is unchanged (files are written whole \
         to a temporary, then renamed); free some space and continue the run",
        io_reason(error)
    )]
    Write { path: String, error: std::io::Error },

    /// A dataset file is malformed (a CSV row, a header, a label value).
    #[error("{file}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Data {
        file: String,
        line: Option<u64>,
        message: String,
    },

    /// A poster image is missing or cannot be decoded.
    #[error("poster {id} ({path}): {message}")]
    Image {
        id: String,
        path: String,
        message: String,
    },

    /// A pretrained weights file (`--weights`) is unreadable or does not
    /// fit the model.
    #[error("weights {path}: {message}")]
    Weights { path: String, message: String },

    /// A checkpoint file is unreadable or does not fit the model.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: String, message: String },

    /// Training stopped before its last epoch: a non-finite loss or
    /// gradient, a lost device, a failed write. Says where, why, and which
    /// checkpoint on disk is intact.
    #[error("training stopped at {at}: {cause}\n{checkpoint}")]
    Stopped {
        at: String,
        cause: Box<Error>,
        checkpoint: String,
    },

    /// The loss or a gradient became NaN or infinite (the diagnosis names
    /// the tensors and the first layer at fault).
    #[error("{0}")]
    NonFinite(String),

    /// A gradient-check suite found kernels whose results are wrong.
    #[error("gradient check failed: {failed} of {total} checks out of tolerance ({names})")]
    GradcheckFailed {
        failed: usize,
        total: usize,
        names: String,
    },
}

/// An I/O error in words a user acts on ("not found" rather than
/// "No such file or directory (os error 2)").
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (check the file's owner and mode)".into()
        }
        std::io::ErrorKind::StorageFull => "no space left on the device".into(),
        std::io::ErrorKind::FileTooLarge => {
            "the file would pass this process's file-size limit (ulimit -f)".into()
        }
        _ => e.to_string(),
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
