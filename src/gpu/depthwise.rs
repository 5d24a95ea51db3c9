//! Depthwise convolutions for the generated models on the CPU backend.
//!
//! PP-OCRv4's backbones (PPLCNetV3) run a depthwise 3×3 or 5×5 convolution before nearly every
//! pointwise one. In the recogniser these work on small planes (a line's feature map is 3 to
//! 24 rows high), where Burn's CPU backend spends more time per multiply than anywhere else:
//! it accumulates into the output plane in memory once per kernel tap. The build step
//! (`build/fuse.rs`) routes every generated `Conv2d` call through [`conv2d`], which takes the
//! depthwise ones on the CPU backend and computes runs of 16 outputs in registers, four runs
//! side by side, over all of their taps, from a zero-padded copy of the input plane. Each
//! output is the same sum, in the same order (taps row by row, then the bias), as the
//! backend's own kernel: the results are equal to it (a padding tap adds a zero, which
//! changes nothing but the sign of a zero sum), and so are the readings. Any other
//! convolution, or any other device, runs the original call. On this project's 2-core
//! machine it takes about 3% off a card's time (measured interleaved with the backend's
//! kernel in one process; see `benches/results/README.md`).

use burn::nn::{PaddingConfig2d, conv::Conv2d};
use burn::tensor::{DType, Device, Tensor, TensorData};
use burn_flex::Flex;
use rayon::prelude::*;

/// Outputs computed together in registers (one AVX-512 vector of f32).
const LANES: usize = 16;

/// `conv.forward(x)`, with depthwise convolutions on the CPU backend computed here in
/// optimised builds. An unoptimised build (the tests') keeps the backend's kernel, which its
/// dependencies' optimisation makes the faster one there; the two are equal (unit-tested).
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if cfg!(debug_assertions) {
        return conv.forward(x);
    }
    match Depthwise::of(conv, &x) {
        Some(plan) => plan.run(conv, &x).unwrap_or_else(|| conv.forward(x)),
        None => conv.forward(x),
    }
}

/// The shape of one depthwise convolution.
#[derive(Clone, Copy, Debug)]
struct Depthwise {
    batch: usize,
    channels: usize,
    in_h: usize,
    in_w: usize,
    k_h: usize,
    k_w: usize,
    stride_h: usize,
    stride_w: usize,
    pad_top: usize,
    pad_left: usize,
    out_h: usize,
    out_w: usize,
}

impl Depthwise {
    /// The plan for `conv` on `x`, when it is a depthwise convolution this kernel computes:
    /// one filter per channel, no dilation, explicit padding, f32 on the CPU backend.
    fn of(conv: &Conv2d, x: &Tensor<4>) -> Option<Self> {
        if x.device() != Device::flex() || x.dtype() != DType::F32 {
            return None;
        }
        let [batch, channels, in_h, in_w] = x.dims();
        let [c_out, per_group, k_h, k_w] = conv.weight.dims();
        if conv.groups != channels || c_out != channels || per_group != 1 || conv.dilation != [1, 1]
        {
            return None;
        }
        let (top, left, bottom, right) = match conv.padding {
            PaddingConfig2d::Valid => (0, 0, 0, 0),
            PaddingConfig2d::Explicit(top, left, bottom, right) => (top, left, bottom, right),
            _ => return None,
        };
        let [stride_h, stride_w] = conv.stride;
        let (padded_h, padded_w) = (in_h + top + bottom, in_w + left + right);
        if stride_h == 0 || stride_w == 0 || padded_h < k_h || padded_w < k_w {
            return None;
        }
        Some(Self {
            batch,
            channels,
            in_h,
            in_w,
            k_h,
            k_w,
            stride_h,
            stride_w,
            pad_top: top,
            pad_left: left,
            out_h: (padded_h - k_h) / stride_h + 1,
            out_w: (padded_w - k_w) / stride_w + 1,
        })
    }

