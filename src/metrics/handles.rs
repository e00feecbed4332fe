//! Metric handles registered once per route and per model, so that recording a request does
//! not build label sets and look them up in the recorder every time.
//!
//! Handles are registered on first use, with the recorder installed at that moment: install
//! the recorder before the first request.

use super::monitor::Outcome;
use super::names;
use http::StatusCode;
use metrics::{Counter, Gauge, Histogram, SharedString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

/// Distinct model labels kept; further models are labelled `other` (model names come from
/// clients, so they must not grow the label set without bound).
pub(crate) const MAX_MODELS: usize = 64;

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const OUTCOMES: [Outcome; 4] = [
    Outcome::Success,
    Outcome::ClientError,
    Outcome::ServerError,
    Outcome::Aborted,
];

fn status_index(status: StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Success => 0,
        Outcome::ClientError => 1,
        Outcome::ServerError => 2,
        Outcome::Aborted => 3,
    }
}

/// A route's label and its handles (registered on first use).
pub(crate) struct RouteHandles {
    pub(crate) label: SharedString,
    cell: OnceLock<RouteMetrics>,
}

/// The handles of one route.
pub(crate) struct RouteMetrics {
    pub(crate) in_flight: Gauge,
    pub(crate) overhead: Histogram,
    pub(crate) time_to_first_byte: Histogram,
    duration: [Histogram; 2],
    requests: Vec<Counter>,
}

impl RouteHandles {
    pub(crate) fn new(label: SharedString) -> Self {
        RouteHandles {
            label,
            cell: OnceLock::new(),
        }
    }

    pub(crate) fn get(&self) -> &RouteMetrics {
        self.cell.get_or_init(|| {
            let route = &self.label;
            let mut requests = Vec::with_capacity(STATUS_CLASSES.len() * OUTCOMES.len());
            for status in STATUS_CLASSES {
                for outcome in OUTCOMES {
                    requests.push(metrics::counter!(
                        names::REQUESTS,
                        "route" => route.clone(),
                        "status" => status,
                        "outcome" => outcome.label()
                    ));
                }
            }
            RouteMetrics {
                in_flight: metrics::gauge!(names::IN_FLIGHT, "route" => route.clone()),
                overhead: metrics::histogram!(names::OVERHEAD, "route" => route.clone()),
                time_to_first_byte: metrics::histogram!(
                    names::TIME_TO_FIRST_BYTE, "route" => route.clone()
                ),
                duration: [
                    metrics::histogram!(
                        names::REQUEST_DURATION, "route" => route.clone(), "path" => "text"
                    ),
                    metrics::histogram!(
                        names::REQUEST_DURATION, "route" => route.clone(), "path" => "image"
                    ),
                ],
                requests,
            }
        })
    }
}

impl RouteMetrics {
    pub(crate) fn requests(&self, status: StatusCode, outcome: Outcome) -> &Counter {
        &self.requests[status_index(status) * OUTCOMES.len() + outcome_index(outcome)]
    }

    pub(crate) fn duration(&self, image: bool) -> &Histogram {
        &self.duration[usize::from(image)]
    }
}

/// A model's label and handles.
pub(crate) struct ModelHandles {
    pub(crate) name: Arc<str>,
    label: SharedString,
    pub(crate) upstream_duration: Histogram,
    pub(crate) tokens_in: Counter,
    pub(crate) tokens_out: Counter,
    calls: Mutex<Vec<(u16, Counter)>>,
}

impl ModelHandles {
    fn new(name: &str) -> Self {
        let name: Arc<str> = Arc::from(name);
        let label = SharedString::from_shared(name.clone());
        ModelHandles {
            upstream_duration: metrics::histogram!(
                names::UPSTREAM_DURATION, "model" => label.clone()
            ),
            tokens_in: metrics::counter!(
                names::TOKENS, "model" => label.clone(), "direction" => "in"
            ),
            tokens_out: metrics::counter!(
                names::TOKENS, "model" => label.clone(), "direction" => "out"
            ),
            calls: Mutex::new(Vec::new()),
            name,
            label,
        }
    }

    /// The upstream-calls counter for `status`.
    pub(crate) fn calls(&self, status: StatusCode) -> Counter {
        let code = status.as_u16();
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = calls.iter().find(|(c, _)| *c == code) {
            return counter.clone();
        }
        let counter = metrics::counter!(
            names::UPSTREAM_CALLS,
            "model" => self.label.clone(),
            "status" => code.to_string()
        );
        calls.push((code, counter.clone()));
        counter
    }
}

/// The models seen so far, at most [`MAX_MODELS`] of them, then `other`.
#[derive(Default)]
pub(crate) struct ModelTable {
    models: RwLock<HashMap<String, Arc<ModelHandles>>>,
    other: OnceLock<Arc<ModelHandles>>,
}

impl ModelTable {
    pub(crate) fn get(&self, name: &str) -> Arc<ModelHandles> {
        if let Some(handles) = self
            .models
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return handles.clone();
        }
        let mut models = self.models.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(handles) = models.get(name) {
            return handles.clone();
        }
        if models.len() >= MAX_MODELS {
            return self
                .other
                .get_or_init(|| Arc::new(ModelHandles::new("other")))
                .clone();
        }
        let handles = Arc::new(ModelHandles::new(name));
        models.insert(name.to_owned(), handles.clone());
        handles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_bounded() {
        let table = ModelTable::default();
        for i in 0..MAX_MODELS {
            assert_eq!(&*table.get(&format!("m{i}")).name, format!("m{i}"));
        }
        assert_eq!(&*table.get("one-too-many").name, "other");
        assert_eq!(&*table.get("m0").name, "m0");
    }
}
