//! nf_tables byte fixtures (tests/fixtures/netlink/nft-*.hex).
