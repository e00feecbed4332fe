//! The full hunyuan-proxy server.
//!
//! Run with:
//!
//! ```sh
//! # against an embedded mock Hunyuan, no key needed
//! cargo run --release --example proxy -- --demo
//! # against Hunyuan
//! HUNYUAN_API_KEY=sk-... cargo run --release --example proxy -- --config proxy.toml
//! ```
//!
//! Settings come from the TOML file, then `HUNYUAN_API_KEY` / `HUNYUAN_API_BASE`, then the
//! flags `--host`, `--port`, `--api-base`. SIGINT or SIGTERM stops accepting connections, turns
//! `/health/live` to 503 and lets in-flight requests finish for up to `shutdown_timeout`
//! seconds.

use clap::Parser;
use hunyuan_proxy::config::{Config, Secret};
use hunyuan_proxy::Proxy;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

// glibc's malloc and free were about 15 % of the proxy thread's instructions per request
// (callgrind, `docs/performance.md`); mimalloc is the binary's choice, not the library's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An OpenAI-compatible proxy for Tencent Hunyuan.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the file).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (overrides the file).
    #[arg(long)]
    port: Option<u16>,
    /// Upstream base URL (overrides the file and HUNYUAN_API_BASE).
    #[arg(long, value_name = "URL")]
    api_base: Option<String>,
    /// Run against an embedded mock Hunyuan (no key needed).
    #[arg(long)]
    demo: bool,
}

fn load_config(args: &Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    config.apply_env(|key| std::env::var(key).ok());
    if let Some(host) = &args.host {
        config.host = host.clone();
    }
    if let Some(port) = args.port {
        config.port = port;
    }
    if let Some(base) = &args.api_base {
        config.api_base = Some(base.clone());
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = match load_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},tower_http=info", config.log_level)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // Kept alive for as long as the server runs.
    let _mock = if args.demo {
        let mock = hunyuan_proxy::mock::MockHunyuan::start().await;
        config.api_base = Some(mock.base_url());
        config.api_key = Some(Secret::new("demo-key"));
        if config.admin_token.is_none() {
            config.admin_token = Some(Secret::new("demo-admin-token"));
        }
        tracing::info!(upstream = %mock.base_url(), "demo mode: using the embedded mock Hunyuan");
        Some(mock)
    } else {
        None
    };

    let proxy = match Proxy::new(config) {
        Ok(proxy) => proxy,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let config = proxy.config().clone();
    if config.api_key.is_none() {
        tracing::warn!("no api_key configured: set HUNYUAN_API_KEY or api_key in the config file");
    }
    let addr = format!("{}:{}", config.host, config.port);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {addr}: {err}");
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a.to_string());
    tracing::info!(address = %local, upstream = %config.api_base(), "hunyuan-proxy listening");
    if args.demo {
        println!(
            "Try:\n  curl -s http://{local}/v1/chat/completions -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"hunyuan-turbos-latest\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
        );
    }

    let (signalled_tx, signalled_rx) = tokio::sync::watch::channel(false);
    let shutdown_proxy = proxy.clone();
    let shutdown = async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received: finishing in-flight requests");
        shutdown_proxy.begin_shutdown();
        let _ = signalled_tx.send(true);
    };
    // Small answers and stream events leave at once instead of waiting on Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, proxy.make_service()).with_graceful_shutdown(shutdown);
    let deadline = Duration::from_secs(config.shutdown_timeout);
    let forced = async move {
        let mut rx = signalled_rx;
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        tokio::time::sleep(deadline).await;
    };
    tokio::select! {
        result = server => {
            if let Err(err) = result {
                tracing::error!(error = %err, "server error");
                return ExitCode::from(1);
            }
            tracing::info!("shut down cleanly");
        }
        _ = forced => {
            tracing::warn!(seconds = deadline.as_secs(), "shutdown deadline passed: closing open requests");
        }
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
