//! The multi-layer perceptron on tabular data (the engine's own learning
//! proof) and Glorot initialisation.

use super::*;

/// Glorot (Xavier) uniform: U(−l, l) with l = √(6 / (fan_in + fan_out)), as Keras.
pub fn glorot_uniform(rng: &mut Rng, fan_in: usize, fan_out: usize, n: usize) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    rng.vec_f32(n, -limit, limit)
}

/// A fully connected layer: y = x · w + b, w: [in, out] glorot-uniform, b zero.
pub struct DenseLayer {
    pub w: Param,
    pub b: Param,
}

impl DenseLayer {
    pub fn new(
        gpu: &Gpu,
        name: &str,
        inputs: usize,
        outputs: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        let w = Tensor::from_slice(
            gpu,
            [inputs, outputs],
            &glorot_uniform(rng, inputs, outputs, inputs * outputs),
        )?;
        let b = Tensor::zeros(gpu, [outputs], "bias")?;
        Ok(DenseLayer {
            w: Param::new(gpu, format!("{name}.kernel"), w)?,
            b: Param::new(gpu, format!("{name}.bias"), b)?,
        })
    }

    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        dense(tape, x, &tape.param(&self.w), &tape.param(&self.b))
    }

    pub fn inputs(&self) -> usize {
        self.w.value.dims()[0]
    }
}

/// Activation after a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Sigmoid,
}

/// A feed-forward network: dense layers, relu between them, sigmoid at the
/// end (multi-label probabilities).
pub struct Mlp {
    pub layers: Vec<DenseLayer>,
}

impl Mlp {
    /// `sizes` = [inputs, hidden…, outputs].
    pub fn new(gpu: &Gpu, sizes: &[usize], seed: u64) -> Result<Mlp> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::Config {
                what: "mlp".into(),
                message: format!("layer sizes must be at least [in, out], all > 0; got {sizes:?}"),
            });
        }
        let mut rng = Rng::new(seed);
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, s)| DenseLayer::new(gpu, &format!("dense_{i}"), s[0], s[1], &mut rng))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers })
    }

    /// Probabilities [batch, outputs].
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(tape, &h)?;
            let act = if i + 1 == self.layers.len() {
                Activation::Sigmoid
            } else {
                Activation::Relu
            };
            h = match act {
                Activation::Relu => relu(tape, &h)?,
                Activation::Sigmoid => sigmoid(tape, &h)?,
            };
        }
        Ok(h)
    }

    /// Forward + BCE loss.
    pub fn loss(&self, tape: &Tape, x: &Var, y: &Var) -> Result<Var> {
        let p = self.forward(tape, x)?;
        binary_cross_entropy(tape, &p, y)
    }

    pub fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|l| [&l.w, &l.b]).collect()
    }

    pub fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.value.numel()).sum()
    }
}
