//! The slot service at the upload domains (XEP-0363 §3–§5).

use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::forms::{DataForm, Field};
use starling_module_api::{
    ComponentDomain, ComponentHandler, Context, Event, EventListener, Module, Registrar,
};
use starling_proto::{
    BareJid, Element, ErrorType, Jid, StanzaError, StanzaErrorCondition, StanzaKind, error_reply,
    iq_result, ns,
};
use starling_storage::{StorageError, UploadSlot};

use crate::sign::Grant;
use crate::{NS_UPLOAD, PUT_LIFETIME, Upload, names, secs, unix_now};

impl Module for Upload {
    fn name(&self) -> &'static str {
        "upload"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        for domain in &self.options.domains {
            reg.component(ComponentDomain::Domain(domain.clone()), self.clone());
        }
        reg.events(self);
    }
}

#[async_trait]
impl ComponentHandler for Upload {
    async fn on_stanza(&self, ctx: &Context, stanza: Element) {
        let Some(to) = stanza.attr("to").and_then(|t| Jid::new(t).ok()) else {
            return;
        };
        let refuse = |c| error_reply(&stanza, &StanzaError::new(c));
        let reply = match (StanzaKind::of(&stanza), stanza.attr("type")) {
            (_, Some("error" | "result")) | (Some(StanzaKind::Presence), _) => return,
            (Some(StanzaKind::Iq), Some("get"))
                if to.node().is_none() && to.resource().is_none() =>
            {
                let Some(payload) = stanza.children().next() else {
                    ctx.router
                        .route(refuse(StanzaErrorCondition::BadRequest))
                        .await;
                    return;
                };
                match (payload.name(), payload.ns(), payload.attr("node")) {
                    ("query", ns::DISCO_INFO, None) => {
                        iq_result(&stanza).with_child(self.disco_info())
                    }
                    ("query", ns::DISCO_ITEMS, None) => {
                        iq_result(&stanza).with_child(Element::new("query", ns::DISCO_ITEMS))
                    }
                    ("query", ns::DISCO_INFO | ns::DISCO_ITEMS, Some(_)) => {
                        refuse(StanzaErrorCondition::ItemNotFound)
                    }
                    ("ping", ns::PING, _) => iq_result(&stanza),
                    ("request", NS_UPLOAD, _) => self.request(ctx, &stanza, payload).await,
                    _ => refuse(StanzaErrorCondition::ServiceUnavailable),
                }
            }
            _ => refuse(StanzaErrorCondition::ServiceUnavailable),
        };
        ctx.router.route(reply).await;
    }
}

#[async_trait]
impl EventListener for Upload {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        if let Event::AccountDeleted(bare) = event {
            self.forget(ctx, bare).await;
        }
    }
}

