//! XEP-0092 Software Version: the server answers `jabber:iq:version` queries addressed to it (or
//! with no `to`) with its name and version (§2).
//!
//! No `<os/>`: it is optional (§2), and naming the operating system helps attackers aim
//! (§5 Security Considerations), so the server never reveals it.

use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::{
    Context, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Module, Registrar,
};
use starling_proto::Element;

/// The `jabber:iq:version` namespace.
pub const NS: &str = "jabber:iq:version";

/// The software name reported.
pub const NAME: &str = "Starling";

pub struct Version;

impl Module for Version {
    fn name(&self) -> &'static str {
        "version"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(IqTarget::Server, IqType::Get, NS, "query", self);
        // XEP-0092 §4: support is discovered through this feature.
        reg.server_feature(NS);
    }
}

/// The `<query/>` of the result: `<name/>` and `<version/>` are both required (§2).
fn query() -> Element {
    Element::new("query", NS)
        .with_child(Element::new("name", NS).with_text(NAME))
        .with_child(Element::new("version", NS).with_text(env!("CARGO_PKG_VERSION")))
}

#[async_trait]
impl IqHandler for Version {
    async fn handle_iq(&self, _ctx: &Context, _req: IqRoute<'_>) -> IqOutcome {
        IqOutcome::Result(Some(query()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_shape() {
        assert_eq!(
            query().to_xml(),
            format!(
                "<query xmlns='jabber:iq:version'><name>Starling</name><version>{}</version></query>",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
