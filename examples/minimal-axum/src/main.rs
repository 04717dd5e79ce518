//! The smallest axum app with `expected`: a password login with "remember
//! me", a route for logged-in users only, and logout, on the memory store.
//! `cargo run -p expected-minimal-axum`, then:
//! `curl -c jar -d 'username=alice&password=alice-secret&remember=on' localhost:3000/login`,
//! `curl -b jar localhost:3000/me`, `curl -b jar -c jar -X POST localhost:3000/logout`.
use axum::{Form, Router, http::StatusCode, routing::get, routing::post};
use expected_axum::expected_core::{Config, Expected, Username};
use expected_axum::{Auth, AuthUser, Error, ExpectedLayer};
use expected_store_memory::MemoryStore;

#[derive(serde::Deserialize)]
struct Login {
    username: String,
    password: String,
    remember: Option<String>,
}

async fn login(auth: Auth, Form(form): Form<Login>) -> Result<(StatusCode, &'static str), Error> {
    // A real app looks the user up and checks the password's hash (argon2).
    let known = form.username == "alice" && form.password == "alice-secret";
    let (true, Ok(user)) = (known, Username::new(&form.username)) else {
        return Ok((StatusCode::UNAUTHORIZED, "wrong username or password"));
    };
    auth.register(&user, form.remember.is_some()).await?; // sets both cookies
    Ok((StatusCode::OK, "welcome"))
}

async fn me(AuthUser(user): AuthUser) -> String {
    format!("hello {}", user.username) // 401 when nobody is logged in
}

async fn logout(auth: Auth) -> Result<&'static str, Error> {
    auth.logout().await?; // ends this device's login and session, clears the cookies
    Ok("bye")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // Secure cookies: browsers take them from http://localhost; serve HTTPS elsewhere.
    let engine = Expected::new(MemoryStore::new(), Config::default());
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .layer(ExpectedLayer::new(engine));
    let addr = std::env::var("EXPECTED_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
