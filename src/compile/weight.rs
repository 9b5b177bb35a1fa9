//! A service's `default_weight`: the weight of its backends (repo and
//! overlay) that name none, in place of the built-in default.

use crate::config::Backend;

/// `backends`, those that name no weight at `weight`.
pub(super) fn with_default_weight(backends: &[&Backend], weight: u32) -> Vec<Backend> {
    backends
        .iter()
        .map(|b| {
            let mut b = (*b).clone();
            if !b.weight_given {
                b.weight = weight;
            }
            b
        })
        .collect()
}
