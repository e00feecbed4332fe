//! Metric handles registered once per route and per model, so that recording a request does
//! not build label sets and look them up in the recorder every time.
//!
//! Each handle is registered when first used (only series that occur are exported), with the
//! recorder installed at that moment: install the recorder before the first request.

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

/// A route's label and its handles, each registered when first used (so only series that
/// occur are exported).
pub(crate) struct RouteHandles {
    label: SharedString,
    in_flight: OnceLock<Gauge>,
    overhead: OnceLock<Histogram>,
    time_to_first_byte: OnceLock<Histogram>,
    duration: [OnceLock<Histogram>; 2],
    requests: [OnceLock<Counter>; STATUS_CLASSES.len() * OUTCOMES.len()],
}

impl RouteHandles {
    pub(crate) fn new(label: SharedString) -> Self {
        RouteHandles {
            label,
            in_flight: OnceLock::new(),
            overhead: OnceLock::new(),
            time_to_first_byte: OnceLock::new(),
            duration: [OnceLock::new(), OnceLock::new()],
            requests: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    pub(crate) fn in_flight(&self) -> &Gauge {
        self.in_flight
            .get_or_init(|| metrics::gauge!(names::IN_FLIGHT, "route" => self.label.clone()))
    }

    pub(crate) fn overhead(&self) -> &Histogram {
        self.overhead
            .get_or_init(|| metrics::histogram!(names::OVERHEAD, "route" => self.label.clone()))
    }

    pub(crate) fn time_to_first_byte(&self) -> &Histogram {
        self.time_to_first_byte.get_or_init(
            || metrics::histogram!(names::TIME_TO_FIRST_BYTE, "route" => self.label.clone()),
        )
    }

    pub(crate) fn duration(&self, image: bool) -> &Histogram {
        self.duration[usize::from(image)].get_or_init(|| {
            let path = if image { "image" } else { "text" };
            metrics::histogram!(
                names::REQUEST_DURATION, "route" => self.label.clone(), "path" => path
            )
        })
    }

    pub(crate) fn requests(&self, status: StatusCode, outcome: Outcome) -> &Counter {
        let (s, o) = (status_index(status), outcome_index(outcome));
        self.requests[s * OUTCOMES.len() + o].get_or_init(|| {
            metrics::counter!(
                names::REQUESTS,
                "route" => self.label.clone(),
                "status" => STATUS_CLASSES[s],
                "outcome" => outcome.label()
            )
        })
    }
}

/// A model's label and handles, each registered when first used.
pub(crate) struct ModelHandles {
    pub(crate) name: Arc<str>,
    label: SharedString,
    upstream_duration: OnceLock<Histogram>,
    tokens: [OnceLock<Counter>; 2],
    calls: Mutex<Vec<(u16, Counter)>>,
}

impl ModelHandles {
    fn new(name: &str) -> Self {
        let name: Arc<str> = Arc::from(name);
        ModelHandles {
            label: SharedString::from_shared(name.clone()),
            name,
            upstream_duration: OnceLock::new(),
            tokens: [OnceLock::new(), OnceLock::new()],
            calls: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn upstream_duration(&self) -> &Histogram {
        self.upstream_duration.get_or_init(
            || metrics::histogram!(names::UPSTREAM_DURATION, "model" => self.label.clone()),
        )
    }

    /// The tokens counter: prompt tokens (`out == false`) or completion tokens.
    pub(crate) fn tokens(&self, out: bool) -> &Counter {
        self.tokens[usize::from(out)].get_or_init(|| {
            let direction = if out { "out" } else { "in" };
            metrics::counter!(
                names::TOKENS, "model" => self.label.clone(), "direction" => direction
            )
        })
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
