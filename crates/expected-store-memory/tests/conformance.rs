//! The published conformance suite, run against the memory store.

use expected_conformance::{Harness, RollbackHarness, Unreachable};
use expected_store_memory::{MemorySnapshot, MemoryStore};

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

#[async_trait::async_trait]
impl RollbackHarness for Memory {
    type Snapshot = MemorySnapshot;

    async fn snapshot(&self, store: &MemoryStore) -> Result<MemorySnapshot, Unreachable> {
        Ok(store.snapshot())
    }

    async fn restore(&self, store: &MemoryStore, snapshot: &MemorySnapshot) -> Result<(), Unreachable> {
        store.restore(snapshot);
        Ok(())
    }
}

expected_conformance::rollback_tests!(Memory);
