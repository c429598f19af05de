//! The lab (to be written).
