//! (placeholder: filled by the EQL work in progress)
