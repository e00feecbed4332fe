//! The Prometheus exporter behind `GET /metrics` (feature `prometheus`): the process-wide
//! recorder, its upkeep task, and the route handler. The layers record through the `metrics`
//! facade only; this is the server's choice of exporter.

use super::Proxy;
use crate::error::ProxyError;
use axum::extract::State;
#[cfg(feature = "prometheus")]
use axum::response::IntoResponse;
use axum::response::Response;
#[cfg(feature = "prometheus")]
use http::{header, HeaderValue};
#[cfg(feature = "prometheus")]
use std::time::Duration;

/// How often the Prometheus recorder's buffers are drained between scrapes.
#[cfg(feature = "prometheus")]
pub(crate) const PROMETHEUS_UPKEEP: Duration = Duration::from_secs(5);

/// A background task that stops when this handle is dropped.
#[cfg(feature = "prometheus")]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

#[cfg(feature = "prometheus")]
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The process-wide Prometheus recorder's handle, installed on first use. `None` when another
/// recorder was installed first (the layers then record into that one).
#[cfg(feature = "prometheus")]
pub fn prometheus_handle() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            const SECONDS: &[f64] = &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                300.0,
            ];
            const OVERHEAD: &[f64] = &[
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets(SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::metrics::names::OVERHEAD.to_owned()),
                        OVERHEAD,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder);
            match handle {
                Ok(handle) => {
                    crate::metrics::names::describe();
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot install the Prometheus recorder; GET /metrics is off");
                    None
                }
            }
        })
        .as_ref()
}

pub(crate) async fn metrics(State(proxy): State<Proxy>) -> Result<Response, ProxyError> {
    if proxy.state.observe.is_none() {
        return Err(ProxyError::NotFound {
            message: "metrics are off: set enable_monitoring = true".into(),
        });
    }
    #[cfg(feature = "prometheus")]
    {
        crate::metrics::publish_cache_stats(proxy.description_cache());
        if let Some(handle) = prometheus_handle() {
            return Ok((
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                )],
                handle.render(),
            )
                .into_response());
        }
    }
    Err(ProxyError::NotImplemented {
        message: "this build has no Prometheus exporter (feature `prometheus`)".into(),
    })
}
