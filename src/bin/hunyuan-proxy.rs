//! `hunyuan-proxy`: the proxy server.
//!
//! ```sh
//! hunyuan-proxy --demo                                  # against an embedded mock Hunyuan
//! HUNYUAN_API_KEY=sk-... hunyuan-proxy --config proxy.toml
//! ```
//!
//! Settings come from the TOML file, then `HUNYUAN_API_KEY` / `HUNYUAN_API_BASE`, then the
//! flags. SIGINT or SIGTERM stops accepting connections, turns `/health/live` to 503 and lets
//! in-flight requests finish for up to `shutdown_timeout` seconds. Exit codes: 0 after a clean
//! shutdown, 1 when it cannot listen or serve, 2 for a bad config or flag.

use clap::Parser;
use hunyuan_proxy::server::shutdown_signal;
use hunyuan_proxy::telemetry::{Telemetry, TelemetryConfig};
use hunyuan_proxy::{Config, Proxy};
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

// glibc's malloc and free were about 15 % of the proxy thread's instructions per request
// (docs/performance.md); the allocator is the binary's choice, not the library's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An OpenAI-, Anthropic- and Responses-compatible proxy for Tencent Hunyuan.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file (every key: docs/configuration.md).
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
    /// The async runtime: `current-thread` (everything on one thread) or `multi-thread`.
    /// Default: current-thread when the process may use one CPU, else multi-thread.
    #[arg(long, value_name = "KIND")]
    runtime: Option<Runtime>,
    /// Workers of the multi-thread runtime (implies `--runtime multi-thread`). Default: the
    /// CPUs this process may use.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
}

/// The `--runtime` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Runtime {
    /// One thread runs the accept loop and every connection.
    CurrentThread,
    /// A work-stealing pool of worker threads.
    MultiThread,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // On one CPU (a container limit, `taskset`) a multi-thread runtime still runs the accept
    // loop on the main thread and the connections on a worker: every request then crosses
    // threads. A current-thread runtime keeps it on one (docs/performance.md has both).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Workers asked for mean the multi-thread runtime; with the current-thread one they would
    // be ignored, so that pair is refused.
    let runtime = match (args.runtime, args.worker_threads) {
        (Some(Runtime::CurrentThread), Some(_)) => {
            eprintln!("error: --worker-threads needs --runtime multi-thread");
            return ExitCode::from(2);
        }
        (Some(runtime), _) => runtime,
        (None, Some(_)) => Runtime::MultiThread,
        (None, None) if cpus == 1 => Runtime::CurrentThread,
        (None, None) => Runtime::MultiThread,
    };
    let mut builder = match runtime {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Runtime::MultiThread => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(args.worker_threads.map_or(cpus, usize::from));
            builder
        }
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> ExitCode {
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(host) = args.host {
        config.host = host;
    }
    if let Some(port) = args.port {
        config.port = port;
    }
    if let Some(base) = args.api_base {
        config.api_base = Some(base);
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    // Traces only when an endpoint is configured (`otel_endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT`):
    // otherwise no exporter thread and no OpenTelemetry layer.
    let telemetry = match Telemetry::start(
        &TelemetryConfig::from_env(config.otel_endpoint.as_deref())
            .with_capture_content(config.otel_capture_content)
            // A log line shows the `info` request span, and so its `trace_id`, only at `info`
            // and below.
            .with_log_trace_id(
                filter
                    .max_level_hint()
                    .is_none_or(|level| level >= tracing::level_filters::LevelFilter::INFO),
            ),
    ) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(logs)
        .with(telemetry.as_ref().map(Telemetry::layer))
        .init();
    let code = serve(args.demo, config).await;
    if let Some(telemetry) = telemetry {
        // Sends the spans still queued.
        telemetry.shutdown();
    }
    code
}

async fn serve(demo: bool, mut config: Config) -> ExitCode {
    // Kept alive for as long as the server runs.
    let _mock = if demo {
        // The legacy endpoint's stand-in under the `hunyuan` preset, TokenHub's otherwise.
        let mock = if config.upstream == hunyuan_proxy::config::Preset::Hunyuan {
            hunyuan_proxy::mock::MockHunyuan::start().await
        } else {
            hunyuan_proxy::mock::MockHunyuan::start_tokenhub().await
        };
        config.use_demo_upstream(mock.base_url());
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
    // The configured models against the upstream's list, now and every few minutes.
    proxy.spawn_model_discovery();
    let config = proxy.config();
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
    if demo {
        println!(
            "Try:\n  curl -s http://{local}/v1/chat/completions -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"hunyuan-turbos-latest\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
        );
    }
    match proxy.serve(listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server error");
            ExitCode::from(1)
        }
    }
}
