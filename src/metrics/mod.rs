//! Metrics: [`MetricsLayer`] records every request through the [`metrics`] facade (so any
//! exporter works) and, optionally, into an in-process [`Monitor`] whose rolling window gives
//! success and error rates, latency percentiles and the cache hit rate without Prometheus;
//! [`alerts`] evaluates rules against that window.
//!
//! A request is recorded when its response body ends or is dropped, not when the headers
//! leave: a stream's duration covers the whole stream, and a client that disconnects midway
//! is counted with outcome `aborted`. The layer reads the facts other layers leave in the
//! **response** extensions ([`extensions`](crate::extensions)): [`UpstreamTiming`] and
//! [`ResolvedModel`] (upstream duration, calls by model), [`VisionReport`] (image path,
//! vision time, cache hits and misses), [`FixReport`] (fix rules fired) and [`ErrorKind`]
//! (errors by kind). The proxy's own overhead is the time to response headers minus the
//! upstream's time to headers and the vision time.
//!
//! Every metric name is in [`names`], with its labels.
//!
//! [`UpstreamTiming`]: crate::extensions::UpstreamTiming
//! [`ResolvedModel`]: crate::extensions::ResolvedModel
//! [`VisionReport`]: crate::extensions::VisionReport
//! [`FixReport`]: crate::extensions::FixReport
//! [`ErrorKind`]: crate::extensions::ErrorKind
//!
//! ```
//! use axum::body::Body;
//! use http::{Request, Response};
//! use hunyuan_proxy::metrics::{MetricsConfig, MetricsLayer, Monitor, MonitorConfig};
//! use std::sync::Arc;
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let monitor = Arc::new(Monitor::new(MonitorConfig::default()));
//! let layer = MetricsLayer::new(MetricsConfig::default().route("/v1/chat/completions"))
//!     .with_monitor(monitor.clone());
//! let service = layer.layer(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Body::from("hello")))
//! }));
//!
//! let request = Request::post("/v1/chat/completions").body(Body::empty()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! // Recorded once the body has been read (or dropped).
//! let body = axum::body::to_bytes(Body::new(response.into_body()), usize::MAX).await.unwrap();
//! assert_eq!(&body[..], b"hello");
//! let snapshot = monitor.snapshot();
//! assert_eq!(snapshot.totals.requests, 1);
//! assert_eq!(snapshot.success_rate, Some(1.0));
//! # }
//! ```

pub mod alerts;
mod body;
mod cache_stats;
mod future;
mod layer;
pub mod monitor;
pub mod names;
mod service;

pub use alerts::{AlertRule, AlertTask, Alerts, Condition, Severity};
pub use body::ResponseBody;
pub use cache_stats::{publish_cache_stats, CacheStats, CacheStatsSource};
pub use future::ResponseFuture;
pub use layer::{MetricsConfig, MetricsLayer};
pub use monitor::{Monitor, MonitorConfig, MonitorSnapshot, Outcome};
pub use service::Metrics;
