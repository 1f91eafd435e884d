//! Pipelines: each kernel compiled once per set of pipeline-overridable
//! constants, and shader overrides (to study or test a modified kernel
//! without recompiling).

use std::rc::Rc;

use super::{Constants, Gpu, Kernel};
use crate::error::{Error, Result};
use crate::shaders::{self, Precision};

/// A compiled pipeline's key: the kernel and its [`Constants`] (as bits),
/// the texture layout's among them.
pub(super) type PipelineKey = (Kernel, Vec<(&'static str, u64)>);

/// The pipeline constant that holds the texture layout (`lib/texels.wgsl`).
const TEX_ROW_BITS: &str = "TEX_ROW_BITS";

pub(super) struct CachedPipeline {
    pub(super) pipeline: wgpu::ComputePipeline,
    pub(super) layout: wgpu::BindGroupLayout,
}

impl Gpu {
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

    /// Compiles a kernel now (it is otherwise compiled at its first dispatch).
    pub fn compile(&self, kernel: Kernel) -> Result<()> {
        self.pipeline(kernel, &[]).map(|_| ())
    }

    pub(super) fn pipeline(
        &self,
        kernel: Kernel,
        constants: Constants,
    ) -> Result<Rc<CachedPipeline>> {
        // the texture layout is a constant of every kernel that reads
        // texture copies (lib/texels.wgsl), set only where it is declared
        let tex_bits = self.texture_row_bits();
        let mut key_constants: Vec<(&'static str, u64)> =
            constants.iter().map(|&(n, v)| (n, v.to_bits())).collect();
        key_constants.push((TEX_ROW_BITS, tex_bits as u64));
        let key = (kernel, key_constants);
        if let Some(p) = self.pipelines.borrow().get(&key) {
            return Ok(p.clone());
        }
        let source = match self.overrides.borrow().get(kernel) {
            Some(s) => s.clone(),
            None => shaders::source(kernel)?.to_string(),
        };
        let source = shaders::resolve(kernel, &source)?;
        let source = shaders::instantiate(&source, self.precision);
        let mut constants = constants.to_vec();
        if source.contains(&format!("override {TEX_ROW_BITS}")) {
            constants.push((TEX_ROW_BITS, tex_bits as f64));
        }
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
                    constants: &constants,
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
}
