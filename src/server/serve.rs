//! The server loop: [`Proxy::serve`] accepts connections until a shutdown future completes,
//! then drains in-flight requests within `shutdown_timeout`. The binary, `examples/proxy.rs`,
//! the overhead bench and the tests all serve through it.
//!
//! Each connection is served by hyper-util's auto (HTTP/1.1 and HTTP/2) builder under a
//! [`GracefulShutdown`] watch, and guarded nginx-style: `max_connections` open at once (past
//! it a new connection is closed at once), `client_header_timeout` to receive a request head
//! (counted from the accept, then from the first byte of each later head) and
//! `client_idle_timeout` for a kept-alive connection with no request in progress. hyper's own
//! `header_read_timeout` is not used: its timer also runs while a kept-alive connection waits
//! for its next request, which would cut the idle timeout to the header timeout. HTTP/2 gets
//! a stream cap, a header-list cap and hyper's rapid-reset limits.

use super::Proxy;
use crate::metrics::names;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// File descriptors kept back from the open-file limit for everything but client
/// connections (upstream connections, logs, the listener…).
const FD_RESERVE: u64 = 256;

/// HTTP/2 streams a client may reset before the server accepted them (rapid reset,
/// CVE-2023-44487): past it the connection is closed with `ENHANCE_YOUR_CALM`.
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// HTTP/2 streams the server may reset because of a client's protocol errors before it
/// closes the connection (the "MadeYouReset" variant of rapid reset).
const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;

/// The default `max_connections`: the soft open-file limit minus [`FD_RESERVE`] and the
/// upstream's own connections, at least 16 (10,000 where the limit cannot be read).
pub(crate) fn default_max_connections(upstream_connections: usize) -> usize {
    let reserve = FD_RESERVE + upstream_connections as u64;
    match open_file_limit() {
        Some(limit) => limit.saturating_sub(reserve).max(16) as usize,
        None => 10_000,
    }
}

/// The soft `RLIMIT_NOFILE`, when there is one. The crate's one `unsafe` call: std has no
/// getrlimit, and this one only fills a struct of plain integers.
#[cfg(unix)]
#[allow(unsafe_code, clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack frame.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// The connection settings [`Proxy::serve`] applies, from the config.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
}

impl Proxy {
    /// Serves the proxy on `listener` until `shutdown` completes.
    ///
    /// Then it stops accepting connections, turns `/health/live` to 503 (so a load balancer
    /// takes the replica out) and lets in-flight requests, open streams included, finish for
    /// up to `shutdown_timeout` seconds; whatever is still open then is closed.
    ///
    /// Each connection is guarded nginx-style: `client_header_timeout` to receive a request
    /// head (from the accept, then from the first byte of each later head),
    /// `client_idle_timeout` for a kept-alive connection with no request in progress,
    /// `max_connections` open at once (past it a new connection is closed at once), and the
    /// `http2_*` limits with hyper's rapid-reset protection. Open connections are in the gauge
    /// `hunyuan_proxy_connections_open`, refused ones in
    /// `hunyuan_proxy_connections_rejected_total`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use hunyuan_proxy::{server::shutdown_signal, Config, Proxy};
    ///
    /// let proxy = Proxy::new(Config::default())?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
    /// proxy.serve(listener, shutdown_signal()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn serve<F>(&self, listener: TcpListener, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let config = self.config();
        let limits = Limits {
            header_timeout: Duration::from_secs(config.client_header_timeout),
            idle_timeout: Duration::from_secs(config.client_idle_timeout),
            max_connections: config
                .max_connections
                .unwrap_or_else(|| default_max_connections(config.upstream_concurrency)),
        };
        tracing::debug!(
            max_connections = limits.max_connections,
            "serving with connection limits"
        );
        let mut builder = Builder::new(TokioExecutor::new());
        builder.http1().keep_alive(true).header_read_timeout(None);
        builder
            .http2()
            .max_concurrent_streams(config.http2_max_concurrent_streams)
            .max_header_list_size(config.http2_max_header_list_size)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS);
        let builder = Arc::new(builder);
        let router = tower_service::Service::call(&mut self.make_service(), ())
            .await
            .unwrap_or_else(|never| match never {});
        let graceful = GracefulShutdown::new();
        let open = Arc::new(AtomicUsize::new(0));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors or similar: give the system a moment.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if open.load(Ordering::Relaxed) >= limits.max_connections {
                drop(stream);
                metrics::counter!(names::CONNECTIONS_REJECTED).increment(1);
                tracing::debug!(
                    max_connections = limits.max_connections,
                    "connection refused: max_connections reached"
                );
                continue;
            }
            // Small answers and stream events leave at once instead of waiting on Nagle's
            // algorithm.
            let _ = stream.set_nodelay(true);
            let slot = OpenSlot::new(open.clone());
            let activity = Arc::new(Activity::new());
            let io = TokioIo::new(WatchedIo {
                inner: stream,
                activity: activity.clone(),
                seen_first: false,
            });
            let service = {
                let router = router.clone();
                let activity = activity.clone();
                hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let guard = RequestGuard::new(activity.clone());
                    let response = router.clone().oneshot(request.map(Body::new));
                    async move {
                        let response = response.await?;
                        Ok::<_, std::convert::Infallible>(response.map(|inner| Tracked {
                            inner,
                            guard: Some(guard),
                        }))
                    }
                })
            };
            let builder = builder.clone();
            let watcher = graceful.watcher();
            connections.spawn(async move {
                let _slot = slot;
                let connection = builder.serve_connection_with_upgrades(io, service);
                let connection = watcher.watch(connection.into_owned());
                tokio::select! {
                    _ = connection => {}
                    reason = watchdog(&activity, limits) => {
                        metrics::counter!(names::CONNECTIONS_TIMED_OUT, "reason" => reason)
                            .increment(1);
                        tracing::debug!(reason, "closing a client connection");
                    }
                }
            });
        }
        drop(listener);
        tracing::info!("shutdown signal received: finishing in-flight requests");
        self.begin_shutdown();
        let deadline = Duration::from_secs(self.config().shutdown_timeout);
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("shut down cleanly"),
            () = tokio::time::sleep(deadline) => {
                tracing::warn!(
                    seconds = deadline.as_secs(),
                    "shutdown deadline passed: closing open requests"
                );
            }
        }
        connections.shutdown().await;
        Ok(())
    }

    /// Asks the upstream for its models and warns about each configured model that is
    /// missing or not online; returns their ids (empty when the list cannot be had). The same
    /// as [`refresh_models`](Self::refresh_models), which also says why.
    pub async fn check_models(&self) -> Vec<String> {
        self.refresh_models()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|missing| missing.model)
            .collect()
    }
}

