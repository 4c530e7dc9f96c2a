//! The registry transfer engine.
