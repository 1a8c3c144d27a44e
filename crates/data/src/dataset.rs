//! The in-memory data set types, column gathering, seeded mini-batch orders and seeded splits.

use crate::random::{domain_stream, shuffle, DOMAIN_BATCHES, DOMAIN_SPLIT};
use crate::{DataError, Mat};
use insitu_linalg::{set_shape, Par};
use rayon::prelude::*;

/// What a data set's samples are labelled with.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class indices `0..num_classes`, one per sample.
    Classes {
        /// One label per sample.
        labels: Vec<u32>,
        /// The number of classes (every label is below it).
        num_classes: usize,
    },
    /// Real-valued targets, `outputs × n` (one sample per column).
    Values(Mat),
}

impl Targets {
    /// Number of samples labelled.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(m) => m.ncols(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One split of a data set: inputs as a `features × n` matrix (one sample per **column**; the
/// storage is column-major, so a sample is contiguous) and its targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `features × n` inputs.
    pub inputs: Mat,
    /// One target per sample (column of `inputs`).
    pub targets: Targets,
}

/// A training split and a test split of one task.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTest {
    /// The split training uses.
    pub train: Dataset,
    /// The split accuracy / R² is reported on.
    pub test: Dataset,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inputs.ncols()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of input features (rows of `inputs`; 784 for the image sets).
    pub fn features(&self) -> usize {
        self.inputs.nrows()
    }

    /// The class labels, for a classification set.
    pub fn labels(&self) -> Option<&[u32]> {
        match &self.targets {
            Targets::Classes { labels, .. } => Some(labels),
            Targets::Values(_) => None,
        }
    }

    /// The label of sample `j`, for a classification set with at least `j + 1` samples.
    pub fn label(&self, j: usize) -> Option<u32> {
        self.labels().and_then(|l| l.get(j).copied())
    }

    /// The number of classes, for a classification set.
    pub fn num_classes(&self) -> Option<usize> {
        match &self.targets {
            Targets::Classes { num_classes, .. } => Some(*num_classes),
            Targets::Values(_) => None,
        }
    }

    /// The `outputs × n` target matrix, for a regression set.
    pub fn values(&self) -> Option<&Mat> {
        match &self.targets {
            Targets::Values(m) => Some(m),
            Targets::Classes { .. } => None,
        }
    }

    /// The first `n` samples (all of them if `n ≥ len`). Does not copy the kept samples.
    pub fn take_first(self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let inputs = self.inputs.resize_horizontally(n, 0.0);
        let targets = match self.targets {
            Targets::Classes {
                mut labels,
                num_classes,
            } => {
                labels.truncate(n);
                Targets::Classes { labels, num_classes }
            }
            Targets::Values(m) => Targets::Values(m.resize_horizontally(n, 0.0)),
        };
        Dataset { inputs, targets }
    }

    /// A copy of the first `n` samples (all of them if `n ≥ len`), copying only those.
    pub fn first(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let targets = match &self.targets {
            Targets::Classes { labels, num_classes } => Targets::Classes {
                labels: labels[..n].to_vec(),
                num_classes: *num_classes,
            },
            Targets::Values(m) => Targets::Values(m.columns(0, n).into_owned()),
        };
        Dataset {
            inputs: self.inputs.columns(0, n).into_owned(),
            targets,
        }
    }

    /// The images average-pooled over `factor × factor` blocks: every sample is read as a
    /// `side × side` image stored row by row (MNIST's order), and becomes a
    /// `(side/factor)²`-pixel image in the same order, each pixel the mean of its block. Seed
    /// 000's photonic network takes 7 × 7 or 14 × 14 average-pooled MNIST images for quick
    /// runs (SPEC A9); `factor = 1` copies the set.
    ///
    /// Errors when the inputs are not `side²` features or `factor` does not divide `side`.
    pub fn average_pooled(&self, side: usize, factor: usize) -> Result<Dataset, DataError> {
        if factor == 0 || side == 0 || !side.is_multiple_of(factor) {
            return Err(DataError::InvalidArgument(format!(
                "average pooling by {factor}: the factor must divide the image side {side}"
            )));
        }
        if self.features() != side * side {
            return Err(DataError::InvalidArgument(format!(
                "average pooling: {} features per sample are not a {side} × {side} image",
                self.features()
            )));
        }
        let out_side = side / factor;
        let scale = 1.0 / (factor * factor) as f32;
        let mut inputs = Mat::zeros(out_side * out_side, self.len());
        for (src, dst) in self
            .inputs
            .as_slice()
            .chunks_exact(side * side)
            .zip(inputs.as_mut_slice().chunks_exact_mut(out_side * out_side))
        {
            for (r, row) in src.chunks_exact(side).enumerate() {
                let out_row = &mut dst[(r / factor) * out_side..][..out_side];
                for (c, &v) in row.iter().enumerate() {
                    out_row[c / factor] += v;
                }
            }
            for v in dst.iter_mut() {
                *v *= scale;
            }
        }
        Ok(Dataset {
            inputs,
            targets: self.targets.clone(),
        })
    }

    /// The samples at positions `idx` (in that order; repeats allowed). Errors if an index is out
    /// of range.
    pub fn select(&self, idx: &[usize]) -> Result<Dataset, DataError> {
        if let Some(&bad) = idx.iter().find(|&&j| j >= self.len()) {
            return Err(DataError::InvalidArgument(format!(
                "sample index {bad} out of range 0..{}",
                self.len()
            )));
        }
        let mut inputs = Mat::zeros(0, 0);
        gather_columns(&self.inputs, idx, &mut inputs);
        let targets = match &self.targets {
            Targets::Classes { labels, num_classes } => Targets::Classes {
                labels: idx.iter().map(|&j| labels[j]).collect(),
                num_classes: *num_classes,
            },
            Targets::Values(m) => {
                let mut v = Mat::zeros(0, 0);
                gather_columns(m, idx, &mut v);
                Targets::Values(v)
            }
        };
        Ok(Dataset { inputs, targets })
    }

    /// Keeps only the samples of the classes in `keep` and relabels them `0..keep.len()` in the
    /// order given (seed 002's nonlinear MNIST uses `[0, 2, 4, 6, 8]` → labels 0..5). Sample
    /// order is preserved. Errors on a regression set, an empty list, a repeated class or a
    /// class outside `0..num_classes`.
    pub fn filter_classes(self, keep: &[u32]) -> Result<Dataset, DataError> {
        let Targets::Classes { labels, num_classes } = &self.targets else {
            return Err(DataError::InvalidArgument(
                "filter_classes needs a classification data set".into(),
            ));
        };
        if keep.is_empty() {
            return Err(DataError::InvalidArgument("filter_classes: no class to keep".into()));
        }
        let mut new_label = vec![u32::MAX; *num_classes];
        for (k, &c) in keep.iter().enumerate() {
            let slot = new_label.get_mut(c as usize).ok_or_else(|| {
                DataError::InvalidArgument(format!("filter_classes: class {c} is not below {num_classes}"))
            })?;
            if *slot != u32::MAX {
                return Err(DataError::InvalidArgument(format!(
                    "filter_classes: class {c} listed twice"
                )));
            }
            *slot = k as u32;
        }
        let idx: Vec<usize> = (0..labels.len())
            .filter(|&j| new_label[labels[j] as usize] != u32::MAX)
            .collect();
        let mut inputs = Mat::zeros(0, 0);
        gather_columns(&self.inputs, &idx, &mut inputs);
        let labels = idx.iter().map(|&j| new_label[labels[j] as usize]).collect();
        Ok(Dataset {
            inputs,
            targets: Targets::Classes {
                labels,
                num_classes: keep.len(),
            },
        })
    }
}

