//! Metrics: accuracy, the layer vote of SPEC A6, the regression score and R².

use insitu_linalg::Mat;

/// Fraction of `predictions` equal to `labels`.
pub fn accuracy(predictions: &[u32], labels: &[u32]) -> f64 {
    assert_eq!(predictions.len(), labels.len(), "accuracy: lengths differ");
    if labels.is_empty() {
        return 0.0;
    }
    predictions.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64
}

/// The network's prediction from per-layer votes (SPEC A6): the most voted class; among tied
/// classes, the one voted by the latest layer (which is "the last layer breaks the tie"
/// whenever the last layer's vote is among them).
pub fn majority_vote(per_layer: &[&Vec<u32>], n: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(n);
    let mut counts: Vec<u32> = Vec::new();
    for i in 0..n {
        counts.clear();
        for votes in per_layer {
            let c = votes[i] as usize;
            if counts.len() <= c {
                counts.resize(c + 1, 0);
            }
            counts[c] += 1;
        }
        let best = counts.iter().copied().max().unwrap_or(0);
        let winner = per_layer
            .iter()
            .rev()
            .map(|v| v[i])
            .find(|&c| counts[c as usize] == best)
            .unwrap_or(0);
        out.push(winner);
    }
    out
}

/// An FF regression unit's prediction for sample `j` (SPEC A6; seed 000 eq. 7–8): the cosine
/// of its output column `z[:, j]` with the upper prototype `ξ^u` (`u`, unit length), in f64; 0
/// for a zero output.
pub fn cosine_score(z: &Mat, j: usize, u: &[f32]) -> f64 {
    let col = z.column(j);
    let norm = col.norm() as f64;
    let dot: f64 = col.iter().zip(u).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
    if norm > 0.0 {
        dot / norm
    } else {
        0.0
    }
}

/// Coefficient of determination `1 − Σ(y − ŷ)² / Σ(y − ȳ)²`, in f64.
pub fn r_squared(predictions: &[f64], targets: &[f64]) -> f64 {
    assert_eq!(predictions.len(), targets.len(), "r_squared: lengths differ");
    let n = targets.len() as f64;
    let mean = targets.iter().sum::<f64>() / n;
    let ss_tot: f64 = targets.iter().map(|y| (y - mean).powi(2)).sum();
    let ss_res: f64 = predictions.iter().zip(targets).map(|(p, y)| (y - p).powi(2)).sum();
    1.0 - ss_res / ss_tot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_majority_and_ties() {
        // 3 layers; sample 0: clear majority 2; sample 1: all differ → last layer (7);
        // sample 2: tie between 1 and 4 (two votes each, 4 layers) → latest layer voting for one of them.
        let l0 = vec![2, 5, 1];
        let l1 = vec![2, 6, 4];
        let l2 = vec![3, 7, 1];
        let l3 = vec![2, 7, 4];
        assert_eq!(majority_vote(&[&l0, &l1, &l2], 3), vec![2, 7, 1]);
        assert_eq!(majority_vote(&[&l0, &l1, &l2, &l3], 3), vec![2, 7, 4]);
        // the last layer not among the tied: [1, 1, 4, 4, 9] → 4 (voted by layer 3, later than layer 1)
        let v: Vec<Vec<u32>> = [1u32, 1, 4, 4, 9].iter().map(|&c| vec![c]).collect();
        let refs: Vec<&Vec<u32>> = v.iter().collect();
        assert_eq!(majority_vote(&refs, 1), vec![4]);
    }

    #[test]
    fn r2_and_accuracy() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 4]), 0.75);
        let y = [1.0, 2.0, 3.0];
        assert!((r_squared(&y, &y) - 1.0).abs() < 1e-15);
        assert!(r_squared(&[2.0, 2.0, 2.0], &y).abs() < 1e-15);
    }
}
