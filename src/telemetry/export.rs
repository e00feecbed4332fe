//! The OTLP/HTTP exporter and the `tracing` layer that feeds it.

use super::TelemetryConfig;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A running trace exporter: a tracer provider with a batch span processor (one thread, a
/// bounded queue: spans beyond it are dropped, never waited for) posting OTLP/HTTP protobuf.
///
/// Not a global: [`layer`](Self::layer) gives the `tracing` layer for a subscriber, so each
/// subscriber (a test's, say) can have its own exporter. Dropping it, or
/// [`shutdown`](Self::shutdown), exports what is queued and stops the thread. The
/// process-wide settings are whether spans carry message contents
/// ([`TelemetryConfig::with_capture_content`]) and whether the request span gets its
/// `trace_id` field ([`TelemetryConfig::with_log_trace_id`]): the last `start` decides.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// An exporter that could not be built (a malformed endpoint or header).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter: {0}")]
pub struct TelemetryError(String);

impl Telemetry {
    /// Starts the exporter `config` asks for; `Ok(None)` when traces are off (nothing is
    /// started then).
    pub fn start(config: &TelemetryConfig) -> Result<Option<Self>, TelemetryError> {
        let Some(endpoint) = config.traces_endpoint() else {
            return Ok(None);
        };
        super::spans::set_capture_content(config.captures_content());
        super::spans::set_log_trace_id(config.logs_trace_id());
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
        if !config.from_env {
            exporter = exporter.with_endpoint(endpoint);
        }
        // `OTEL_EXPORTER_OTLP_HEADERS` is read by the exporter itself.
        let exporter = exporter
            .build()
            .map_err(|err| TelemetryError(err.to_string()))?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("hunyuan-proxy");
        }
        // The sampler comes from `OTEL_TRACES_SAMPLER(_ARG)` (default: parent-based, always on);
        // the batch limits from `OTEL_BSP_*` (default: a queue of 2,048 spans, sent every 5 s).
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        Ok(Some(Telemetry { provider }))
    }

    /// The `tracing` layer that turns this crate's spans (and tower-http's request span) into
    /// OpenTelemetry spans. It has its own filter (this crate's spans at `INFO` and above), so
    /// traces do not depend on `log_level`.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync + 'static,
    {
        let tracer = self.provider.tracer("hunyuan-proxy");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            // The spans' contexts are read explicitly (`OpenTelemetrySpanExt::context`): no
            // need to make each one the thread's current OpenTelemetry context on every poll.
            .with_context_activation(false)
            .with_filter(
                Targets::new()
                    .with_target(env!("CARGO_CRATE_NAME"), LevelFilter::INFO)
                    // The access log line repeats what the request span holds.
                    .with_target(super::ACCESS_LOG, LevelFilter::OFF)
                    .with_default(LevelFilter::OFF),
            )
    }

    /// Exports every span ended so far, blocking until the collector answered or timed out
    /// (call it from a blocking context, not from an async task).
    pub fn flush(&self) {
        if let Err(err) = self.provider.force_flush() {
            tracing::warn!(error = %err, "cannot export traces");
        }
    }

    /// Exports what is queued and stops the exporter thread.
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::warn!(error = %err, "cannot shut the trace exporter down cleanly");
        }
    }
}