/// Copies the columns `idx` of `src` into `dst`, in order. `dst` is reshaped (allocating) only
/// if its shape is not `src.nrows() × idx.len()`; reusing it for equal-sized batches allocates
/// nothing. Panics if an index is out of range (a programming error: indices come from
/// [`epoch_permutation`]).
pub fn gather_columns(src: &Mat, idx: &[usize], dst: &mut Mat) {
    gather_columns_par(src, idx, dst, Par::Seq);
}

/// [`gather_columns`] with the copy split into fixed blocks of 64 columns that run on rayon's
/// pool when `par` allows (a mini-batch gather from a large data set is memory-bound, and it
/// sits on every training step's critical path). The result is the same for any `par`.
pub fn gather_columns_par(src: &Mat, idx: &[usize], dst: &mut Mat, par: Par) {
    const BLOCK: usize = 64;
    let rows = src.nrows();
    // Keep the buffer: an epoch's shorter last batch and the next full one reuse it.
    set_shape(dst, rows, idx.len());
    if rows == 0 {
        return;
    }
    let s = src.as_slice();
    dst.as_mut_slice()
        .par_chunks_mut(rows * BLOCK)
        .zip(idx.par_chunks(BLOCK))
        .with_min_len(par.min_blocks_per_job())
        .for_each(|(block, idx)| {
            for (d, &j) in block.chunks_exact_mut(rows).zip(idx) {
                d.copy_from_slice(&s[j * rows..(j + 1) * rows]);
            }
        });
}

