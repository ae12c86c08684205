//! Which cluster a route sends a request to: one, or one of several drawn
//! by weight per request (per tunnel), for canary releases.
//!
//! Input: a `[[route]]`'s `cluster = "name"` or
//! `clusters = [{ name = "v1", weight = 90 }, { name = "v2", weight = 10 }]`
//! ([`crate::config_file`] resolves the names to indexes and calls
//! [`ClusterChoice::weighted`]). Output: [`ClusterChoice::pick`], an index
//! into the cluster list, drawn by [`crate::dispatch`] once per request.
//!
//! A cluster of weight `w` takes `w / total` of the requests, each draw
//! independent (no stickiness: a client's next request may go elsewhere).
//! Weight 0 keeps a cluster listed but sends it nothing; at least one
//! weight must be above 0, and the weights must sum within `u32`.

use rand::Rng as _;
use serde::Deserialize;

/// One `{ name = "...", weight = N }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWeighted {
    pub(crate) name: String,
    pub(crate) weight: u32,
}

/// Where a route's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterChoice {
    /// Always this cluster (an index into the cluster list).
    One(usize),
    /// One of several, by weight.
    Weighted(Weighted),
}

/// Clusters with weights, checked: the sum is above 0 and fits in `u32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighted {
    /// (cluster index, weight), in file order.
    entries: Vec<(usize, u32)>,
    /// The sum of the weights.
    total: u32,
}

/// Why a list of weighted clusters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightError {
    /// `clusters = []`.
    #[error("clusters is empty")]
    Empty,
    /// Every weight is 0.
    #[error("every weight is 0: no cluster would take a request")]
    AllZero,
    /// The weights sum to more than `u32::MAX`.
    #[error("the weights sum to more than {}", u32::MAX)]
    Overflow,
    /// A cluster is listed twice.
    #[error("cluster {name:?} is listed twice")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
}

impl ClusterChoice {
    /// A weighted choice among `(cluster index, weight)`s; `names` are the
    /// clusters' names, in the same order, for errors.
    pub fn weighted(entries: Vec<(usize, u32)>, names: &[&str]) -> Result<Self, WeightError> {
        if entries.is_empty() {
            return Err(WeightError::Empty);
        }
        for (i, (cluster, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(seen, _)| seen == cluster) {
                let name = names.get(i).copied().unwrap_or_default().to_owned();
                return Err(WeightError::Duplicate { name });
            }
        }
        let total = entries
            .iter()
            .try_fold(0u32, |sum, (_, weight)| sum.checked_add(*weight))
            .ok_or(WeightError::Overflow)?;
        if total == 0 {
            return Err(WeightError::AllZero);
        }
        Ok(ClusterChoice::Weighted(Weighted { entries, total }))
    }

    /// The cluster for one request: drawn anew each call when weighted.
    pub fn pick(&self) -> usize {
        match self {
            ClusterChoice::One(cluster) => *cluster,
            ClusterChoice::Weighted(weighted) => {
                weighted.at(rand::rng().random_range(0..weighted.total))
            }
        }
    }
}

impl Weighted {
    /// The cluster whose share of `0..total` holds `point`: the first
    /// `weight` points are the first cluster's, and so on.
    fn at(&self, point: u32) -> usize {
        let mut rest = point;
        for (cluster, weight) in &self.entries {
            if rest < *weight {
                return *cluster;
            }
            rest -= weight;
        }
        // `point < total`, so the loop returned; the last listed is a
        // harmless answer should that ever change.
        self.entries.last().map_or(0, |(cluster, _)| *cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(entries: &[(usize, u32)]) -> Result<ClusterChoice, WeightError> {
        ClusterChoice::weighted(entries.to_vec(), &["a", "b", "c"])
    }

    #[test]
    fn points_map_to_clusters_by_share() {
        let ClusterChoice::Weighted(choice) = weighted(&[(2, 3), (0, 0), (1, 2)]).unwrap() else {
            panic!("weighted expected");
        };
        let picks: Vec<usize> = (0..5).map(|point| choice.at(point)).collect();
        assert_eq!(picks, [2, 2, 2, 1, 1]);
    }

    #[test]
    fn single_choice_always_picks_its_cluster() {
        assert_eq!(ClusterChoice::One(3).pick(), 3);
    }

    #[test]
    fn zero_weight_is_never_picked() {
        let choice = weighted(&[(0, 0), (1, 1)]).unwrap();
        assert!((0..1000).all(|_| choice.pick() == 1));
    }

    #[test]
    fn weights_share_draws() {
        // 10 000 draws at 1/4: mean 2500, sd √(10000·¼·¾) ≈ 43; 6 sd.
        let choice = weighted(&[(0, 1), (1, 3)]).unwrap();
        let zeros = (0..10_000).filter(|_| choice.pick() == 0).count();
        assert!((2240..=2760).contains(&zeros), "{zeros}");
    }

    #[test]
    fn bad_lists_are_refused() {
        assert_eq!(weighted(&[]), Err(WeightError::Empty));
        assert_eq!(weighted(&[(0, 0), (1, 0)]), Err(WeightError::AllZero));
        assert_eq!(
            weighted(&[(0, u32::MAX), (1, 1)]),
            Err(WeightError::Overflow)
        );
        assert_eq!(
            weighted(&[(0, 1), (1, 1), (1, 1)]),
            Err(WeightError::Duplicate {
                name: "c".to_owned()
            })
        );
        assert!(weighted(&[(0, u32::MAX)]).is_ok());
    }
}
