//! Property tests (see below).
