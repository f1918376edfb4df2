//! XEP-0202 Entity Time: the server answers `urn:xmpp:time` queries addressed to it (or with no
//! `to`) with its UTC time and offset (§2). The server reports UTC: offset `+00:00`, which also
//! says nothing about where it runs (§6 notes the offset can hint at a location).

use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::{
    Context, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Module, Registrar,
};
use starling_proto::Element;

use crate::clock;

/// The `urn:xmpp:time` namespace.
pub const NS: &str = "urn:xmpp:time";

pub struct Time;

impl Module for Time {
    fn name(&self) -> &'static str {
        "time"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(IqTarget::Server, IqType::Get, NS, "time", self);
        // XEP-0202 §4: an entity that supports the protocol MUST advertise this feature.
        reg.server_feature(NS);
    }
}

/// The `<time/>` of the result for the instant `utc` (already formatted): `<tzo/>` is an XEP-0082
/// time zone offset, `<utc/>` an XEP-0082 DateTime in UTC; both are required (§2).
fn time_element(utc: String) -> Element {
    Element::new("time", NS)
        .with_child(Element::new("tzo", NS).with_text("+00:00"))
        .with_child(Element::new("utc", NS).with_text(utc))
}

#[async_trait]
impl IqHandler for Time {
    async fn handle_iq(&self, _ctx: &Context, _req: IqRoute<'_>) -> IqOutcome {
        IqOutcome::Result(Some(time_element(clock::now_utc())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_shape() {
        assert_eq!(
            time_element(clock::format_unix(1_709_251_199)).to_xml(),
            "<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>2024-02-29T23:59:59Z</utc></time>"
        );
    }
}
