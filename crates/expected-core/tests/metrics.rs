//! The engine's metrics (feature `metrics`), read back from a real
//! Prometheus recorder after a tour of the protocol: each outcome counted
//! exactly once, the registrations, ended logins by cause, cleaning, store
//! latency and the outage's store error; bounded labels, no user in them.
//!
//! Each test records into a recorder of its own, set for its thread only
//! (`metrics::with_local_recorder`) and driven on a current-thread runtime,
//! so tests running side by side do not count each other.

mod support;

use std::future::Future;

use expected_core::telemetry::{self, STORE_OPERATIONS};
use expected_core::time::Duration;
use expected_core::{Presented, SessionData};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use support::{VICTIM, engine, tour};

/// Runs `body` with a fresh Prometheus recorder and answers what it renders.
fn recorded<F: Future<Output = ()>>(body: impl FnOnce() -> F) -> String {
    let recorder: PrometheusRecorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(telemetry::STORE_CALL_DURATION.into()),
            &[0.000_01, 0.001, 1.0],
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    metrics::with_local_recorder(&recorder, || {
        telemetry::describe();
        runtime.block_on(body());
    });
    handle.render()
}

/// One sample of a Prometheus text exposition: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// The samples of a Prometheus text exposition.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line}"));
            let value = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("bad label {pair}"));
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value)
        })
        .collect()
}

/// The value of the sample `name` whose labels are exactly `labels` (any
/// order); 0 when there is none (a counter never incremented is absent).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples(text)
        .into_iter()
        .filter(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, value)| value)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} twice:\n{text}");
    found.first().copied().unwrap_or(0.0)
}

/// The sum of every sample of `name`, whatever its labels.
fn total(text: &str, name: &str) -> f64 {
    samples(text).iter().filter(|(n, _, _)| n == name).map(|(_, _, value)| value).sum()
}

#[test]
fn every_outcome_registration_and_ended_login_is_counted_once() {
    let text = recorded(|| async {
        let (engine, store, clock) = engine();
        tour(&engine, &store, &clock).await;
    });
    let auth = |outcome| value(&text, telemetry::AUTHENTICATIONS, &[("outcome", outcome)]);
    for outcome in [
        "anonymous",
        "anonymous_session",
        "malformed",
        "cookie_login",
        "grace",
        "grace_refused",
        "theft",
        "unknown_login",
        "user_rejected",
        "unavailable",
        "expired_login",
    ] {
        assert_eq!(auth(outcome), 1.0, "{outcome}:\n{text}");
    }
    // The victim's session hit, and bob's after the outage (for his confirm).
    assert_eq!(auth("session"), 2.0, "{text}");
    assert_eq!(total(&text, telemetry::AUTHENTICATIONS), 13.0, "no other outcome:\n{text}");
    assert_eq!(value(&text, telemetry::THEFTS, &[("cause", "foreign_client")]), 1.0, "{text}");
    assert_eq!(value(&text, telemetry::THEFTS, &[("cause", "stale_token")]), 0.0, "{text}");

    // victim, mallory, dave, erin twice, carol remembered; bob not.
    assert_eq!(value(&text, telemetry::REGISTRATIONS, &[("remember", "true")]), 6.0, "{text}");
    assert_eq!(value(&text, telemetry::REGISTRATIONS, &[("remember", "false")]), 1.0, "{text}");

    for cause in ["theft", "user_rejected", "logout", "revoked", "expired"] {
        assert_eq!(value(&text, telemetry::LOGINS_ENDED, &[("cause", cause)]), 1.0, "{cause}:\n{text}");
    }
    // bob had no login to end, everywhere or elsewhere.
    for cause in ["logout_everywhere", "logout_others", "evicted", "replaced"] {
        assert_eq!(value(&text, telemetry::LOGINS_ENDED, &[("cause", cause)]), 0.0, "{cause}:\n{text}");
    }

    // The outage: the one store call it met, counted as an error of its
    // operation and kind, and timed like any other.
    let errors = |op, kind| value(&text, telemetry::STORE_ERRORS, &[("operation", op), ("kind", kind)]);
    assert_eq!(errors("get_session", "unavailable"), 1.0, "{text}");
    assert_eq!(total(&text, telemetry::STORE_ERRORS), 1.0, "{text}");

    let count = |op| value(&text, &format!("{}_count", telemetry::STORE_CALL_DURATION), &[("operation", op)]);
    // Every remember-me cookie the store was asked about (the cookie login,
    // grace, grace refused, unknown, expired, theft) tried the optimistic
    // rotation once; only the victim's cookie login applied, so none went on
    // to the two-step rotation. The rejected user's cookie is read instead
    // (the hook said no before anything could rotate).
    assert_eq!(count("rotate_current"), 6.0, "{text}");
    assert_eq!(count("rotate_login"), 0.0, "{text}");
    for op in
        ["create_remembered", "get_login", "get_session", "create_session", "delete_user", "delete_login"]
    {
        assert!(count(op) >= 1.0, "{op} timed:\n{text}");
    }
    // A histogram in seconds: the memory store answers well under one.
    let under_a_second = value(
        &text,
        &format!("{}_bucket", telemetry::STORE_CALL_DURATION),
        &[("operation", "rotate_current"), ("le", "1")],
    );
    assert_eq!(under_a_second, 6.0, "{text}");
}

