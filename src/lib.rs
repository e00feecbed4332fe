//! # hunyuan-proxy
//!
//! Composable [tower] layers, and a proxy server built from them, that let any OpenAI-style
//! client use Tencent Hunyuan models.
#![deny(missing_docs, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod chat;
pub mod error;
pub mod fix;

pub use error::ProxyError;
