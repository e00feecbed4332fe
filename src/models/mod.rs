//! Model profiles: what each upstream model can do and what it refuses, and the layer that
//! makes each chat request one its model accepts.
//!
//! TokenHub serves many models on one key, each with rules of its own
//! (`docs/models.md` has the table, with the confidence of each fact):
//!
//! - [`ModelTable`]: the built-in profiles ([`ModelTable::builtin`]), overridden and extended
//!   by the config's `[models."<id>"]` tables ([`ModelSettings`]); looked up by exact id, then
//!   by the longest prefix (`deepseek-v4-flash*` covers the dated ids); retired ids
//!   (`hy3-preview`, `hunyuan-*`, …) resolve to their replacement.
//! - [`ModelsLayer`]: applies the profile of the model a request names, just before the
//!   upstream ([`apply_profile`]): thinking and effort in the model's vocabulary, forced
//!   `tool_choice`, refused and renamed fields, `developer` → `system`, `stop`, and reasoning
//!   replay from the client's history, the proxy's [`ReasoningMemory`], or a placeholder.
//!   What it removed or changed against the client's wish goes into `x-hunyuan-proxy-dropped`.
//! - The [`cascade`](crate::cascade) reads the same table to pass images natively to models
//!   that see them.
//!
//! ```
//! use hunyuan_proxy::models::ModelTable;
//!
//! let table = ModelTable::builtin();
//! assert!(table.sees_images("hy4"));
//! assert!(!table.sees_images("hy3"));
//! assert_eq!(table.resolve("hy3-preview").model, "hy3");
//! ```

mod layer;
mod memory;
mod profile;
mod record;
mod rules;
mod table;
#[cfg(test)]
mod tests;

pub use layer::{Models, ModelsConfig, ModelsLayer, DROPPED_LABEL, REPLAYED_METRIC};
pub use memory::{ReasoningMemory, MAX_REASONING_BYTES, SHARED_REASONING_TTL};
pub use profile::{ModelProfile, ModelSettings, ThinkingSwitch, ToolChoiceSupport};
pub use record::MAX_JSON_BYTES;
pub use rules::{
    apply_profile, ForcedToolChoice, Replayed, RuleOutcome, DEFAULT_REASONING_PLACEHOLDER,
};
pub use table::{ModelTable, Resolved, EFFORT_SCALE};