/// Copies `labels[idx]` into `out` (cleared first; no allocation once `out` has the capacity).
pub fn gather_labels(labels: &[u32], idx: &[usize], out: &mut Vec<u32>) {
    out.clear();
    out.extend(idx.iter().map(|&j| labels[j]));
}

/// Writes into `out` (cleared first) the sample order of epoch `epoch` of a run with seed
/// `seed`: a uniformly random permutation of `0..n`, drawn from its own stream
/// (`substream(domain_seed(seed, DOMAIN_BATCHES), epoch)`), so it depends on `(seed, epoch, n)`
/// only — not on other draws, earlier epochs or thread count.
///
/// Mini-batches are consecutive chunks: `out.chunks(batch)`. When `batch` does not divide `n`,
/// the **last batch of each epoch is smaller** (`n % batch` samples); every sample is seen
/// exactly once per epoch. Reuse `out` across epochs to avoid allocating.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64, out: &mut Vec<usize>) {
    out.clear();
    out.extend(0..n);
    shuffle(&mut domain_stream(seed, DOMAIN_BATCHES, epoch), out);
}

/// Splits a data set into `n_train` training samples and the rest as test samples, drawn with
/// a seeded shuffle (stream `substream(domain_seed(seed, DOMAIN_SPLIT), 0)`).
///
/// For a classification set the split is **stratified**: each class contributes
/// `n_train · n_c / n` training samples, rounded by largest remainder (ties to the lower
/// class), so Iris's 120/30 split takes 40 of each species. Within each split the samples are in
/// shuffled order. Errors if `n_train > len`.
pub fn iris_split(ds: Dataset, n_train: usize, seed: u64) -> Result<TrainTest, DataError> {
    let n = ds.len();
    if n_train > n {
        return Err(DataError::InvalidArgument(format!(
            "split of {n_train} training samples out of {n}"
        )));
    }
    let mut rng = domain_stream(seed, DOMAIN_SPLIT, 0);
    let (mut train_idx, mut test_idx) = match &ds.targets {
        Targets::Classes { labels, num_classes } => {
            let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); *num_classes];
            for (j, &l) in labels.iter().enumerate() {
                by_class[l as usize].push(j);
            }
            // Largest-remainder apportionment of n_train over the classes.
            let quota: Vec<(usize, usize)> = by_class
                .iter()
                .map(|c| (n_train * c.len() / n, n_train * c.len() % n))
                .collect();
            let mut take: Vec<usize> = quota.iter().map(|q| q.0).collect();
            let mut order: Vec<usize> = (0..by_class.len()).collect();
            order.sort_by_key(|&c| (std::cmp::Reverse(quota[c].1), c));
            let missing = n_train - take.iter().sum::<usize>();
            for &c in order.iter().take(missing) {
                take[c] += 1;
            }
            let (mut tr, mut te) = (Vec::new(), Vec::new());
            for (c, members) in by_class.iter_mut().enumerate() {
                shuffle(&mut rng, members);
                tr.extend_from_slice(&members[..take[c]]);
                te.extend_from_slice(&members[take[c]..]);
            }
            (tr, te)
        }
        Targets::Values(_) => {
            let mut all: Vec<usize> = (0..n).collect();
            shuffle(&mut rng, &mut all);
            let te = all.split_off(n_train);
            (all, te)
        }
    };
    shuffle(&mut rng, &mut train_idx);
    shuffle(&mut rng, &mut test_idx);
    Ok(TrainTest {
        train: ds.select(&train_idx)?,
        test: ds.select(&test_idx)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize, classes: usize) -> Dataset {
        // Feature rows encode the sample index so moves are traceable.
        let inputs = Mat::from_fn(2, n, |i, j| (10 * j + i) as f32);
        let labels = (0..n).map(|j| (j % classes) as u32).collect();
        Dataset {
            inputs,
            targets: Targets::Classes {
                labels,
                num_classes: classes,
            },
        }
    }

    fn origin(ds: &Dataset, col: usize) -> usize {
        (ds.inputs[(0, col)] / 10.0) as usize
    }

    #[test]
    fn average_pooling_is_the_block_mean_in_row_order() {
        // Three 6 × 6 images with distinct pixels, pooled by 1, 2, 3 and 6 against the
        // definition written out per output pixel.
        let side = 6;
        let inputs = Mat::from_fn(side * side, 3, |i, j| ((i * 7 + j * 13) % 17) as f32 / 16.0);
        let ds = Dataset {
            inputs,
            targets: Targets::Classes {
                labels: vec![0, 1, 2],
                num_classes: 3,
            },
        };
        for factor in [1, 2, 3, 6] {
            let pooled = ds.average_pooled(side, factor).unwrap();
            let out = side / factor;
            assert_eq!((pooled.features(), pooled.len()), (out * out, 3));
            assert_eq!(pooled.labels(), ds.labels());
            for j in 0..3 {
                for (r, c) in (0..out).flat_map(|r| (0..out).map(move |c| (r, c))) {
                    let mut sum = 0.0f64;
                    for (dr, dc) in (0..factor).flat_map(|a| (0..factor).map(move |b| (a, b))) {
                        sum += ds.inputs[((r * factor + dr) * side + c * factor + dc, j)] as f64;
                    }
                    let want = sum / (factor * factor) as f64;
                    let got = pooled.inputs[(r * out + c, j)] as f64;
                    assert!(
                        (got - want).abs() < 1e-6,
                        "factor {factor} ({r}, {c}) of {j}: {got} vs {want}"
                    );
                }
            }
        }
        assert_eq!(ds.average_pooled(side, 1).unwrap(), ds);
        for (side, factor) in [(6, 4), (6, 0), (5, 5)] {
            let e = ds.average_pooled(side, factor).unwrap_err().to_string();
            assert!(e.contains("average pooling"), "{e}");
        }
    }

    #[test]
    fn take_first_keeps_a_prefix() {
        let ds = toy(7, 3).take_first(4);
        assert_eq!((ds.features(), ds.len()), (2, 4));
        assert_eq!(ds.inputs, Mat::from_fn(2, 4, |i, j| (10 * j + i) as f32));
        assert_eq!(ds.labels().unwrap(), &[0, 1, 2, 0]);
        assert_eq!(toy(3, 3).take_first(10).len(), 3);
        let reg = Dataset {
            inputs: Mat::zeros(1, 5),
            targets: Targets::Values(Mat::from_fn(1, 5, |_, j| j as f32)),
        };
        assert_eq!(reg.take_first(2).values().unwrap().as_slice(), &[0.0, 1.0]);
    }

    #[test]
    fn first_copies_the_same_prefix_as_take_first() {
        let ds = toy(7, 3);
        for n in [0, 4, 7, 10] {
            assert_eq!(ds.first(n), ds.clone().take_first(n), "n = {n}");
        }
        let reg = Dataset {
            inputs: Mat::from_fn(1, 5, |_, j| -(j as f32)),
            targets: Targets::Values(Mat::from_fn(1, 5, |_, j| j as f32)),
        };
        assert_eq!(reg.first(2), reg.clone().take_first(2));
    }

    #[test]
    fn filter_classes_relabels_in_given_order() {
        let ds = toy(10, 5).filter_classes(&[4, 0]).unwrap();
        // Kept samples, in their original order: 0 (class 0), 4 (class 4), 5 (0), 9 (4).
        let kept: Vec<usize> = (0..ds.len()).map(|c| origin(&ds, c)).collect();
        assert_eq!(kept, [0, 4, 5, 9]);
        assert_eq!(ds.labels().unwrap(), &[1, 0, 1, 0]);
        assert_eq!(ds.num_classes(), Some(2));
        assert!(toy(4, 2).filter_classes(&[0, 0]).is_err());
        assert!(toy(4, 2).filter_classes(&[2]).is_err());
        assert!(toy(4, 2).filter_classes(&[]).is_err());
    }

    #[test]
    fn gather_columns_copies_and_reuses() {
        let src = Mat::from_fn(3, 5, |i, j| (i + 10 * j) as f32);
        let mut dst = Mat::zeros(0, 0);
        gather_columns(&src, &[4, 0, 4], &mut dst);
        assert_eq!(dst, Mat::from_fn(3, 3, |i, k| src[(i, [4, 0, 4][k])]));
        let ptr = dst.as_slice().as_ptr();
        gather_columns(&src, &[1, 2, 3], &mut dst);
        assert_eq!(dst.as_slice().as_ptr(), ptr, "same-shaped reuse must not reallocate");
        assert_eq!(dst.column(0), src.column(1));
        let mut labels = Vec::new();
        gather_labels(&[5, 6, 7], &[2, 2, 0], &mut labels);
        assert_eq!(labels, [7, 7, 5]);
    }

    #[test]
    fn epoch_permutations_are_seeded_permutations() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        epoch_permutation(1000, 7, 3, &mut a);
        epoch_permutation(1000, 7, 3, &mut b);
        assert_eq!(a, b);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        epoch_permutation(1000, 7, 4, &mut b);
        assert_ne!(a, b);
        epoch_permutation(1000, 8, 3, &mut b);
        assert_ne!(a, b);
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        epoch_permutation(0, 1, 1, &mut b);
        assert!(b.is_empty());
    }

    #[test]
    fn iris_split_is_stratified_disjoint_and_seeded() {
        let ds = toy(150, 3);
        let tt = iris_split(ds.clone(), 120, 1).unwrap();
        assert_eq!((tt.train.len(), tt.test.len()), (120, 30));
        for c in 0..3 {
            assert_eq!(tt.train.labels().unwrap().iter().filter(|&&l| l == c).count(), 40);
        }
        let mut seen: Vec<usize> = (0..120)
            .map(|c| origin(&tt.train, c))
            .chain((0..30).map(|c| origin(&tt.test, c)))
            .collect();
        // Labels travel with their samples.
        for c in 0..120 {
            assert_eq!(tt.train.label(c).unwrap() as usize, origin(&tt.train, c) % 3);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..150).collect::<Vec<_>>());
        assert_eq!(iris_split(ds.clone(), 120, 1).unwrap(), tt);
        assert_ne!(iris_split(ds.clone(), 120, 2).unwrap(), tt);
        assert!(iris_split(ds.clone(), 151, 1).is_err());
        // Largest remainder: 7 of 3 equal classes → 3, 2, 2.
        let small = iris_split(toy(9, 3), 7, 0).unwrap();
        let count = |c| small.train.labels().unwrap().iter().filter(|&&l| l == c).count();
        assert_eq!((count(0), count(1), count(2)), (3, 2, 2));
    }
}
