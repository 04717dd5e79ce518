//! `expected-line-server`: serve the line protocol, or run the demo.
//!
//! - `cargo run -p expected-line-server` listens on `127.0.0.1:4040` (or on
//!   `EXPECTED_LINE_ADDR`); try `nc 127.0.0.1 4040` and `HELP`.
//! - `cargo run -p expected-line-server -- --demo` runs a scripted client
//!   against an in-process server and prints the conversation.

#![forbid(unsafe_code)]

use std::io::{self, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use expected_core::Config;
use expected_line_server::{ADDR_ENV, DEFAULT_ADDR, demo, engine, serve};

const USAGE: &str = "usage: expected-line-server [--demo]

  (no argument)  serve the line protocol on 127.0.0.1:4040, or on $EXPECTED_LINE_ADDR
  --demo         run a scripted client against an in-process server and print the conversation";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => run_server().await,
        ["--demo"] => demo(&mut io::stdout()).await,
        ["--help" | "-h"] => writeln!(io::stdout(), "{USAGE}"),
        _ => {
            let _ = writeln!(io::stderr(), "{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(io::stderr(), "expected-line-server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server() -> io::Result<()> {
    let addr = std::env::var(ADDR_ENV).unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    writeln!(
        io::stdout(),
        "expected-line-server listening on {local}; try `nc {} {}` then HELP (Ctrl-C to stop)",
        local.ip(),
        local.port()
    )?;
    let config = Config::builder().secure(false).build().map_err(io::Error::other)?;
    serve(listener, Arc::new(engine(config))).await;
    Ok(())
}