/// Holds one place among `max_connections` while the connection lives.
struct OpenSlot(Arc<AtomicUsize>);

impl OpenSlot {
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(names::CONNECTIONS_OPEN).increment(1.0);
        OpenSlot(open)
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(names::CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// What one connection is doing, shared by its IO, its requests and its watchdog.
struct Activity {
    /// When the connection was accepted; the clock of `since_ms`.
    epoch: Instant,
    /// Requests whose response has not ended yet.
    in_flight: AtomicUsize,
    /// Whether bytes of a request head came since the connection went idle (a new connection
    /// counts as reading from its accept).
    reading: AtomicBool,
    /// Milliseconds after `epoch` when the connection went idle or its head began.
    since_ms: AtomicU64,
    /// The connection speaks HTTP/2: bytes between requests are control frames (pings,
    /// window updates), not a slow head, so they do not start the header timeout.
    h2: AtomicBool,
    /// Wakes the watchdog when the state changed.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            reading: AtomicBool::new(true),
            since_ms: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Bytes arrived from the client.
    fn on_read(&self) {
        if self.h2.load(Ordering::Relaxed) {
            return;
        }
        if !self.reading.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && !self.reading.swap(true, Ordering::AcqRel)
        {
            self.since_ms.store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }
}

/// Completes when the connection must be closed, with the reason: `header` (the head took
/// longer than `header_timeout`) or `idle` (kept alive with nothing to do for
/// `idle_timeout`). Never completes while a request is in progress.
async fn watchdog(activity: &Activity, limits: Limits) -> &'static str {
    loop {
        if activity.in_flight.load(Ordering::Acquire) > 0 {
            activity.changed.notified().await;
            continue;
        }
        let reading = activity.reading.load(Ordering::Acquire);
        let since = Duration::from_millis(activity.since_ms.load(Ordering::Acquire));
        let (limit, reason) = if reading {
            (limits.header_timeout, "header")
        } else {
            (limits.idle_timeout, "idle")
        };
        let deadline = activity.epoch + since + limit;
        if Instant::now() >= deadline {
            return reason;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = activity.changed.notified() => {}
        }
    }
}

/// Counts a request as in progress on its connection until its response body ends or is
/// dropped.
struct RequestGuard(Arc<Activity>);

impl RequestGuard {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.reading.store(false, Ordering::Release);
        RequestGuard(activity)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity
                .since_ms
                .store(activity.now_ms(), Ordering::Release);
            activity.reading.store(false, Ordering::Release);
            activity.changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body holding its request's [`RequestGuard`] until it ends.
    struct Tracked {
        #[pin]
        inner: Body,
        guard: Option<RequestGuard>,
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client socket that tells its [`Activity`] when bytes arrive.
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// Whether the first bytes were looked at (for the HTTP/2 preface).
    seen_first: bool,
}

/// The start of the HTTP/2 connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            if !self.seen_first {
                self.seen_first = true;
                let first = &buf.filled()[before..];
                if first.starts_with(H2_PREFACE) {
                    self.activity.h2.store(true, Ordering::Relaxed);
                }
            }
            self.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM: the shutdown future to give
/// [`Proxy::serve`].
pub async fn shutdown_signal() {
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
        () = ctrl_c => {},
        () = terminate => {},
    }
}
