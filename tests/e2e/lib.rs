//! The package exists for its end-to-end tests (tests/e2e/main.rs); it has no code of its own.
