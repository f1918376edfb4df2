//! XEP-0199 XMPP Ping: the server answers a ping addressed to it (or with no `to`) with an empty
//! result (§4.2).

use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::{
    Context, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Module, Registrar,
};
use starling_proto::ns;

pub struct Ping;

impl Module for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(IqTarget::Server, IqType::Get, ns::PING, "ping", self);
        reg.server_feature(ns::PING);
    }
}

#[async_trait]
impl IqHandler for Ping {
    async fn handle_iq(&self, _ctx: &Context, _req: IqRoute<'_>) -> IqOutcome {
        IqOutcome::Result(None)
    }
}
