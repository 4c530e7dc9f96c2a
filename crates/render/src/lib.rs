//! Configuration resolution, manifest templating, image discovery and image rewriting.
