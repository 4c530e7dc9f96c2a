//! End-to-end air-gap suite; see `tests/`.
