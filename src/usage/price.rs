//! Prices per million tokens, built in for the models the proxy knows and set in the config
//! file (`[models."<id>"] price = { ... }`).

use super::Usage;
use serde::{Deserialize, Serialize};

/// A model's price per million tokens, in `currency`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million input tokens not read from the upstream's cache.
    pub input: f64,
    /// Per million output tokens (reasoning included).
    pub output: f64,
    /// Per million input tokens read from the upstream's cache; unset: the input price.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// The currency (default `CNY`, TokenHub's).
    #[serde(default = "default_currency")]
    pub currency: String,
}

fn default_currency() -> String {
    "CNY".to_owned()
}

impl Price {
    /// A price of `input` and `output` per million tokens, cached input at `cached_input`.
    pub fn new(input: f64, output: f64, cached_input: f64, currency: impl Into<String>) -> Self {
        Price {
            input,
            output,
            cached_input: Some(cached_input),
            currency: currency.into(),
        }
    }

    /// Whether every figure is finite and not negative, and the currency is named.
    pub fn is_valid(&self) -> bool {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        ok(self.input)
            && ok(self.output)
            && self.cached_input.is_none_or(ok)
            && !self.currency.trim().is_empty()
    }

    /// What `usage` costs: uncached input, cached input and output at their prices.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let uncached = usage.input_tokens - cached;
        let per = 1.0 / 1_000_000.0;
        (uncached as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + usage.output_tokens as f64 * self.output)
            * per
    }
}

/// The prices the proxy knows without configuration: TokenHub's list prices (CNY per
/// million tokens) for `hy4` and `hy4-flash`.
pub fn built_in_prices() -> Vec<(&'static str, Price)> {
    vec![
        ("hy4", Price::new(6.0, 18.0, 0.3, "CNY")),
        ("hy4-flash", Price::new(0.5, 2.0, 0.02, "CNY")),
    ]
}

/// The price of each model: the built-in ones, overridden or extended by configuration.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    prices: super::NameMap<String, Price>,
}

impl PriceTable {
    /// The built-in prices, then `configured` over them.
    pub fn new<I: IntoIterator<Item = (String, Price)>>(configured: I) -> Self {
        let mut prices: super::NameMap<String, Price> = built_in_prices()
            .into_iter()
            .map(|(model, price)| (model.to_owned(), price))
            .collect();
        prices.extend(configured);
        PriceTable { prices }
    }

    /// The price of `model`, if known.
    pub fn get(&self, model: &str) -> Option<&Price> {
        self.prices.get(model)
    }

    /// What `usage` of `model` costs and in which currency; `(0.0, None)` with no known price.
    pub fn cost(&self, model: &str, usage: &Usage) -> (f64, Option<&str>) {
        match self.get(model) {
            Some(price) => (price.cost(usage), Some(price.currency.as_str())),
            None => (0.0, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_prices_cached_input_apart() {
        let table = PriceTable::new([]);
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            cached_input_tokens: 400_000,
            reasoning_tokens: 100_000,
        };
        let (cost, currency) = table.cost("hy4", &usage);
        // 600k × 6 + 400k × 0.3 + 500k × 18, per million.
        assert!((cost - (3.6 + 0.12 + 9.0)).abs() < 1e-9, "{cost}");
        assert_eq!(currency, Some("CNY"));
        assert_eq!(table.cost("unknown", &usage), (0.0, None));
        let table = PriceTable::new([("hy4".to_owned(), Price::new(1.0, 1.0, 1.0, "USD"))]);
        assert_eq!(table.cost("hy4", &usage).1, Some("USD"));
        assert!(!Price::new(-1.0, 1.0, 1.0, "CNY").is_valid());
    }
}
