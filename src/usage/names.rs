//! The usage metrics' names and help texts.

/// Counter `{model, key, route, kind}`: tokens from the upstream's `usage`; `kind` is `input`,
/// `output`, `cached_input` or `reasoning` (cached input is part of input, reasoning part of
/// output). The image describer's calls have route and key `vision`.
pub const USAGE_TOKENS: &str = "hunyuan_proxy_usage_tokens_total";
/// Counter `{model, key, currency}`: cost of the tokens at the model's price.
pub const USAGE_COST: &str = "hunyuan_proxy_usage_cost_total";
/// Counter `{model, key, route, usage}`: answered upstream calls, `usage` = `reported` or
/// `missing` (the upstream sent no `usage`: counted, never guessed).
pub const USAGE_REQUESTS: &str = "hunyuan_proxy_usage_requests_total";
/// Counter `{label}`: a model or key folded into `other` because the label limit was reached.
pub const USAGE_LABEL_OVERFLOW: &str = "hunyuan_proxy_usage_label_overflow_total";
/// Counter `{budget}`: requests refused because a key's budget was spent.
pub const BUDGET_REFUSALS: &str = "hunyuan_proxy_budget_refusals_total";

/// Registers the help texts with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        USAGE_TOKENS,
        "Tokens reported in the upstream's usage, by model, client key name, route and kind."
    );
    metrics::describe_counter!(
        USAGE_COST,
        "Cost of the reported tokens at the model's price, by model, key and currency."
    );
    metrics::describe_counter!(
        USAGE_REQUESTS,
        "Answered upstream calls by model, key, route and whether the upstream reported usage."
    );
    metrics::describe_counter!(
        USAGE_LABEL_OVERFLOW,
        "Models or keys counted as `other` because the label limit was reached."
    );
    metrics::describe_counter!(
        BUDGET_REFUSALS,
        "Requests refused with 429 because a client key's budget was spent, by budget."
    );
}

/// Counter: request log lines that could not be written.
pub const REQUEST_LOG_WRITE_ERRORS: &str = "hunyuan_proxy_request_log_write_errors_total";
