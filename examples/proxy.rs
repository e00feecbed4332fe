//! The full proxy server, built from the library: the config (file, environment, flags), an
//! optional embedded mock upstream, [`Proxy::new`] and [`Proxy::serve`]. The `hunyuan-proxy`
//! binary is this server with logging set up; use it to run the proxy, and this file to see
//! what it takes.
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
//! Flags: `--config FILE`, `--host`, `--port`, `--api-base`, `--demo`. SIGINT or SIGTERM shuts
//! it down gracefully (in-flight requests get `shutdown_timeout` seconds).

use clap::Parser;
use hunyuan_proxy::server::shutdown_signal;
use hunyuan_proxy::{Config, Proxy};
use std::error::Error;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An OpenAI-compatible proxy for Tencent Hunyuan.
#[derive(Debug, Parser)]
struct Args {
    /// TOML config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on.
    #[arg(long)]
    port: Option<u16>,
    /// Upstream base URL.
    #[arg(long, value_name = "URL")]
    api_base: Option<String>,
    /// Run against an embedded mock Hunyuan.
    #[arg(long)]
    demo: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    // File, then environment, then flags.
    let mut config = Config::load(args.config.as_deref())?;
    config.host = args.host.unwrap_or(config.host);
    config.port = args.port.unwrap_or(config.port);
    config.api_base = args.api_base.or(config.api_base);
    let _mock = if args.demo {
        let mock = hunyuan_proxy::mock::MockHunyuan::start().await;
        config.use_demo_upstream(mock.base_url());
        Some(mock)
    } else {
        None
    };

    let proxy = Proxy::new(config)?;
    let addr = format!("{}:{}", proxy.config().host, proxy.config().port);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(address = %listener.local_addr()?, "hunyuan-proxy listening");
    proxy.serve(listener, shutdown_signal()).await?;
    Ok(())
}
