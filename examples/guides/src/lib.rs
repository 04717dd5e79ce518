//! The guides' code, compiled: every `rust` block of the root `README.md`
//! and of `docs/migrating.md` is a doctest of this crate (`cargo test -p
//! expected-guides --doc`), built with every adapter and store the guides
//! use. Blocks marked `ignore` are other crates' code, shown for comparison.
//!
//! Nothing here is published: the guides live in the repository, and each
//! published crate compiles its own README.

#![forbid(unsafe_code)]

/// The README's examples: the quick start must stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct Readme;

/// The migration guide's worked examples (our side of each).
#[cfg(doctest)]
#[doc = include_str!("../../../docs/migrating.md")]
pub struct Migrating;
