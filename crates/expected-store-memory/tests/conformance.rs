//! The published conformance suite, run against the memory store.

use expected_conformance::{Harness, Unreachable};
use expected_store_memory::MemoryStore;

#[derive(Default)]
struct Memory;

#[async_trait::async_trait]
impl Harness for Memory {
    type Store = MemoryStore;

    async fn store(&self) -> Result<MemoryStore, Unreachable> {
        Ok(MemoryStore::new())
    }
}

expected_conformance::tests!(Memory);
