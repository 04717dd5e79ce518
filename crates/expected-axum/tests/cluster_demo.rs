//! The axum demo on a Redis Cluster (issue 13): `EXPECTED_STORE` names the
//! cluster as `redis-cluster://HOST:PORT,HOST:PORT,…`, `EXPECTED_TOKEN_KEYS`
//! the keys (required with it: a clear startup error without), and the demo
//! serves password and cookie logins through the distributed engine, with
//! keyed (format 2) remember-me cookies.
//!
//! The cluster is the 3-primary one `expected-store-redis`'s tests start on
//! loopback (`tests/support/cluster.rs`, ports from 7100). Without
//! `redis-server` this fails under `CI`, and is skipped loudly otherwise.

#![allow(clippy::print_stderr)]

#[path = "../examples/demo/app.rs"]
mod app;

#[allow(dead_code, unreachable_pub)]
mod redis_support;

use std::net::SocketAddr;

use expected_axum::ExpectedLayer;
use expected_core::Expected;
use expected_demo_kit::scenarios::{Client, Jar, ServedAt};
use expected_demo_kit::{DEMO_USERS, DemoConfig, DemoConfigError, DemoState, ci, env, open_store, testing};

const KEYS: &str = "demo-1:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_on_a_redis_cluster() {
    let nodes =
        match tokio::task::spawn_blocking(|| redis_support::cluster::cluster().map(|c| c.nodes.clone()))
            .await
            .expect("cluster task")
        {
            Ok(nodes) => nodes,
            Err(why) => {
                assert!(!ci(), "the_demo_serves_on_a_redis_cluster: no cluster and CI is set: {why}");
                eprintln!("\n!!! SKIPPED the_demo_serves_on_a_redis_cluster: {why}\n");
                return;
            }
        };
    let hosts: Vec<&str> = nodes.iter().map(|url| url.trim_start_matches("redis://")).collect();
    let url = format!("redis-cluster://{}", hosts.join(","));
    let lookup = |keys: Option<&'static str>| {
        let url = url.clone();
        move |name: &str| match name {
            env::STORE => Some(url.clone()),
            env::TOKEN_KEYS => keys.map(str::to_owned),
            _ => None,
        }
    };

    // Without keys the demo refuses to start on a cluster; with a bad key too.
    match DemoConfig::from_lookup(lookup(None)) {
        Err(DemoConfigError::KeysRequired { .. }) => {}
        other => panic!("a cluster without token keys is a startup error, got {other:?}"),
    }
    match DemoConfig::from_lookup(lookup(Some("demo-1:c2hvcnQ"))) {
        Err(error @ DemoConfigError::Keys(_)) => {
            assert!(error.to_string().contains(env::TOKEN_KEYS), "{error}")
        }
        other => panic!("a short key is a startup error, got {other:?}"),
    }

    let config = DemoConfig::from_lookup(lookup(Some(KEYS))).expect("the demo's settings");
    let store = open_store(&config.store).await.expect("open the cluster store");
    let engine = Expected::new(store, config.engine.clone());
    let passwords = std::sync::Arc::new(expected_demo_kit::Passwords::new(testing::accounts()));
    let state = DemoState {
        accounts: testing::accounts(),
        passwords,
        fresh_for: testing::FRESH,
        metrics: expected_demo_kit::Metrics::none(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let service =
        app::app(ExpectedLayer::new(engine), state).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    let client = Client::new(&ServedAt(format!("http://{addr}")));

    for (index, (username, password)) in DEMO_USERS.iter().enumerate() {
        let mut jar = Jar::with_agent(&format!("cluster-browser-{index}"));
        let body = serde_json::json!({ "username": username, "password": password, "remember": true });
        let reply = client.post_json("/api/login", &jar, &body).await;
        assert_eq!(reply.status.as_u16(), 200, "{username}: login: {}", reply.text());
        jar.apply(&reply);
        for round in 0..3 {
            let request = jar.without_session();
            let remember = request.remember.clone().unwrap_or_default();
            assert!(
                remember.starts_with("2.") && remember.contains(".demo-1."),
                "a keyed cookie: {remember}"
            );
            let reply = client.get("/api/me", &request).await;
            assert_eq!(reply.status.as_u16(), 200, "{username} cookie login {round}: {}", reply.text());
            jar = request;
            jar.apply(&reply);
        }
    }
    server.abort();
}
