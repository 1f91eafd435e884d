//! Tape-based reverse-mode autograd, small enough to read in one sitting.
//!
//! During the forward pass every op computes its output on the GPU and, in
//! training mode, appends a [`Node`] to the tape: which inputs it read, and a
//! closure that turns the gradient of its output into gradients of its inputs.
//! Nodes are appended in execution order, so walking the tape backwards is a
//! valid reverse topological order (micrograd's `reversed(topo)` for free).
//!
//! Gradients always **accumulate**: a backward kernel adds (`+=`) into the
//! input's gradient buffer, which is zeroed once when it is first needed, so a
//! tensor used twice receives both contributions.
//!
//! Parameters are leaves whose gradient buffer belongs to the [`Param`]; other
//! leaves (created with [`Tape::leaf`]) get theirs returned in [`Gradients`].
//! In inference mode nothing is recorded and saved activations are freed as
//! soon as the next op has used them.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::{Shape, Tensor};

/// Whether the tape records (training) or not (inference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Training,
    Inference,
}

/// A trainable tensor: its value and the buffer its gradient accumulates into.
pub struct Param {
    pub name: String,
    pub value: Tensor,
    pub grad: Tensor,
}

impl Param {
    /// A parameter with an initial value; its gradient starts at zero.
    pub fn new(gpu: &Gpu, name: impl Into<String>, value: Tensor) -> Result<Param> {
        let grad = Tensor::zeros(gpu, value.shape().clone(), "param grad")?;
        Ok(Param {
            name: name.into(),
            value,
            grad,
        })
    }
}

/// A value flowing through the graph: the tensor, and its node on the tape
/// (`None` for constants and everything computed in inference mode).
#[derive(Clone, Debug)]
pub struct Var {
    pub value: Tensor,
    node: Option<usize>,
}

impl Var {
    /// Whether gradients flow back through this value.
    pub fn requires_grad(&self) -> bool {
        self.node.is_some()
    }
    /// The shape of the value.
    pub fn shape(&self) -> &Shape {
        self.value.shape()
    }
}

/// Turns the gradient of an op's output into gradients of its inputs. It gets
/// the output gradient, per input in the order the op was recorded with the
/// buffer to accumulate into (`None` where no gradient is needed), and how
/// to treat the first input's buffer ([`GradWrite`]).
pub type BackwardFn = Box<dyn FnOnce(&Gpu, &Tensor, &[Option<Tensor>], GradWrite) -> Result<()>>;

/// How a backward treats its first input's gradient buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradWrite {
    /// Add into it (`+=`): the rule for every buffer.
    Add,
    /// It is fresh and unzeroed — no backward has touched it yet — and the
    /// op must write (`=`) every element of it. Only ops recorded with
    /// [`Tape::record_writing_first`] get this, which saves them reading the
    /// buffer and the tape zeroing it.
    Write,
}

struct Node {
    shape: Shape,
    inputs: Vec<Option<usize>>,
    backward: Option<BackwardFn>,
    /// The op writes its first input's gradient when that buffer is fresh.
    writes_first: bool,
    /// For parameter leaves: where their gradient accumulates.
    param_grad: Option<Tensor>,
}

/// The tape.
pub struct Tape<'g> {
    gpu: &'g Gpu,
    mode: Mode,
    nodes: RefCell<Vec<Node>>,
}

/// Gradients of the leaves created with [`Tape::leaf`].
#[derive(Default, Debug)]
pub struct Gradients {
    leaves: HashMap<usize, Tensor>,
}

impl Gradients {
    /// The gradient of a leaf, if any gradient reached it.
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        v.node.and_then(|i| self.leaves.get(&i))
    }
}

impl<'g> Tape<'g> {
    pub fn new(gpu: &'g Gpu, mode: Mode) -> Tape<'g> {
        Tape {
            gpu,
            mode,
            nodes: RefCell::new(Vec::new()),
        }
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, node: Node) -> usize {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node);
        nodes.len() - 1
    }

    /// A value that needs no gradient (inputs, labels).
    pub fn constant(&self, value: Tensor) -> Var {
        Var { value, node: None }
    }

    /// A leaf whose gradient is returned by [`Tape::backward`] (used by the
    /// gradient checks; in inference mode it is a constant).
    pub fn leaf(&self, value: Tensor) -> Var {
        if self.mode == Mode::Inference {
            return self.constant(value);
        }
        let node = self.push(Node {
            shape: value.shape().clone(),
            inputs: vec![],
            backward: None,
            writes_first: false,
            param_grad: None,
        });
        Var {
            value,
            node: Some(node),
        }
    }

    /// A parameter: its gradient accumulates into `param.grad`.
    pub fn param(&self, param: &Param) -> Var {
        if self.mode == Mode::Inference {
            return self.constant(param.value.clone());
        }
        let node = self.push(Node {
            shape: param.value.shape().clone(),
            inputs: vec![],
            backward: None,
            writes_first: false,
            param_grad: Some(param.grad.clone()),
        });
        Var {
            value: param.value.clone(),
            node: Some(node),
        }
    }

    /// Records an op's output. `backward` is kept only if some input needs a
    /// gradient and the tape is in training mode; otherwise it is dropped at
    /// once, freeing whatever it saved.
    pub fn record(
        &self,
        output: Tensor,
        inputs: &[&Var],
        backward: impl FnOnce(&Gpu, &Tensor, &[Option<Tensor>]) -> Result<()> + 'static,
    ) -> Var {
        self.push_op(
            output,
            inputs,
            false,
            Box::new(move |g, dy, d, _| backward(g, dy, d)),
        )
    }

