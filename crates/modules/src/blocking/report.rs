//! XEP-0377 (Blocking Command Reports, 0.4.1): the `<report/>` a client attaches to a blocked
//! `<item/>`. Section numbers are the XEP's.

use starling_proto::Element;

/// The namespace, also the disco feature (§3).
pub const NS: &str = "urn:xmpp:reporting:1";
/// The namespace of revisions before 0.3, which some deployed clients still send.
pub const NS_LEGACY: &str = "urn:xmpp:reporting:0";
/// The reasons §4 defines.
pub const SPAM: &str = "urn:xmpp:reporting:spam";
pub const ABUSE: &str = "urn:xmpp:reporting:abuse";
const NS_SID: &str = "urn:xmpp:sid:0";

/// The longest explanation kept, in characters; a longer one is cut.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The most message ids one report may name.
pub const MAX_STANZA_IDS: usize = 50;
/// The longest reason URI accepted, in bytes.
const MAX_REASON_BYTES: usize = 256;
/// The longest message id accepted, in bytes.
const MAX_ID_BYTES: usize = 256;

/// What a report says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub reason: String,
    pub text: Option<String>,
    pub stanza_ids: Vec<String>,
}

/// The report in `item`, if it carries one; `Err` with the reason for a `<bad-request/>` when it
/// is malformed (§4: a report MUST name a reason).
pub fn parse(item: &Element) -> Result<Option<Report>, &'static str> {
    for child in item.children() {
        match (child.ns(), child.name()) {
            (NS, "report") => return parse_report(child).map(Some),
            // COMPAT(Conversations): revisions 0.1 and 0.2 sent `<report xmlns='…:0'
            // reason='…'/>` or a bare `<spam/>` / `<abuse/>` in the old namespace.
            (NS_LEGACY, "report") => {
                let reason = match (child.attr("reason"), child.children().next()) {
                    (Some(r), _) => r.to_owned(),
                    (None, Some(c)) if c.name() == "abuse" => ABUSE.to_owned(),
                    _ => SPAM.to_owned(),
                };
                return Ok(Some(Report {
                    reason,
                    text: text_of(child),
                    stanza_ids: Vec::new(),
                }));
            }
            (NS_LEGACY, "spam") => return Ok(Some(legacy(SPAM))),
            (NS_LEGACY, "abuse") => return Ok(Some(legacy(ABUSE))),
            _ => {}
        }
    }
    Ok(None)
}

fn legacy(reason: &str) -> Report {
    Report {
        reason: reason.to_owned(),
        text: None,
        stanza_ids: Vec::new(),
    }
}

fn parse_report(report: &Element) -> Result<Report, &'static str> {
    // §4: "Abuse reports MUST include a reason"; any URI is kept (the registry can grow).
    let reason = match report.attr("reason") {
        Some(r) if !r.trim().is_empty() && r.len() <= MAX_REASON_BYTES => r.to_owned(),
        Some(r) if !r.trim().is_empty() => return Err("the report's reason is too long"),
        _ => return Err("a report needs a 'reason' (XEP-0377 §4)"),
    };
    // §6: the reported messages, as copies of their <stanza-id/>.
    let mut stanza_ids = Vec::new();
    for sid in report.children().filter(|c| c.is("stanza-id", NS_SID)) {
        let Some(id) = sid.attr("id").filter(|id| !id.is_empty()) else {
            return Err("a reported <stanza-id/> needs an 'id'");
        };
        if id.len() > MAX_ID_BYTES {
            return Err("a reported stanza id is too long");
        }
        if stanza_ids.len() == MAX_STANZA_IDS {
            return Err("a report names at most 50 messages");
        }
        stanza_ids.push(id.to_owned());
    }
    Ok(Report {
        reason,
        text: text_of(report),
        stanza_ids,
    })
}

/// The first non-empty `<text/>` (§4; `xml:lang` is not kept), cut to [`MAX_TEXT_CHARS`].
fn text_of(report: &Element) -> Option<String> {
    report
        .children()
        .filter(|c| c.name() == "text")
        .map(|t| t.text())
        .map(|t| t.trim().to_owned())
        .find(|t| !t.is_empty())
        .map(|t| match t.char_indices().nth(MAX_TEXT_CHARS) {
            Some((cut, _)) => t[..cut].to_owned(),
            None => t,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(xml_children: Vec<Element>) -> Element {
        let mut item = Element::new("item", "urn:xmpp:blocking").with_attr("jid", "x@y");
        for c in xml_children {
            item.append_child(c);
        }
        item
    }

    // XEP-0377 §6: a report with stanza ids and text.
    #[test]
    fn full_report() {
        let report = Element::new("report", NS)
            .with_attr("reason", SPAM)
            .with_child(
                Element::new("stanza-id", NS_SID)
                    .with_attr("by", "romeo@example.net")
                    .with_attr("id", "28482-98726-73623"),
            )
            .with_child(
                Element::new("stanza-id", NS_SID)
                    .with_attr("by", "romeo@example.net")
                    .with_attr("id", "38383-38018-18385"),
            )
            .with_child(
                Element::new("text", NS)
                    .with_text("\n  Never came trouble to my house like this.\n"),
            );
        assert_eq!(
            parse(&item(vec![report])),
            Ok(Some(Report {
                reason: SPAM.into(),
                text: Some("Never came trouble to my house like this.".into()),
                stanza_ids: vec!["28482-98726-73623".into(), "38383-38018-18385".into()],
            }))
        );
    }

    // §4: the reason is required.
    #[test]
    fn reason_required() {
        let report = Element::new("report", NS);
        assert!(parse(&item(vec![report])).is_err());
        let blank = Element::new("report", NS).with_attr("reason", " ");
        assert!(parse(&item(vec![blank])).is_err());
    }

    #[test]
    fn no_report() {
        assert_eq!(parse(&item(vec![])), Ok(None));
    }

    #[test]
    fn limits() {
        let mut report = Element::new("report", NS).with_attr("reason", ABUSE);
        for i in 0..=MAX_STANZA_IDS {
            report.append_child(Element::new("stanza-id", NS_SID).with_attr("id", i.to_string()));
        }
        assert!(parse(&item(vec![report])).is_err());
        let long = Element::new("report", NS)
            .with_attr("reason", ABUSE)
            .with_child(Element::new("text", NS).with_text("é".repeat(MAX_TEXT_CHARS + 10)));
        let parsed = parse(&item(vec![long])).ok().flatten().map(|r| r.text);
        assert_eq!(parsed, Some(Some("é".repeat(MAX_TEXT_CHARS))));
    }

    #[test]
    fn legacy_forms() {
        assert_eq!(
            parse(&item(vec![Element::new("spam", NS_LEGACY)])),
            Ok(Some(legacy(SPAM)))
        );
        let old = Element::new("report", NS_LEGACY).with_child(Element::new("abuse", NS_LEGACY));
        assert_eq!(parse(&item(vec![old])), Ok(Some(legacy(ABUSE))));
    }
}
