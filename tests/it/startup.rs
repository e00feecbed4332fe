//! What the server checks at start: the upstream's model list against the configured models.

use crate::common::TestProxy;
use hunyuan_proxy::mock::{MockConfig, MockHunyuan};
use hunyuan_proxy::Proxy;

#[tokio::test]
async fn configured_models_the_upstream_does_not_list_are_reported() {
    let mock = MockHunyuan::start_with(
        MockConfig::default()
            .with_models(["hunyuan-2.0-thinking-20251109", "hunyuan-turbos-latest"]),
    )
    .await;
    let config = TestProxy::config_for(&mock);
    let proxy = Proxy::new(config).unwrap();
    // The default vision model is not served by this upstream; the text model is.
    assert_eq!(
        proxy.check_models().await,
        vec!["hunyuan-vision-1.5-instruct".to_owned()]
    );
    assert_eq!(mock.request_count(), 1, "one GET /v1/models");
}

#[tokio::test]
async fn an_upstream_that_will_not_list_its_models_is_not_an_error() {
    let mock = MockHunyuan::start_with(MockConfig::default().with_api_key("only-this-key")).await;
    // The proxy's key is another one: the list answers 401, and nothing is reported.
    let proxy = Proxy::new(TestProxy::config_for(&mock)).unwrap();
    assert!(proxy.check_models().await.is_empty());
}