    /// Runs the convolution; `None` when the storage is not laid out as expected.
    fn run(&self, conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
        let weight = on_cpu(conv.weight.val())?;
        let weights = values(&weight)?;
        let bias_storage = match &conv.bias {
            Some(b) => Some(on_cpu(b.val())?),
            None => None,
        };
        let bias = match &bias_storage {
            Some(b) => Some(values(b)?),
            None => None,
        };
        let primitive = on_cpu(x.clone())?;
        let input = values(&primitive)?;
        let plane_in = self.in_h * self.in_w;
        let plane_out = self.out_h * self.out_w;
        if input.len() != self.batch * self.channels * plane_in
            || weights.len() != self.channels * self.k_h * self.k_w
            || !weights.iter().all(|w| w.is_finite())
        {
            return None;
        }
        let device = x.device();
        let layout = Layout::of(self);
        let taps = self.k_h * self.k_w;
        let mut out = vec![0f32; self.batch * self.channels * plane_out];
        // Tasks of several planes each: one padded copy, zeroed once, serves them all (the
        // padding stays zero; each plane overwrites the inside).
        let per_task = (PLANES_PER_TASK_OUTPUTS / plane_out.max(1)).max(1);
        out.par_chunks_mut(plane_out.max(1) * per_task)
            .enumerate()
            .for_each(|(task, planes)| {
                let mut padded = vec![0f32; layout.padded_h * layout.padded_w];
                let mut sums = vec![0f32; layout.starts.len() * LANES];
                let mut weighted = vec![(0usize, 0f32); taps];
                for (i, plane) in planes.chunks_exact_mut(plane_out).enumerate() {
                    let bc = task * per_task + i;
                    let c = bc % self.channels;
                    let source = &input[bc * plane_in..(bc + 1) * plane_in];
                    for (y, row) in source.chunks_exact(self.in_w).enumerate() {
                        let at = (y + self.pad_top) * layout.padded_w + self.pad_left;
                        padded[at..at + self.in_w].copy_from_slice(row);
                    }
                    let filter = &weights[c * taps..(c + 1) * taps];
                    for ((w, &offset), &value) in
                        weighted.iter_mut().zip(&layout.offsets).zip(filter)
                    {
                        *w = (offset, value);
                    }
                    accumulate(&padded, &layout.starts, self.stride_w, &weighted, &mut sums);
                    let bias = bias.as_ref().map(|b| b[c]);
                    for (oh, target) in plane.chunks_exact_mut(self.out_w).enumerate() {
                        let row = &sums[oh * layout.runs * LANES..][..self.out_w];
                        match bias {
                            Some(b) => target.iter_mut().zip(row).for_each(|(t, &v)| *t = v + b),
                            None => target.copy_from_slice(row),
                        }
                    }
                }
            });
        let shape = [self.batch, self.channels, self.out_h, self.out_w];
        Some(Tensor::from_data(TensorData::new(out, shape), &device))
    }
}

/// Outputs per parallel task, roughly (small planes are grouped).
const PLANES_PER_TASK_OUTPUTS: usize = 8 * 1024;

/// Where a plane's runs and taps lie in its zero-padded copy (the same for every plane).
struct Layout {
    padded_h: usize,
    padded_w: usize,
    /// Runs of LANES outputs per output row.
    runs: usize,
    /// Each run's first input, row by row.
    starts: Vec<usize>,
    /// Each tap's place after a run's start, in the filter's order (row by row).
    offsets: Vec<usize>,
}

impl Layout {
    fn of(d: &Depthwise) -> Self {
        // The padded copy is wide enough for the last run's taps to stay inside it.
        let runs = d.out_w.div_ceil(LANES);
        let padded_w = ((runs * LANES - 1) * d.stride_w + d.k_w).max(d.in_w + d.pad_left);
        let padded_h = ((d.out_h - 1) * d.stride_h + d.k_h).max(d.in_h + d.pad_top);
        let starts = (0..d.out_h)
            .flat_map(|oh| (0..runs).map(move |run| (oh * d.stride_h, run)))
            .map(|(top, run)| top * padded_w + run * LANES * d.stride_w)
            .collect();
        let offsets = (0..d.k_h)
            .flat_map(|kh| (0..d.k_w).map(move |kw| kh * padded_w + kw))
            .collect();
        Self {
            padded_h,
            padded_w,
            runs,
            starts,
            offsets,
        }
    }
}

super::vector::vectorised! {
    /// Runs of LANES outputs into `sums` (LANES per entry of `starts`): each output the sum
    /// over `taps` (offset from its run's start, weight), in their order, of input times
    /// weight.
    fn accumulate(
        padded: &[f32],
        starts: &[usize],
        stride_w: usize,
        taps: &[(usize, f32)],
        sums: &mut [f32],
    ) = accumulate_body;
}

/// Runs computed BLOCK at a time: each output's sum is one chain of dependent additions,
/// and independent runs side by side keep the vector units busy while each chain waits.
const BLOCK: usize = 4;

/// The arithmetic of [`accumulate`].
#[inline(always)]
fn accumulate_body(
    padded: &[f32],
    starts: &[usize],
    stride_w: usize,
    taps: &[(usize, f32)],
    sums: &mut [f32],
) {
    let whole = starts.len() / BLOCK * BLOCK;
    for (b, block) in starts[..whole].chunks_exact(BLOCK).enumerate() {
        let block: &[usize; BLOCK] = block.try_into().expect("a whole block");
        let out = &mut sums[b * BLOCK * LANES..(b + 1) * BLOCK * LANES];
        if stride_w == 1 {
            contiguous_block(padded, block, taps, out);
        } else {
            run_block(padded, block, stride_w, taps, out);
        }
    }
    for (j, &start) in starts[whole..].iter().enumerate() {
        let at = (whole + j) * LANES;
        run_block(padded, &[start], stride_w, taps, &mut sums[at..at + LANES]);
    }
}

