//! The cluster apply engine.
