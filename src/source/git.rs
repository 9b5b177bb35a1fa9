//! A config tree from a Git commit, read with gix without a checkout.