/// BLOCK runs of LANES outputs whose inputs lie side by side (stride 1 across): the same
/// arithmetic as [`run_block`], with each run's sums held in a variable of its own so that
/// they stay in registers.
#[inline(always)]
fn contiguous_block(
    padded: &[f32],
    starts: &[usize; BLOCK],
    taps: &[(usize, f32)],
    out: &mut [f32],
) {
    let run = |at: usize| -> &[f32; LANES] {
        padded[at..at + LANES]
            .try_into()
            .expect("the padded plane holds the run")
    };
    let step = |acc: &mut [f32; LANES], src: &[f32; LANES], w: f32| {
        for i in 0..LANES {
            acc[i] += src[i] * w;
        }
    };
    let [s0, s1, s2, s3] = *starts;
    let (mut a0, mut a1, mut a2, mut a3) =
        ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
    for &(offset, w) in taps {
        step(&mut a0, run(s0 + offset), w);
        step(&mut a1, run(s1 + offset), w);
        step(&mut a2, run(s2 + offset), w);
        step(&mut a3, run(s3 + offset), w);
    }
    for (r, a) in [a0, a1, a2, a3].iter().enumerate() {
        out[r * LANES..(r + 1) * LANES].copy_from_slice(a);
    }
}

/// R runs of LANES outputs: a multiply and an add per tap, never fused, as in the backend's
/// kernel.
#[inline(always)]
fn run_block<const R: usize>(
    padded: &[f32],
    starts: &[usize; R],
    stride_w: usize,
    taps: &[(usize, f32)],
    out: &mut [f32],
) {
    let mut acc = [[0f32; LANES]; R];
    for &(offset, w) in taps {
        for (a, &start) in acc.iter_mut().zip(starts) {
            let at = start + offset;
            if stride_w == 1 {
                let src: &[f32; LANES] = padded[at..at + LANES]
                    .try_into()
                    .expect("the padded plane holds the run");
                for i in 0..LANES {
                    a[i] += src[i] * w;
                }
            } else {
                for (i, v) in a.iter_mut().enumerate() {
                    *v += padded[at + i * stride_w] * w;
                }
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        out[r * LANES..(r + 1) * LANES].copy_from_slice(a);
    }
}

/// A tensor's storage on the CPU backend, when it is f32 there.
fn on_cpu<const D: usize>(t: Tensor<D>) -> Option<burn_flex::FlexTensor> {
    if t.dtype() != DType::F32 {
        return None;
    }
    t.try_into_primitive::<Flex>().ok()
}

/// The values of a tensor's storage, when they lie contiguously (borrowed, not copied).
fn values(t: &burn_flex::FlexTensor) -> Option<&[f32]> {
    let (start, end) = t.layout().contiguous_offsets()?;
    Some(&t.storage::<f32>()[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;

    fn conv(channels: usize, k: [usize; 2], stride: [usize; 2], pad: [usize; 4]) -> Conv2d {
        Conv2dConfig::new([channels, channels], k)
            .with_stride(stride)
            .with_groups(channels)
            .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[2], pad[3]))
            .with_bias(true)
            .init(&Device::flex())
    }

    fn input(dims: [usize; 4]) -> Tensor<4> {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 2003) as f32 / 97.0 - 10.0)
            .collect();
        Tensor::from_data(TensorData::new(data, dims), &Device::flex())
    }

    #[test]
    fn depthwise_outputs_equal_the_backends() {
        let cases = [
            // The recogniser's shapes: 5×5 on short planes, stride 2 down, 3×3 stride 2 across.
            ([2, 24, 3, 37], [5, 5], [1, 1], [2, 2, 2, 2]),
            ([1, 16, 6, 80], [5, 5], [2, 1], [2, 2, 2, 2]),
            ([3, 8, 12, 41], [3, 3], [1, 2], [1, 1, 1, 1]),
            // The detector's: large planes, stride 2 both ways, no padding at all.
            ([1, 4, 65, 97], [3, 3], [2, 2], [1, 1, 1, 1]),
            ([1, 5, 9, 20], [3, 3], [1, 1], [0, 0, 0, 0]),
        ];
        for (dims, k, stride, pad) in cases {
            let c = conv(dims[1], k, stride, pad);
            let x = input(dims);
            let expected = c.forward(x.clone());
            let plan = Depthwise::of(&c, &x).expect("a depthwise convolution");
            let got = plan.run(&c, &x).expect("runs on the CPU backend");
            assert_eq!(got.dims(), expected.dims(), "{dims:?} {k:?} {stride:?}");
            let (got, expected) = (
                got.into_data().try_to_vec::<f32>().unwrap(),
                expected.into_data().try_to_vec::<f32>().unwrap(),
            );
            assert!(
                got.iter().zip(&expected).all(|(a, b)| a == b),
                "{dims:?} {k:?} {stride:?}: outputs differ from the backend's"
            );
        }
    }

    #[test]
    fn other_convolutions_are_left_to_the_backend() {
        let dense = Conv2dConfig::new([4, 8], [1, 1]).init(&Device::flex());
        assert!(Depthwise::of(&dense, &input([1, 4, 5, 5])).is_none());
        let dilated = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(4)
            .with_dilation([2, 2])
            .init(&Device::flex());
        assert!(Depthwise::of(&dilated, &input([1, 4, 9, 9])).is_none());
        // Through the public entry point the result is the backend's either way.
        let x = input([1, 4, 5, 5]);
        let same = conv2d(&dense, x.clone()).into_data();
        assert_eq!(same, dense.forward(x).into_data());
    }
}