#[test]
fn labels_are_bounded_and_name_no_user() {
    let text = recorded(|| async {
        let (engine, store, clock) = engine();
        tour(&engine, &store, &clock).await;
        engine.clean().await.unwrap_or_else(|e| panic!("{e}"));
    });
    let outcomes = [
        "session",
        "cookie_login",
        "grace",
        "anonymous_session",
        "anonymous",
        "malformed",
        "unknown_login",
        "expired_login",
        "theft",
        "grace_refused",
        "user_rejected",
        "unavailable",
    ];
    let causes = [
        "logout",
        "revoked",
        "logout_everywhere",
        "logout_others",
        "theft",
        "evicted",
        "user_rejected",
        "expired",
        "replaced",
    ];
    let allowed = |name: &str, key: &str, value: &str| match (name, key) {
        (telemetry::AUTHENTICATIONS, "outcome") => outcomes.contains(&value),
        (telemetry::THEFTS, "cause") => ["stale_token", "foreign_client"].contains(&value),
        (telemetry::REGISTRATIONS, "remember") => ["true", "false"].contains(&value),
        (telemetry::LOGINS_ENDED, "cause") => causes.contains(&value),
        (telemetry::CLEANED, "record") => ["login", "session"].contains(&value),
        (telemetry::CLEANING_PASSES, "result") => ["ok", "error"].contains(&value),
        (telemetry::STORE_ERRORS, "kind") => ["unavailable", "corrupt", "backend"].contains(&value),
        (name, "operation") if name.starts_with(telemetry::STORE_CALL_DURATION) => {
            STORE_OPERATIONS.contains(&value)
        }
        (telemetry::STORE_ERRORS, "operation") => STORE_OPERATIONS.contains(&value),
        (name, "le") => name.ends_with("_bucket"),
        _ => false,
    };
    let samples = samples(&text);
    assert!(samples.len() > 30, "{text}");
    for (name, labels, _) in &samples {
        assert!(name.starts_with("expected_"), "{name}");
        for (key, value) in labels {
            assert!(allowed(name, key, value), "{name}{{{key}={value}}} is not a bounded label:\n{text}");
        }
    }
    assert!(!text.contains(VICTIM) && !text.contains("victim"), "{text}");
    assert!(text.contains("# HELP expected_authentications_total"), "described:\n{text}");
}

#[test]
fn cleaning_counts_what_it_deleted_and_its_failures() {
    let text = recorded(|| async {
        let (engine, store, clock) = engine();
        for name in ["a", "b", "c"] {
            let user = support::user(name);
            let _ =
                engine.register(&user, true, &Presented::default()).await.unwrap_or_else(|e| panic!("{e}"));
        }
        engine.create_anonymous(SessionData::new()).await.unwrap_or_else(|e| panic!("{e}"));
        let config = engine.config();
        let lifetime = config.cookie_max_age().max(config.login_lifetime());
        clock.advance(Duration::try_from(lifetime).unwrap_or(Duration::MAX) + Duration::seconds(1));
        let cleaned = engine.clean().await.unwrap_or_else(|e| panic!("{e}"));
        // Three logins; their sessions end with them, the visitor's expires.
        assert_eq!((cleaned.logins, cleaned.sessions), (3, 1));
        assert_eq!(engine.clean().await.map(|c| (c.logins, c.sessions)).ok(), Some((0, 0)));
        store.set_down(true);
        assert!(engine.clean().await.is_err());
    });
    assert_eq!(value(&text, telemetry::CLEANED, &[("record", "login")]), 3.0, "{text}");
    assert_eq!(value(&text, telemetry::CLEANED, &[("record", "session")]), 1.0, "{text}");
    assert_eq!(value(&text, telemetry::CLEANING_PASSES, &[("result", "ok")]), 2.0, "{text}");
    assert_eq!(value(&text, telemetry::CLEANING_PASSES, &[("result", "error")]), 1.0, "{text}");
    assert_eq!(value(&text, telemetry::LOGINS_ENDED, &[("cause", "expired")]), 3.0, "{text}");
    let errors = |op| value(&text, telemetry::STORE_ERRORS, &[("operation", op), ("kind", "unavailable")]);
    assert_eq!(errors("delete_expired_logins"), 1.0, "{text}");
}

#[test]
fn without_a_recorder_nothing_breaks() {
    // No recorder installed, globally or locally: each metric is a no-op.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let (engine, store, clock) = engine();
        tour(&engine, &store, &clock).await;
    });
}
