//! The operator's commands of a store's command-line tool, checked as an
//! operator would run them: [`operator_commands`].
//!
//! Every shipped store's tool (`expected-sqlx`, `expected-redis`) runs it;
//! yours can too, when it offers `expected_core::admin`'s commands.

use expected_core::Store;

/// Runs the operator's commands through `cli` (which runs the tool with the
/// given arguments against the store behind `store`, and answers its exit
/// code, stdout and stderr) after writing logins and sessions through an
/// engine over `store`, and checks their output and exit codes: `logins list`
/// (table and `--json`; exit 3 for a user without logins), `sessions count`
/// (expired sessions not counted), `logins revoke` (one serial, again, a
/// malformed one, `--all`), `clean`.
///
/// `store` must be empty.
///
/// # Panics
///
/// When a command does not behave as documented in `expected_core::admin`.
pub async fn operator_commands<S, C>(store: S, cli: C)
where
    S: Store + Clone,
    C: Fn(&[&str]) -> (i32, String, String),
{
    use expected_core::time::{Duration, OffsetDateTime};
    use expected_core::{Client, Config, Expected, ManualClock, Presented, SessionData, Username};
    let user = |name: &str| Username::new(name).unwrap_or_else(|e| panic!("{e}"));
    let ok = |result: Result<expected_core::Registration, expected_core::EngineError>| {
        result.unwrap_or_else(|e| panic!("{e}"))
    };
    // A login registered 200 days ago and never used since: expired now.
    let past = ManualClock::new(OffsetDateTime::now_utc() - Duration::days(200));
    let old = Expected::new(store.clone(), Config::default()).with_clock(past);
    let _ = ok(old.register(&user("carol"), true, &Presented::default()).await);
    let engine = Expected::new(store.clone(), Config::default());
    let laptop = Presented {
        client: Client { ip: "203.0.113.7".parse().ok(), user_agent: Some("Firefox on the laptop") },
        ..Presented::default()
    };
    let alice = [
        ok(engine.register(&user("alice"), true, &laptop).await),
        ok(engine.register(&user("alice"), true, &Presented::default()).await),
    ];
    let _ = ok(engine.register(&user("bob"), true, &Presented::default()).await);
    let mut cart = SessionData::new();
    cart.insert("cart".into(), serde_json::json!(2));
    engine.create_anonymous(cart).await.unwrap_or_else(|e| panic!("{e}"));

    let (code, out, err) = cli(&["logins", "list", "alice"]);
    assert_eq!(code, 0, "logins list: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "a header and one line per login: {out}");
    assert!(lines[0].starts_with("SERIAL\tCREATED\tLAST USED\tIP\tUSER AGENT"), "{out}");
    assert!(out.contains("203.0.113.7\tFirefox on the laptop"), "IP and user agent shown: {out}");
    for registration in &alice {
        let serial = registration.serial.map(|s| s.to_base64()).unwrap_or_default();
        assert!(out.contains(&serial), "every login listed by serial: {out}");
    }

    let (code, out, _) = cli(&["logins", "list", "alice", "--json"]);
    assert_eq!(code, 0);
    let devices: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(devices.as_array().map(Vec::len), Some(2), "a JSON array of both logins: {out}");
    assert!(devices[0]["created_at"].is_string() && devices[0]["serial"].is_string(), "{out}");

    let (code, out, err) = cli(&["logins", "list", "nobody"]);
    assert_eq!((code, out.as_str()), (3, ""), "an unknown user exits 3 with nothing on stdout");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("no logins"), "{err}");

    let (code, out, err) = cli(&["sessions", "count"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "sessions: 4 (users 3, anonymous 1)\n", "carol's expired session is not counted");

    let serial = alice[0].serial.map(|s| s.to_base64()).unwrap_or_default();
    let (code, out, err) = cli(&["logins", "revoke", "alice", &serial]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("revoked alice {serial}\n"));
    let left = engine.devices(&user("alice"), None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left.len(), 1, "that login is gone, the other stays");
    let (code, _, err) = cli(&["logins", "revoke", "alice", &serial]);
    assert_eq!(code, 3, "revoking it again finds nothing: {err}");
    let (code, _, err) = cli(&["logins", "revoke", "alice", "not-a-serial"]);
    assert_eq!(code, 2, "a malformed serial is a usage error: {err}");
    let (code, _, _) = cli(&["logins", "revoke", "alice"]);
    assert_eq!(code, 2, "a serial or --all is required");

    let (code, out, err) = cli(&["logins", "revoke", "bob", "--all"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "revoked bob: 1 logins, 1 sessions\n");
    let (code, _, _) = cli(&["logins", "revoke", "bob", "--all"]);
    assert_eq!(code, 3, "nothing left of bob");

    let (code, out, err) = cli(&["clean"]);
    assert_eq!(code, 0, "{err}");
    // A store that drops expired records by itself (Redis TTLs) may have
    // dropped carol's login already; what is left of it must go now.
    let cleaned = out.strip_prefix("cleaned: ").and_then(|rest| rest.split(' ').next());
    assert!(
        matches!(cleaned, Some("0" | "1")) && out.contains(" logins, ") && out.ends_with(" sessions\n"),
        "`clean` prints what it deleted: {out}"
    );
    assert!(engine.devices(&user("carol"), None).await.unwrap_or_default().is_empty());
}
