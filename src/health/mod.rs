//! Health: [`HealthLayer`] answers `GET /health/live` (the process is up; 503 once shutdown
//! has begun), `GET /health/ready` (every critical component is healthy; 503 naming the
//! failing ones) and `GET /health` (JSON: overall status, version, uptime, and per component
//! its status, message, check time and duration), and passes every other request on.
//!
//! Components implement [`ComponentHealth`] and are registered by name in a
//! [`HealthRegistry`]; checks run concurrently, each bounded by a timeout. Built in:
//! [`UpstreamCheck`] (a cached `GET {api_base}/models` probe, degraded while Hunyuan answers
//! 429), [`CacheCheck`] (description cache fill and hit rate) and [`AlertCheck`] (degraded
//! while a high or critical alert fires).
//!
//! ```
//! use axum::body::Body;
//! use http::{Request, Response, StatusCode};
//! use hunyuan_proxy::health::{check_fn, CheckResult, HealthLayer, HealthRegistry};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = HealthRegistry::new();
//! registry.register("database", check_fn(|| async { CheckResult::unhealthy("no connection") }));
//! let app = service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Body::from("app")))
//! });
//! let service = HealthLayer::new(registry).layer(app);
//!
//! let ready = service.clone().oneshot(Request::get("/health/ready").body(Body::empty()).unwrap());
//! let ready = ready.await.unwrap();
//! assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
//! let body = axum::body::to_bytes(ready.into_body(), usize::MAX).await.unwrap();
//! let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(body["failing"][0], "database");
//!
//! let live = service.clone().oneshot(Request::get("/health/live").body(Body::empty()).unwrap());
//! assert_eq!(live.await.unwrap().status(), StatusCode::OK);
//! let other = service.oneshot(Request::get("/hello").body(Body::empty()).unwrap());
//! let other = axum::body::to_bytes(other.await.unwrap().into_body(), 100).await.unwrap();
//! assert_eq!(&other[..], b"app");
//! # }
//! ```

mod checks;
mod component;
mod future;
mod layer;
mod service;

pub use checks::{AlertCheck, CacheCheck, UpstreamCheck};
pub use component::{
    check_fn, CheckFuture, CheckResult, ComponentHealth, ComponentReport, FnCheck, HealthRegistry,
    HealthReport, HealthStatus,
};
pub use future::ResponseFuture;
pub use layer::{HealthConfig, HealthLayer};
pub use service::Health;

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `time` as RFC 3339 in UTC with seconds (`2026-11-27T07:47:04Z`).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rem = secs % 86_400;
    let (year, month, day) = crate::usage::civil_from_days((secs / 86_400) as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::{Request, Response, StatusCode};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;
    use tower::{service_fn, Layer, ServiceExt};

    #[tokio::test]
    async fn shutdown_turns_live_and_ready_to_503() {
        let flag = Arc::new(AtomicBool::new(false));
        let layer = HealthLayer::new(HealthRegistry::new()).shutdown_flag(flag.clone());
        let service = layer.layer(service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
        let status = |path: &'static str| {
            let service = service.clone();
            async move {
                let request = Request::get(path).body(Body::empty()).unwrap();
                service.oneshot(request).await.unwrap().status()
            }
        };
        assert_eq!(status("/health/live").await, StatusCode::OK);
        assert_eq!(status("/health/ready").await, StatusCode::OK);
        assert_eq!(status("/health").await, StatusCode::OK);
        layer.begin_shutdown();
        assert!(flag.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(
            status("/health/live").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status("/health/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status("/health").await, StatusCode::SERVICE_UNAVAILABLE);
        // Other methods pass through to the app.
        let post = Request::post("/health").body(Body::empty()).unwrap();
        assert_eq!(
            service.oneshot(post).await.unwrap().status(),
            StatusCode::OK
        );
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_765_624);
        assert_eq!(rfc3339(t), "2026-11-27T07:47:04Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
