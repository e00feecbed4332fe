//! The server loop: [`Proxy::serve`] accepts connections until a shutdown future completes,
//! then drains in-flight requests within `shutdown_timeout`. The binary, `examples/proxy.rs`,
//! the overhead bench and the tests all serve through it.

use super::Proxy;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long the start-up model check may take.
const MODEL_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl Proxy {
    /// Serves the proxy on `listener` until `shutdown` completes.
    ///
    /// Then it stops accepting connections, turns `/health/live` to 503 (so a load balancer
    /// takes the replica out) and lets in-flight requests, open streams included, finish for
    /// up to `shutdown_timeout` seconds; whatever is still open then is closed.
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
        let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
        let proxy = self.clone();
        let graceful = async move {
            shutdown.await;
            tracing::info!("shutdown signal received: finishing in-flight requests");
            proxy.begin_shutdown();
            let _ = signalled_tx.send(true);
        };
        // Small answers and stream events leave at once instead of waiting on Nagle's
        // algorithm.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, self.make_service()).with_graceful_shutdown(graceful);
        let deadline = Duration::from_secs(self.config().shutdown_timeout);
        let forced = async move {
            if signalled_rx.wait_for(|signalled| *signalled).await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(deadline).await;
        };
        tokio::select! {
            result = server => {
                result?;
                tracing::info!("shut down cleanly");
            }
            () = forced => {
                tracing::warn!(
                    seconds = deadline.as_secs(),
                    "shutdown deadline passed: closing open requests"
                );
            }
        }
        Ok(())
    }

    /// Asks the upstream for its models (`GET {api_base}/models`, when the key allows) and
    /// warns about each configured model (`text_model`, `vision_model`) it does not list;
    /// returns those models. Quiet (debug, and nothing returned) when the list cannot be had:
    /// no key, a key that may not list, an upstream without `/models`. The binary runs it at
    /// start.
    pub async fn check_models(&self) -> Vec<String> {
        let upstream = self.upstream();
        let mut request = upstream
            .client()
            .get(upstream.models_url())
            .timeout(MODEL_CHECK_TIMEOUT);
        if let Some(auth) = upstream.auth_header() {
            request = request.header(http::header::AUTHORIZATION, auth.clone());
        }
        let listed = match request.send().await {
            Ok(response) if response.status().is_success() => {
                let body = response.bytes().await.ok();
                body.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            }
            Ok(response) => {
                tracing::debug!(
                    status = response.status().as_u16(),
                    "the upstream does not list its models"
                );
                None
            }
            Err(_) => {
                tracing::debug!("cannot ask the upstream for its models");
                None
            }
        };
        let Some(ids) = listed.as_ref().and_then(model_ids) else {
            return Vec::new();
        };
        let config = self.config();
        let mut missing = Vec::new();
        for (key, model) in [
            ("text_model", config.text_model()),
            ("vision_model", config.vision_model()),
        ] {
            if !ids.iter().any(|id| id == model) {
                tracing::warn!(
                    key,
                    model,
                    "the upstream does not list this configured model; requests for it may fail"
                );
                missing.push(model.to_owned());
            }
        }
        missing
    }
}

/// The model ids of an OpenAI-style `{"data":[{"id":…}]}` list.
fn model_ids(list: &serde_json::Value) -> Option<Vec<String>> {
    let data = list.get("data")?.as_array()?;
    Some(
        data.iter()
            .filter_map(|m| m.get("id")?.as_str().map(str::to_owned))
            .collect(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_read_from_an_openai_list() {
        let list = serde_json::json!({"object":"list","data":[{"id":"a"},{"id":"b"},{"x":1}]});
        assert_eq!(model_ids(&list).unwrap(), vec!["a", "b"]);
        assert!(model_ids(&serde_json::json!({"error":{}})).is_none());
    }
}
