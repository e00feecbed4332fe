//! The integration tests, one module per area, linked as one test binary (`it`) so that a
//! change in `src/` relinks one executable instead of one per file.
//!
//! The modules share one process: the Prometheus recorder, the `metrics` global recorder,
//! the environment and anything `static` are common to all of them, and the tests run in
//! parallel threads. Assertions on `/metrics` therefore compare before and after, and the one
//! test that needs a recorder of its own runs in a child process (`common::run_alone`).

mod common;

mod agents;
mod agents_codex;
mod anthropic;
mod binary;
mod cascade;
mod claude_code;
#[cfg(unix)]
mod connections;
mod custom_stack;
mod dashboard;
#[cfg(feature = "prometheus")]
mod embed_axum;
mod fallback;
mod fix;
mod fix_props;
mod foundation;
mod fuzz_http;
mod fuzz_parse;
mod hostile;
mod key_pool;
mod mock;
mod models;
#[cfg(feature = "prometheus")]
mod observe;
#[cfg(all(feature = "otel", feature = "server"))]
mod otel;
mod raw_body;
mod redis_faults;
mod redis_support;
mod reliability;
mod replicas;
mod responses;
mod responses_http;
mod routes;
#[cfg(unix)]
mod shutdown;
mod startup;
mod tokenhub;
mod tokenhub_clients;
mod truncation;
mod usage;
