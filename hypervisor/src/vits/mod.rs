//! The virtual ITS (to be built: issue 5).
#![forbid(unsafe_code)]
