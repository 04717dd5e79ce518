//! The smallest actix-web app with `expected`: a password login with
//! "remember me", a route for logged-in users only, and logout, on the
//! memory store. `cargo run -p expected-minimal-actix`, then:
//! `curl -c jar -d 'username=alice&password=alice-secret&remember=on' localhost:3000/login`,
//! `curl -b jar localhost:3000/me`, `curl -b jar -c jar -X POST localhost:3000/logout`.
use actix_web::{App, HttpResponse, HttpServer, web};
use expected_actix::expected_core::{Config, Expected, Username};
use expected_actix::{Auth, AuthUser, Error, ExpectedMiddleware};
use expected_store_memory::MemoryStore;

#[derive(serde::Deserialize)]
struct Login {
    username: String,
    password: String,
    remember: Option<String>,
}

async fn login(auth: Auth, form: web::Form<Login>) -> Result<HttpResponse, Error> {
    // A real app looks the user up and checks the password's hash (argon2).
    let known = form.username == "alice" && form.password == "alice-secret";
    let (true, Ok(user)) = (known, Username::new(&form.username)) else {
        return Ok(HttpResponse::Unauthorized().body("wrong username or password"));
    };
    auth.register(&user, form.remember.is_some()).await?; // sets both cookies
    Ok(HttpResponse::Ok().body("welcome"))
}

async fn me(AuthUser(user): AuthUser) -> String {
    format!("hello {}", user.username) // 401 when nobody is logged in
}

async fn logout(auth: Auth) -> Result<&'static str, Error> {
    auth.logout().await?; // ends this device's login and session, clears the cookies
    Ok("bye")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    // Secure cookies: browsers take them from http://localhost; serve HTTPS elsewhere.
    let engine = Expected::new(MemoryStore::new(), Config::default());
    let expected = ExpectedMiddleware::new(engine); // once: every worker shares it
    let addr = std::env::var("EXPECTED_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let server = HttpServer::new(move || {
        App::new()
            .wrap(expected.clone())
            .route("/login", web::post().to(login))
            .route("/me", web::get().to(me))
            .route("/logout", web::post().to(logout))
    })
    .bind(addr)?;
    println!("listening on http://{}", server.addrs()[0]);
    server.run().await
}
