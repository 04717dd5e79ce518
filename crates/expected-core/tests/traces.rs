//! The engine's `tracing` output, attacked: every span and event, at TRACE
//! level with span fields on entry and close, through a tour of the whole
//! protocol (every outcome, a theft, an outage), holds no token, session id,
//! digest of either, cookie value or username; and the spans carry the
//! outcome and the user's tag.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use support::{BOB, CAROL, MALLORY, VICTIM, engine, tour, user};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Where the subscriber writes: one shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs the tour under a subscriber that keeps everything, and answers what
/// it wrote and the secrets the tour saw.
fn traced_tour() -> (String, support::Secrets) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let seen = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let (engine, store, clock) = engine();
            let seen = tour(&engine, &store, &clock).await;
            engine.clean().await.unwrap_or_else(|e| panic!("{e}"));
            seen
        })
    });
    (captured.text(), seen)
}

#[test]
fn no_secret_or_username_reaches_the_traces() {
    let (text, seen) = traced_tour();
    if std::env::var_os("SHOW_TRACES").is_some() {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
    assert!(text.lines().count() > 100, "the subscriber saw the tour:\n{text}");
    assert!(seen.0.len() > 40, "the tour saw secrets: {}", seen.0.len());
    for secret in &seen.0 {
        assert!(!text.contains(secret.as_str()), "{secret} is in the traces:\n{text}");
    }
    for name in [VICTIM, BOB, CAROL, MALLORY, support::DAVE, support::ERIN] {
        assert!(!text.contains(name), "{name} is in the traces");
        // Not even its local part.
        let local = name.split('@').next().unwrap_or(name);
        assert!(!text.contains(local), "{local} is in the traces");
    }
}

#[test]
fn spans_carry_the_outcome_and_the_users_tag() {
    let (text, _) = traced_tour();
    let victim = user(VICTIM).tag().to_string();
    let mallory = user(MALLORY).tag().to_string();
    let closed = |outcome: &str, tag: Option<&str>| {
        text.lines().any(|line| {
            line.contains("authenticate{")
                && line.contains(&format!("outcome=\"{outcome}\""))
                && tag.is_none_or(|tag| line.contains(&format!("user={tag}")))
                && line.contains(" close time.busy")
                && !line.contains("store{")
        })
    };
    for (outcome, tag) in [
        ("session", Some(victim.as_str())),
        ("cookie_login", Some(victim.as_str())),
        ("grace", Some(victim.as_str())),
        ("grace_refused", Some(victim.as_str())),
        ("theft", Some(victim.as_str())),
        ("user_rejected", Some(mallory.as_str())),
        ("anonymous", None),
        ("anonymous_session", None),
        ("malformed", None),
        ("unknown_login", None),
        ("expired_login", None),
        ("unavailable", None),
    ] {
        assert!(closed(outcome, tag), "no closed authenticate span with outcome {outcome} {tag:?}:\n{text}");
    }
    // The theft's own warning names the victim by tag, inside its span.
    assert!(
        text.lines().any(|line| line.contains("replayed remember-me cookie") && line.contains(&victim)),
        "{text}"
    );
    // Store calls: their operation, the user's tag, and how they ended.
    for (op, outcome) in [("rotate_current", "ok"), ("delete_user", "ok"), ("get_session", "unavailable")] {
        let found = text.lines().any(|line| {
            line.contains("store{")
                && line.contains(&format!("op=\"{op}\""))
                && line.contains(&format!("outcome=\"{outcome}\""))
        });
        assert!(found, "no store span {op} {outcome}:\n{text}");
    }
    assert!(text.contains(&format!("store{{op=\"rotate_current\" user={victim}")), "{text}");
}
