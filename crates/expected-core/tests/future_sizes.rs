//! The futures every authenticated request holds stay small.
//!
//! An adapter's handler future holds the exchange's question inline, and
//! axum boxes it per request: when the engine's whole state machine was part
//! of it (the cookie login's paths included), a session hit allocated and
//! copied a 5 KB future, above the allocator's per-thread cache (glibc's
//! largest tcache class is 1 032 bytes), and paid for that in `memcpy` and
//! `malloc_consolidate` (docs/benchmarks.md, "Fourth step"). The cold paths
//! are boxed where they start; these bounds keep them so.

use std::sync::Arc;

use expected_core::cookies::PresentedCookies;
use expected_core::{AuthHandle, ClientMeta, Config, Exchange, Expected, Presented};
use expected_store_memory::MemoryStore;

/// Below glibc's largest tcache class, with room to spare.
const AUTHENTICATE_BOUND: usize = 1_000;
/// A question's own state (the authentication boxed below it), or the
/// adapter's last call, which saves the session: each is part of a future
/// boxed per request, which must stay below that class too.
const QUESTION_BOUND: usize = 640;
/// A guard's question, which an API guard's extractor holds inside the
/// handler future axum boxes (1 080 bytes for `AuthUser` on the twin when
/// the guard held room for both questions and `require_user` read the
/// state twice: above the tcache class).
const GUARD_BOUND: usize = 400;

#[test]
fn the_session_hit_path_holds_small_futures() {
    let engine = Arc::new(Expected::new(MemoryStore::new(), Config::default()).into_dyn());
    let presented =
        Presented { session: Default::default(), auth: Default::default(), client: Default::default() };
    let authenticate = engine.authenticate(&presented);
    let size = std::mem::size_of_val(&authenticate);
    assert!(size <= AUTHENTICATE_BOUND, "Expected::authenticate's future is {size} bytes");
    drop(authenticate);

    let exchange = Arc::new(Exchange::new(engine, PresentedCookies::default(), ClientMeta::new(None, None)));
    let sizes = [
        ("current_user", std::mem::size_of_val(&exchange.current_user())),
        ("require_user", std::mem::size_of_val(&exchange.require_user())),
        ("conclude", std::mem::size_of_val(&exchange.conclude())),
    ];
    for (question, size) in sizes {
        assert!(size <= QUESTION_BOUND, "Exchange::{question}'s future is {size} bytes");
    }
    let auth = AuthHandle::new(exchange);
    let size = std::mem::size_of_val(&auth.is_fresh(std::time::Duration::from_secs(600)));
    assert!(size <= QUESTION_BOUND, "AuthHandle::is_fresh's future is {size} bytes");
}

/// An API guard asks through `ask_user` or `ask_fresh`, each holding one
/// question: the handler future axum boxes holds it, the request's parts
/// (224 bytes) and the handler's own state.
#[cfg(feature = "http")]
#[test]
fn a_guard_holds_one_question() {
    let engine = Arc::new(Expected::new(MemoryStore::new(), Config::default()).into_dyn());
    let exchange = Exchange::new(engine, PresentedCookies::default(), ClientMeta::new(None, None));
    let guards = expected_core::guard::Guards::default();
    let sizes = [
        ("ask_user", std::mem::size_of_val(&guards.ask_user(&exchange))),
        ("ask_fresh", std::mem::size_of_val(&guards.ask_fresh(&exchange))),
    ];
    for (question, size) in sizes {
        assert!(size <= GUARD_BOUND, "Guards::{question}'s future is {size} bytes");
    }
}
