//! [`MetricsLayer`] and its configuration.

use super::handles::{ModelTable, RouteHandles};
use super::monitor::Monitor;
use super::service::Metrics;
use metrics::SharedString;
use serde::Deserialize;
use std::sync::Arc;

/// Which routes the layer names in labels and which it feeds to the [`Monitor`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Paths used as the `route` label as they are; any other path is labelled `other`
    /// (so that scanners cannot blow up the label set).
    pub routes: Vec<String>,
    /// Paths whose requests go into the monitor's window (rates, percentiles, alerts).
    /// `None`: every path except `/health*`, `/metrics` and `/status`.
    pub monitor_routes: Option<Vec<String>>,
}

impl MetricsConfig {
    /// Adds a path to the known routes.
    pub fn route(mut self, path: impl Into<String>) -> Self {
        self.routes.push(path.into());
        self
    }

    /// Sets the paths whose requests go into the monitor's window.
    pub fn monitor_routes<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.monitor_routes = Some(paths.into_iter().map(Into::into).collect());
        self
    }
}

/// A resolved route: its metric handles and whether it feeds the monitor.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) handles: Arc<RouteHandles>,
    pub(crate) monitored: bool,
}

pub(crate) struct Shared {
    routes: Vec<(String, Route)>,
    monitor_routes: Option<Vec<String>>,
    other: Arc<RouteHandles>,
    pub(crate) models: ModelTable,
    pub(crate) monitor: Option<Arc<Monitor>>,
}

fn is_observability_path(path: &str) -> bool {
    path == "/metrics" || path == "/status" || path.starts_with("/health")
}

impl Shared {
    fn monitored(&self, path: &str) -> bool {
        match &self.monitor_routes {
            Some(list) => list.iter().any(|p| p == path),
            None => !is_observability_path(path),
        }
    }

    pub(crate) fn resolve(&self, path: &str) -> Route {
        match self.routes.iter().find(|(p, _)| p == path) {
            Some((_, route)) => route.clone(),
            None => Route {
                handles: self.other.clone(),
                monitored: self.monitored(path),
            },
        }
    }
}

/// Records every request through the `metrics` facade and, when given a [`Monitor`], into
/// its window. See the [module docs](super).
#[derive(Clone)]
pub struct MetricsLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayer")
            .field(
                "routes",
                &self
                    .shared
                    .routes
                    .iter()
                    .map(|(p, _)| p)
                    .collect::<Vec<_>>(),
            )
            .field("monitor", &self.shared.monitor.is_some())
            .finish()
    }
}

impl Default for MetricsLayer {
    fn default() -> Self {
        MetricsLayer::new(MetricsConfig::default())
    }
}

impl MetricsLayer {
    /// A layer with `config` and no monitor. Registers the metrics' HELP texts with the
    /// installed recorder.
    pub fn new(config: MetricsConfig) -> Self {
        Self::build(config, None)
    }

    /// The same layer, also recording into `monitor`.
    pub fn with_monitor(self, monitor: Arc<Monitor>) -> Self {
        let shared = &self.shared;
        let routes = shared.routes.iter().map(|(p, _)| p.clone()).collect();
        let config = MetricsConfig {
            routes,
            monitor_routes: shared.monitor_routes.clone(),
        };
        Self::build(config, Some(monitor))
    }

    fn build(config: MetricsConfig, monitor: Option<Arc<Monitor>>) -> Self {
        super::names::describe();
        let mut shared = Shared {
            routes: Vec::new(),
            monitor_routes: config.monitor_routes,
            other: Arc::new(RouteHandles::new(SharedString::const_str("other"))),
            models: ModelTable::default(),
            monitor,
        };
        let mut routes = config.routes;
        routes.dedup();
        shared.routes = routes
            .into_iter()
            .map(|path| {
                let label = SharedString::from_shared(Arc::from(path.as_str()));
                let route = Route {
                    handles: Arc::new(RouteHandles::new(label)),
                    monitored: shared.monitored(&path),
                };
                (path, route)
            })
            .collect();
        MetricsLayer {
            shared: Arc::new(shared),
        }
    }

    /// The monitor the layer records into, if any.
    pub fn monitor(&self) -> Option<&Arc<Monitor>> {
        self.shared.monitor.as_ref()
    }
}

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::new(inner, self.shared.clone())
    }
}
