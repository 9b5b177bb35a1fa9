//! The plan: the ordered changes that take the live IPVS state to the
//! desired one.
