//! Metrics: [`MetricsLayer`] records every request through the [`metrics`] facade (so any
//! exporter works) and, optionally, into an in-process [`Monitor`] whose rolling window gives
//! success and error rates, latency percentiles and the cache hit rate without Prometheus;
//! [`alerts`] evaluates rules against that window, and [`timeseries`] keeps the last hour in
//! 10-second buckets for the dashboard.
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
//! Every metric name is in [`names`], with its labels. The layer registers its metric handles
//! with the recorder installed when a route or model is first seen (so recording a request
//! builds no label sets): install your recorder before the first request. Model labels are
//! bounded: after 64 distinct models, further ones are labelled `other`.
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
mod handles;
mod layer;
pub mod monitor;
pub mod names;
mod service;
pub mod timeseries;

pub use alerts::{AlertRule, AlertTask, Alerts, Condition, Severity};
pub use body::ResponseBody;
pub use cache_stats::publish_cache_stats;
pub use future::ResponseFuture;
pub use layer::{MetricsConfig, MetricsLayer};
pub use monitor::{Monitor, MonitorConfig, MonitorSnapshot, Outcome};
pub use service::Metrics;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::{ErrorKind, FixReport, ResolvedModel, VisionReport};
    use axum::body::Body;
    use futures_util::StreamExt;
    use http::{Request, Response, StatusCode};
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::time::Duration;
    use tower::{service_fn, Layer, ServiceExt};

    fn layer() -> (MetricsLayer, Arc<Monitor>) {
        let monitor = Arc::new(Monitor::default());
        let layer = MetricsLayer::new(MetricsConfig::default().route("/chat"))
            .with_monitor(monitor.clone());
        (layer, monitor)
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_body_dropped_early_counts_as_aborted() {
        let (layer, monitor) = layer();
        let service = layer.layer(service_fn(|_req: Request<Body>| async {
            let chunks = futures_util::stream::iter(["a", "b"])
                .map(|c| Ok::<_, Infallible>(bytes::Bytes::from(c)));
            Ok::<_, Infallible>(Response::new(Body::from_stream(chunks)))
        }));
        let response = service.oneshot(get("/chat")).await.unwrap();
        // Headers are out, but nothing is recorded until the body ends or is dropped.
        assert_eq!(monitor.snapshot().totals.requests, 0);
        let mut body = response.into_body();
        body.frame().await.unwrap().unwrap();
        drop(body);
        let totals = monitor.snapshot().totals;
        assert_eq!((totals.requests, totals.aborted), (1, 1));
    }

    #[tokio::test]
    async fn a_request_dropped_before_its_answer_counts_as_aborted() {
        let (layer, monitor) = layer();
        let service = layer.layer(service_fn(|_req: Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
        let call = service.oneshot(get("/chat"));
        assert!(tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err());
        assert_eq!(monitor.snapshot().totals.aborted, 1);
    }

    #[tokio::test]
    async fn response_extensions_are_read() {
        let (layer, monitor) = layer();
        let service = layer.layer(service_fn(|_req: Request<Body>| async {
            let mut response = Response::new(Body::from("{}"));
            response.extensions_mut().insert(VisionReport {
                images: 2,
                cache_hits: 1,
                cache_misses: 1,
                vision_time: Duration::from_millis(5),
            });
            response.extensions_mut().insert(FixReport {
                rules: vec!["merge_consecutive_users"],
            });
            response
                .extensions_mut()
                .insert(ResolvedModel("hunyuan-t".into()));
            Ok::<_, Infallible>(response)
        }));
        let response = service.oneshot(get("/chat")).await.unwrap();
        response.into_body().collect().await.unwrap();
        let s = monitor.snapshot();
        assert_eq!(s.image_latency.count, 1);
        assert_eq!(s.text_latency.count, 0);
        assert_eq!(s.cache_hit_rate, Some(0.5));
        assert_eq!(s.fix_rules["merge_consecutive_users"], 1);
        assert_eq!(s.model_calls["hunyuan-t"], 1);
    }

    #[tokio::test]
    async fn a_stream_committed_before_its_images_were_described_counts_as_an_image_request() {
        let (layer, monitor) = layer();
        let pending = crate::cascade::PendingVisionReport::default();
        let filled = pending.0.clone();
        let service = layer.layer(service_fn(move |_req: Request<Body>| {
            let pending = pending.clone();
            async move {
                let chunks = futures_util::stream::iter([": keepalive\n\n", "data: [DONE]\n\n"])
                    .map(|c| Ok::<_, Infallible>(bytes::Bytes::from(c)));
                let mut response = Response::new(Body::from_stream(chunks));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/event-stream"),
                );
                response.extensions_mut().insert(pending);
                Ok::<_, Infallible>(response)
            }
        }));
        let response = service.oneshot(get("/chat")).await.unwrap();
        // The vision stage ends after the headers went out, before the body does.
        filled
            .set(VisionReport {
                images: 1,
                cache_hits: 0,
                cache_misses: 1,
                vision_time: Duration::from_millis(900),
            })
            .unwrap();
        response.into_body().collect().await.unwrap();
        let s = monitor.snapshot();
        assert_eq!(s.image_latency.count, 1);
        assert_eq!(s.text_latency.count, 0);
        assert_eq!(s.cache_lookups, 1);
        assert_eq!(s.cache_hit_rate, Some(0.0));
    }

    #[tokio::test]
    async fn errors_empty_bodies_and_probe_routes() {
        let (layer, monitor) = layer();
        let service = layer.layer(service_fn(|req: Request<Body>| async move {
            if req.uri().path() == "/chat" {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response.extensions_mut().insert(ErrorKind("bad_gateway"));
                Ok::<_, Infallible>(response)
            } else {
                Ok(Response::new(Body::from("ok")))
            }
        }));
        // An empty body is recorded with its headers (it may never be polled).
        let response = service.clone().oneshot(get("/chat")).await.unwrap();
        assert_eq!(monitor.snapshot().totals.server_errors, 1);
        drop(response);
        assert_eq!(monitor.snapshot().totals.aborted, 0);
        let s = monitor.snapshot();
        assert_eq!(s.error_rate, Some(1.0));
        assert_eq!(s.errors_by_kind["bad_gateway"], 1);
        // Health probes and scrapes stay out of the window by default.
        for path in ["/health/ready", "/metrics", "/status"] {
            let response = service.clone().oneshot(get(path)).await.unwrap();
            response.into_body().collect().await.unwrap();
        }
        assert_eq!(monitor.snapshot().totals.requests, 1);
        // Unknown paths are labelled `other` but still monitored.
        let response = service.oneshot(get("/anything")).await.unwrap();
        response.into_body().collect().await.unwrap();
        assert_eq!(monitor.snapshot().totals.requests, 2);
    }

    #[tokio::test]
    async fn service_errors_are_recorded() {
        let (layer, monitor) = layer();
        let service = layer.layer(service_fn(|_req: Request<Body>| async {
            Err::<Response<Body>, _>(std::io::Error::other("boom"))
        }));
        assert!(service.oneshot(get("/chat")).await.is_err());
        let s = monitor.snapshot();
        assert_eq!(s.totals.server_errors, 1);
        assert_eq!(s.errors_by_kind["service_error"], 1);
    }
}
