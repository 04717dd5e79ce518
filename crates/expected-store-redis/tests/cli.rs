//! The `expected-redis` command, run as an operator would, on the single
//! Redis at `EXPECTED_TEST_REDIS_URL` under a key prefix of its own: the
//! operator's commands on what an engine wrote there, output and exit codes
//! included (`expected_conformance::admin::operator_commands`).

#![cfg(feature = "cli")]

mod support;

use std::process::Command;

/// Runs `expected-redis ARGS --redis-url URL --key-prefix PREFIX`: (exit
/// code, stdout, stderr).
fn redis_cli(url: &str, prefix: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_expected-redis"))
        .args(args)
        .args(["--redis-url", url, "--key-prefix", prefix])
        .env_remove("REDIS_URL")
        .output()
        .unwrap_or_else(|e| panic!("cannot run expected-redis: {e}"));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_on_a_single_redis() {
    let url = support::redis_url();
    let prefix = support::unique_prefix();
    let store = match expected_store_redis::RedisStore::builder()
        .prefix(prefix.clone())
        .connect(url.as_str())
        .await
    {
        Ok(store) => store,
        Err(error) => return support::skip("operator_commands_on_a_single_redis", &error.to_string()),
    };
    // The command line runs blocking; the store's own calls run beside it.
    let checked = tokio::spawn({
        let (url, prefix) = (url.clone(), prefix.clone());
        async move {
            expected_conformance::admin::operator_commands(store, |args| redis_cli(&url, &prefix, args))
                .await;
        }
    })
    .await;
    let _ = support::purge(std::slice::from_ref(&url), &prefix).await;
    if let Err(error) = checked {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[test]
fn an_unreachable_redis_is_one_line_and_exit_code_1() {
    let (code, out, err) = redis_cli("redis://127.0.0.1:1", "expected-test:none", &["sessions", "count"]);
    assert_eq!((code, out.as_str()), (1, ""), "an unreachable store exits 1: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("expected-redis: store"), "{err}");
    let (code, _, err) = redis_cli("not a url", "expected-test:none", &["clean"]);
    assert!(code == 1 || code == 2, "a malformed URL is refused: {code} {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}
