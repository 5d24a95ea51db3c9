//! Fused element-wise chains for the generated models (see `build/fuse.rs`).
//!
//! The build step replaces a chain of scalar element-wise statements (affine, hard-swish,
//! clamp, …) rooted at one tensor with a call to [`map`]. On the CPU backend the chain runs
//! as one parallel pass over the tensor's storage, in place when the tensor is not shared;
//! on any other device (CUDA) the original statements run unchanged. Both paths perform the
//! same IEEE operations in the same order, so their results are bit-identical.

use burn::tensor::{DType, Device, Tensor};
use burn_flex::Flex;
use rayon::prelude::*;

/// Elements per parallel task: large enough to amortise scheduling, small enough to split
/// the first layers' planes across cores.
const CHUNK: usize = 16 * 1024;

/// Runs `scalar` over every element of `root` (with the chain's scalar constants as `k`) on
/// the CPU backend, or `original` (the generated statements) anywhere else.
pub fn map<const D: usize>(
    root: Tensor<D>,
    constants: &[Tensor<1>],
    scalar: impl Fn(f32, &[f32]) -> f32 + Sync,
    original: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    if root.device() != Device::flex() || root.dtype() != DType::F32 {
        return original(root);
    }
    let mut k = Vec::with_capacity(constants.len());
    for c in constants {
        if c.shape().num_elements() != 1 || c.dtype() != DType::F32 {
            return original(root);
        }
        k.push(c.clone().into_scalar::<f32>());
    }
    let mut primitive = match root.clone().try_into_primitive::<Flex>() {
        Ok(p) => p,
        Err(_) => return original(root),
    };
    let Some((start, end)) = primitive.layout().contiguous_offsets() else {
        return original(root);
    };
    drop(root); // the primitive is now the only handle unless the caller kept a clone
    let values = &mut primitive.storage_mut::<f32>()[start..end];
    values
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = scalar(*v, &k)));
    Tensor::from_primitive::<Flex>(primitive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn hard_swish_chain(x: Tensor<4>, k: [Tensor<1>; 4]) -> Tensor<4> {
        let [a, b, three, six] = k;
        let y = a.unsqueeze_dims::<4>(&[0, 1, 2]).mul(x);
        let y = y.add(b.unsqueeze_dims::<4>(&[0, 1, 2]));
        let t = y.clone().add(three.unsqueeze_dims::<4>(&[0, 1, 2]));
        let t = t.clamp(0f64, 6f64);
        y.mul(t).div(six.unsqueeze_dims::<4>(&[0, 1, 2]))
    }

    fn scalar(v: f32) -> Tensor<1> {
        Tensor::from_data(TensorData::from([v]), &Device::flex())
    }

    #[test]
    fn cpu_pass_is_bit_identical_to_the_original_statements() {
        let device = Device::flex();
        let n = 2 * 7 * 33 * 65;
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 2003) as f32 / 97.0 - 10.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [2, 7, 33, 65]), &device);
        let consts = || [scalar(0.73), scalar(-0.41), scalar(3.0), scalar(6.0)];

        let expected = hard_swish_chain(x.clone(), consts()).into_data();
        // A shared root (the clone above) takes the copy-on-write path…
        let shared = map(
            x.clone(),
            &consts(),
            |x, k| {
                let y = k[0] * x + k[1];
                y * (y + k[2]).clamp(0.0, 6.0) / k[3]
            },
            |_| unreachable!("the CPU backend takes the fused path"),
        );
        // …and a unique one is rewritten in place.
        let unique = map(
            x,
            &consts(),
            |x, k| {
                let y = k[0] * x + k[1];
                y * (y + k[2]).clamp(0.0, 6.0) / k[3]
            },
            |_| unreachable!("the CPU backend takes the fused path"),
        );
        let expected = expected.try_to_vec::<f32>().unwrap();
        for got in [shared.into_data(), unique.into_data()] {
            let got = got.try_to_vec::<f32>().unwrap();
            assert_eq!(got.len(), expected.len());
            assert!(
                got.iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "fused values differ from the composed operations"
            );
        }
    }

    #[test]
    fn non_scalar_constants_fall_back() {
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![1f32, 2., 3., 4.], [2, 2]),
            &Device::flex(),
        );
        let wide = Tensor::<1>::from_data(TensorData::from([1f32, 2.]), &Device::flex());
        let out = map(x, &[wide], |_, _| f32::NAN, |x| x.mul_scalar(2.0));
        assert_eq!(
            out.into_data().try_to_vec::<f32>().unwrap(),
            vec![2., 4., 6., 8.]
        );
    }
}
