//! Where the engine's secrets come from.

use expected_core::{ChaChaTokens, Config, Expected};
use expected_store_memory::MemoryStore;

/// `Expected::new` draws every secret from the operating system
/// (`OsTokens`), not from a generator seeded once per process, which a
/// `fork()` after building the engine would duplicate into both children
/// (the unit tests of `secret` show the difference). `with_tokens` still
/// swaps in a deterministic source for tests.
#[test]
fn the_default_engine_draws_from_the_os() {
    let engine = Expected::new(MemoryStore::new(), Config::default());
    let shown = format!("{engine:?}");
    assert!(shown.contains("tokens: \"expected_core::secret::OsTokens\""), "{shown}");

    let seeded = engine.with_tokens(ChaChaTokens::from_seed([1; 32]));
    let shown = format!("{seeded:?}");
    assert!(shown.contains("tokens: \"expected_core::secret::ChaChaTokens\""), "{shown}");
}