    /// [`Tape::record`] for an op whose backward can *write* its first
    /// input's gradient instead of adding into it: when no other backward
    /// has touched that buffer yet, the tape hands it over unzeroed with
    /// [`GradWrite::Write`], and the op must then write every element.
    /// (bnpool, which writes the whole gradient of the conv output z; conv2d,
    /// whose backward-input writes the whole gradient of its input.)
    pub fn record_writing_first(
        &self,
        output: Tensor,
        inputs: &[&Var],
        backward: impl FnOnce(&Gpu, &Tensor, &[Option<Tensor>], GradWrite) -> Result<()> + 'static,
    ) -> Var {
        self.push_op(output, inputs, true, Box::new(backward))
    }

    fn push_op(
        &self,
        output: Tensor,
        inputs: &[&Var],
        writes_first: bool,
        backward: BackwardFn,
    ) -> Var {
        if self.mode == Mode::Inference || inputs.iter().all(|v| v.node.is_none()) {
            return self.constant(output);
        }
        let node = self.push(Node {
            shape: output.shape().clone(),
            inputs: inputs.iter().map(|v| v.node).collect(),
            backward: Some(backward),
            writes_first,
            param_grad: None,
        });
        Var {
            value: output,
            node: Some(node),
        }
    }

    /// Backward from a scalar (e.g. the loss): seeds its gradient with 1.
    pub fn backward(&self, output: &Var) -> Result<Gradients> {
        if output.value.numel() != 1 {
            return Err(Error::Shape {
                op: "backward",
                what: "backward() needs a scalar; use backward_with() and a seed gradient".into(),
                got: output.shape().clone(),
                expected: "[1]".into(),
            });
        }
        let seed = Tensor::full(self.gpu, output.shape().clone(), 1.0, "backward seed")?;
        self.backward_with(output, seed)
    }

    /// Backward from any output with a given seed gradient (vᵀJ products).
    /// Consumes the tape's nodes: each saved activation is freed as soon as
    /// its node has run.
    pub fn backward_with(&self, output: &Var, seed: Tensor) -> Result<Gradients> {
        let Some(start) = output.node else {
            return Err(Error::Config {
                what: "backward".into(),
                message: "the output does not depend on any parameter or leaf (was the tape in \
                          inference mode?)"
                    .into(),
            });
        };
        if seed.shape() != output.shape() {
            return Err(Error::Shape {
                op: "backward",
                what: "seed gradient must match the output".into(),
                got: seed.shape().clone(),
                expected: output.shape().to_string(),
            });
        }
        let mut nodes = std::mem::take(&mut *self.nodes.borrow_mut());
        let mut grads: Vec<Option<Tensor>> = vec![None; nodes.len()];
        grads[start] = Some(seed);
        let mut out = Gradients::default();

        for i in (0..=start).rev() {
            let Some(g) = grads[i].take() else { continue };
            let Some(backward) = nodes[i].backward.take() else {
                // A leaf. Parameter gradients already sit in the Param.
                if nodes[i].param_grad.is_none() {
                    out.leaves.insert(i, g);
                }
                continue;
            };
            let mut input_grads = Vec::with_capacity(nodes[i].inputs.len());
            let mut write = GradWrite::Add;
            for (k, input) in nodes[i].inputs.clone().into_iter().enumerate() {
                input_grads.push(match input {
                    None => None,
                    Some(j) => {
                        // the first input of a writing op, if no other input is the same tensor
                        let may_write = k == 0
                            && nodes[i].writes_first
                            && !nodes[i].inputs[1..].contains(&Some(j));
                        let (buffer, how) =
                            self.grad_buffer(&nodes[j], &mut grads[j], may_write)?;
                        if k == 0 {
                            write = how;
                        }
                        Some(buffer)
                    }
                });
            }
            backward(self.gpu, &g, &input_grads, write)?;
            // `g`, `input_grads` and the closure (with its saved tensors) drop
            // here, returning their buffers to the pool.
        }
        nodes.clear();
        Ok(out)
    }

    /// The buffer node `j`'s gradient accumulates into, zeroed when first used
    /// ([`GradWrite::Add`]); when first used by an op that `may_write` it,
    /// and not a parameter's, handed over unzeroed ([`GradWrite::Write`]),
    /// unless the device's tuning asks for `accumulate_gradients`.
    fn grad_buffer(
        &self,
        node: &Node,
        slot: &mut Option<Tensor>,
        may_write: bool,
    ) -> Result<(Tensor, GradWrite)> {
        if let Some(g) = slot {
            return Ok((g.clone(), GradWrite::Add));
        }
        let (g, how) = match &node.param_grad {
            Some(p) => {
                self.gpu.clear(p);
                (p.clone(), GradWrite::Add)
            }
            None if may_write && !self.gpu.tuning().accumulate_gradients => (
                Tensor::uninit(self.gpu, node.shape.clone(), "gradient")?,
                GradWrite::Write,
            ),
            None => (
                Tensor::zeros(self.gpu, node.shape.clone(), "gradient")?,
                GradWrite::Add,
            ),
        };
        *slot = Some(g.clone());
        Ok((g, how))
    }
}
