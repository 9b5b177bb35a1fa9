//! Kernel IPVS over generic netlink.