impl Upload {
    /// XEP-0363 §3: the identity, the feature and the largest file size (XEP-0128).
    fn disco_info(&self) -> Element {
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "store")
                .with_attr("type", "file")
                .with_attr("name", "HTTP File Upload"),
        );
        for f in [ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PING, NS_UPLOAD] {
            q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        q.append_child(
            DataForm::result(Some(NS_UPLOAD))
                .field(Field::plain("max-file-size").value(self.options.max_file_size.to_string()))
                .to_element(),
        );
        q
    }

    /// XEP-0363 §4: a slot, or an error of §5 (the request echoed, as in its examples).
    async fn request(&self, ctx: &Context, iq: &Element, request: &Element) -> Element {
        match self.slot(ctx, iq, request).await {
            Ok(slot) => iq_result(iq).with_child(slot),
            Err(e) => Element::new("iq", ns::CLIENT)
                .with_opt_attr("id", iq.attr("id"))
                .with_opt_attr("to", iq.attr("from"))
                .with_opt_attr("from", iq.attr("to"))
                .with_attr("type", "error")
                .with_child(request.clone())
                .with_child(e.to_element()),
        }
    }

    async fn slot(
        &self,
        ctx: &Context,
        iq: &Element,
        request: &Element,
    ) -> Result<Element, StanzaError> {
        let owner = iq
            .attr("from")
            .and_then(|f| Jid::new(f).ok())
            .filter(|j| j.node().is_some())
            .map(|j| j.to_bare())
            .filter(|b| {
                let d = b.domain().as_str();
                ctx.is_local_domain(d) && !self.options.refused_hosts.iter().any(|h| h == d)
            })
            .ok_or_else(|| {
                StanzaError::new(StanzaErrorCondition::NotAllowed)
                    .with_type(ErrorType::Cancel)
                    .with_text("only accounts of this server may upload files")
            })?;
        let bad = |text: &str| StanzaError::new(StanzaErrorCondition::BadRequest).with_text(text);
        let filename = request
            .attr("filename")
            .and_then(names::sanitize_filename)
            .ok_or_else(|| bad("a file name is required"))?;
        let size: u64 = request
            .attr("size")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("the size must be a number of bytes"))?;
        let content_type = match request.attr("content-type") {
            Some(ct) if names::is_valid_content_type(ct) => Some(ct.to_owned()),
            Some(_) => return Err(bad("the content type is not a media type")),
            None => None,
        };
        let max = self.options.max_file_size;
        if size > max {
            // §5: not-acceptable, with the limit.
            let mut e = StanzaError::new(StanzaErrorCondition::NotAcceptable)
                .with_type(ErrorType::Modify)
                .with_text(format!(
                    "File too large. The maximum file size is {max} bytes"
                ));
            e.app =
                Some(Element::new("file-too-large", NS_UPLOAD).with_child(
                    Element::new("max-file-size", NS_UPLOAD).with_text(max.to_string()),
                ));
            return Err(e);
        }
        let internal = || StanzaError::new(StanzaErrorCondition::InternalServerError);
        let Some(base) = self.base_url.get() else {
            tracing::error!("upload slot requested before the HTTP listener's URL is known");
            return Err(internal());
        };
        let now = unix_now();
        let mut stored = UploadSlot {
            id: names::new_slot_id(),
            owner: owner.to_string(),
            filename,
            size,
            content_type,
            created_at: now,
            completed: false,
        };
        let mut reserved = ctx
            .stores
            .upload
            .reserve(&stored, self.options.quota_per_user)
            .await;
        if matches!(reserved, Err(StorageError::AlreadyExists)) {
            // 144 random bits taken twice: try once more rather than fail.
            stored.id = names::new_slot_id();
            reserved = ctx
                .stores
                .upload
                .reserve(&stored, self.options.quota_per_user)
                .await;
        }
        match reserved {
            Ok(true) => {}
            Ok(false) => {
                // §5: a temporary error; space comes back when files expire.
                return Err(StanzaError::new(StanzaErrorCondition::ResourceConstraint)
                    .with_type(ErrorType::Wait)
                    .with_text(format!(
                        "Quota reached: your files may take {} bytes together",
                        self.options.quota_per_user
                    )));
            }
            Err(e) => {
                tracing::error!(error = %e, "reserving an upload slot failed");
                return Err(internal());
            }
        }
        let get = format!(
            "{base}/upload/{}/{}",
            stored.id,
            names::encode_segment(&stored.filename)
        );
        let expires = now + secs(PUT_LIFETIME);
        let signature = self.signer.sign(&Grant {
            slot: &stored.id,
            filename: &stored.filename,
            size,
            content_type: stored.content_type.as_deref(),
            expires,
        });
        let put = format!("{get}?e={expires}&s={signature}");
        tracing::debug!(slot = %stored.id, %owner, size, "upload slot handed out");
        Ok(Element::new("slot", NS_UPLOAD)
            .with_child(Element::new("put", NS_UPLOAD).with_attr("url", put))
            .with_child(Element::new("get", NS_UPLOAD).with_attr("url", get)))
    }

    /// An account was deleted: its files go, then their rows.
    async fn forget(&self, ctx: &Context, bare: &BareJid) {
        let owner = bare.to_string();
        let slots = match ctx.stores.upload.slots_of(&owner).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, %owner, "listing a deleted account's uploads failed");
                return;
            }
        };
        for slot in slots {
            self.delete_slot(&*ctx.stores.upload, &slot.id).await;
        }
    }
}
