//! Reading a XEP-0313 query (`<query xmlns='urn:xmpp:mam:2'>` with its data form, XEP-0004, and
//! its result set, XEP-0059) into an [`ArchiveQuery`], and writing the answers: the form of
//! supported fields (§4.1.5), result messages (§4.2) and `<fin/>` (§4.3).

use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition, ns};
use starling_storage::{ArchivePage, ArchiveQuery, ArchivedMessage, PagePosition, WithFilter};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// XEP-0313 namespace.
pub const NS_MAM: &str = "urn:xmpp:mam:2";
/// XEP-0313 §8: before-id, after-id, ids, flipped pages, metadata.
pub const NS_MAM_EXTENDED: &str = "urn:xmpp:mam:2#extended";
/// XEP-0059 result set management.
pub const NS_RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0297 stanza forwarding.
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0431 full-text search: the disco feature, and the form field.
pub const NS_FULLTEXT: &str = "urn:xmpp:fulltext:0";
pub const FIELD_FULLTEXT: &str = "{urn:xmpp:fulltext:0}fulltext";

/// A query as the client asked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    /// The query's `queryid`, echoed in every result.
    pub query_id: Option<String>,
    /// What to ask the store (its `max` already limited).
    pub query: ArchiveQuery,
    /// Send the page newest first (`<flip-page/>`, XEP-0313 §4.3.4).
    pub flip: bool,
}

/// Page sizes: what a query without `<max/>` gets, and the most one page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    pub default: usize,
    pub max: usize,
}

fn bad_request(text: &str) -> StanzaError {
    StanzaError::new(StanzaErrorCondition::BadRequest).with_text(text)
}

/// An XEP-0082 DateTime (`CCYY-MM-DDThh:mm:ss[.sss]TZD`) as µs since the epoch.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

/// µs since the epoch as an XEP-0082 DateTime in UTC (fractions only when not whole seconds).
pub fn format_datetime(us: i64) -> String {
    let nanos = i128::from(us) * 1000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| starling_proto::clock::format_unix(us.div_euclid(1_000_000)))
}

/// The values of a data form field.
fn values(field: &Element) -> Vec<String> {
    field
        .children()
        .filter(|c| c.is("value", ns::DATA_FORMS))
        .map(Element::text)
        .collect()
}

/// The single value of a field; `bad-request` for none or several.
fn single(field: &Element, var: &str) -> Result<String, Box<StanzaError>> {
    let mut v = values(field);
    match (v.pop(), v.is_empty()) {
        (Some(value), true) => Ok(value),
        _ => Err(bad_request(&format!("the field '{var}' takes exactly one value")).into()),
    }
}

/// Reads the `<query/>` payload (XEP-0313 §4.1, XEP-0059 §2).
/// Errors are boxed: a `StanzaError` is large, and most queries are well-formed.
pub fn parse(query: &Element, limits: PageLimits) -> Result<ParsedQuery, Box<StanzaError>> {
    if query.attr("node").is_some() {
        // §7.1.3: 'node' is for pubsub archives (XEP-0442); a user archive has none.
        return Err(Box::new(
            StanzaError::new(StanzaErrorCondition::FeatureNotImplemented)
                .with_text("this archive has no pubsub nodes"),
        ));
    }
    let mut q = ArchiveQuery::default();
    if let Some(form) = query.get_child("x", ns::DATA_FORMS) {
        match form.attr("type") {
            Some("submit") | None => {}
            Some(_) => return Err(bad_request("the query form must be of type 'submit'").into()),
        }
        for field in form.children().filter(|c| c.is("field", ns::DATA_FORMS)) {
            let var = field.attr("var").unwrap_or("");
            match var {
                "FORM_TYPE" => {
                    if single(field, var)? != NS_MAM {
                        return Err(bad_request("FORM_TYPE must be urn:xmpp:mam:2").into());
                    }
                }
                "with" => {
                    let value = single(field, var)?;
                    let jid = Jid::new(value.trim()).map_err(|_| {
                        StanzaError::new(StanzaErrorCondition::JidMalformed)
                            .with_text("'with' is not a valid JID")
                    })?;
                    q.with = Some(WithFilter {
                        bare: jid.to_bare().to_string(),
                        resource: jid.resource().map(|r| r.as_str().to_owned()),
                    });
                }
                "start" | "end" => {
                    let value = single(field, var)?;
                    let us = parse_datetime(&value).ok_or_else(|| {
                        bad_request(&format!("'{var}' is not an XEP-0082 DateTime"))
                    })?;
                    if var == "start" {
                        q.start_us = Some(us);
                    } else {
                        q.end_us = Some(us);
                    }
                }
                "after-id" => q.after_id = Some(single(field, var)?),
                "before-id" => q.before_id = Some(single(field, var)?),
                "ids" => q.ids = values(field),
                FIELD_FULLTEXT => {
                    let text = single(field, var)?;
                    // XEP-0431 §2.2: only a non-empty text searches.
                    q.fulltext = (!text.trim().is_empty()).then_some(text);
                }
                _ => {
                    // §4.1.5: a field the server does not know.
                    return Err(Box::new(
                        StanzaError::new(StanzaErrorCondition::FeatureNotImplemented)
                            .with_text(format!("unknown query field '{var}'")),
                    ));
                }
            }
        }
    }
    q.max = limits.default;
    if let Some(set) = query.get_child("set", NS_RSM) {
        let text = |name: &str| set.get_child(name, NS_RSM).map(Element::text);
        if let Some(max) = text("max") {
            q.max = max
                .trim()
                .parse::<usize>()
                .map_err(|_| bad_request("<max/> must be a non-negative integer"))?;
        }
        let after = text("after");
        let before = text("before");
        let index = text("index");
        q.position = match (after, before, index) {
            (None, None, None) => PagePosition::First,
            (Some(a), None, None) => PagePosition::After(a),
            (None, Some(b), None) if b.is_empty() => PagePosition::Last,
            (None, Some(b), None) => PagePosition::Before(b),
            (None, None, Some(i)) => PagePosition::Index(
                i.trim()
                    .parse::<u64>()
                    .map_err(|_| bad_request("<index/> must be a non-negative integer"))?,
            ),
            // §4.3.2: the meaning of both is not defined; before-id and after-id say it.
            _ => {
                return Err(bad_request(
                    "use at most one of <after/>, <before/> and <index/>; for a range use the \
                     'after-id' and 'before-id' fields",
                )
                .into());
            }
        };
    }
    // §4.3.1: the server limits what one page holds.
    q.max = q.max.min(limits.max);
    Ok(ParsedQuery {
        query_id: query.attr("queryid").map(str::to_owned),
        query: q,
        flip: query.has_child("flip-page", NS_MAM),
    })
}

/// The form of supported fields (§4.1.5).
pub fn form() -> Element {
    let field = |var: &str, ty: &str| {
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", var)
            .with_attr("type", ty)
    };
    Element::new("query", NS_MAM).with_child(
        Element::new("x", ns::DATA_FORMS)
            .with_attr("type", "form")
            .with_child(
                field("FORM_TYPE", "hidden")
                    .with_child(Element::new("value", ns::DATA_FORMS).with_text(NS_MAM)),
            )
            .with_child(field("with", "jid-single"))
            .with_child(field("start", "text-single"))
            .with_child(field("end", "text-single"))
            .with_child(field("before-id", "text-single"))
            .with_child(field("after-id", "text-single"))
            .with_child(
                field("ids", "list-multi").with_child(
                    Element::new("validate", "http://jabber.org/protocol/xdata-validate")
                        .with_attr("datatype", "xs:string")
                        .with_child(Element::new(
                            "open",
                            "http://jabber.org/protocol/xdata-validate",
                        )),
                ),
            )
            .with_child(field(FIELD_FULLTEXT, "text-single")),
    )
}

/// One result message (§4.2): the archived `stanza`, forwarded with its time, to `to`.
pub fn result_message(
    to: &str,
    archive: &str,
    query_id: Option<&str>,
    m: &ArchivedMessage,
    stanza: Element,
) -> Element {
    let mut result = Element::new("result", NS_MAM).with_attr("id", m.id.clone());
    if let Some(q) = query_id {
        result.set_attr("queryid", q);
    }
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("from", archive)
        .with_attr("id", crate::random_id())
        .with_child(
            result.with_child(
                Element::new("forwarded", NS_FORWARD)
                    .with_child(
                        Element::new("delay", ns::DELAY)
                            .with_attr("stamp", format_datetime(m.timestamp_us)),
                    )
                    .with_child(stanza),
            ),
        )
}

/// The `<fin/>` that ends the results (§4.3): the page's first and last ids, the count, and
/// whether it is the last page.
pub fn fin(page: &ArchivePage) -> Element {
    let mut set = Element::new("set", NS_RSM);
    if let (Some(first), Some(last)) = (page.messages.first(), page.messages.last()) {
        let mut f = Element::new("first", NS_RSM).with_text(first.id.clone());
        if let Some(i) = page.first_index {
            f.set_attr("index", i.to_string());
        }
        set.append_child(f);
        set.append_child(Element::new("last", NS_RSM).with_text(last.id.clone()));
    }
    set.append_child(Element::new("count", NS_RSM).with_text(page.count.to_string()));
    let mut fin = Element::new("fin", NS_MAM);
    if page.complete {
        fin.set_attr("complete", "true");
    }
    fin.with_child(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PageLimits = PageLimits {
        default: 50,
        max: 250,
    };

    fn field(var: &str, values: &[&str]) -> Element {
        let mut f = Element::new("field", ns::DATA_FORMS).with_attr("var", var);
        for v in values {
            f.append_child(Element::new("value", ns::DATA_FORMS).with_text(*v));
        }
        f
    }

    fn query(fields: Vec<Element>, set: Option<Element>) -> Element {
        let mut x = Element::new("x", ns::DATA_FORMS).with_attr("type", "submit");
        x.append_child(field("FORM_TYPE", &[NS_MAM]));
        for f in fields {
            x.append_child(f);
        }
        let mut q = Element::new("query", NS_MAM)
            .with_attr("queryid", "f27")
            .with_child(x);
        if let Some(s) = set {
            q.append_child(s);
        }
        q
    }

    fn rsm(children: &[(&str, &str)]) -> Element {
        let mut s = Element::new("set", NS_RSM);
        for (name, text) in children {
            s.append_child(Element::new(*name, NS_RSM).with_text(*text));
        }
        s
    }

    #[test]
    fn every_field() {
        // XEP-0313 §4.1.1–§4.1.3, XEP-0431 §3.1.
        let q = query(
            vec![
                field("with", &["Juliet@Capulet.lit/balcony"]),
                field("start", &["2010-06-07T00:00:00Z"]),
                field("end", &["2010-07-07T13:23:54.5+02:00"]),
                field("after-id", &["a"]),
                field("before-id", &["b"]),
                field("ids", &["x", "y"]),
                field(FIELD_FULLTEXT, &["where art thou"]),
            ],
            None,
        );
        let p = parse(&q, LIMITS).unwrap();
        assert_eq!(p.query_id.as_deref(), Some("f27"));
        assert_eq!(
            p.query.with,
            Some(WithFilter {
                bare: "juliet@capulet.lit".to_owned(),
                resource: Some("balcony".to_owned())
            })
        );
        assert_eq!(p.query.start_us, Some(1_275_868_800_000_000));
        assert_eq!(p.query.end_us, Some(1_278_501_834_500_000));
        assert_eq!(p.query.after_id.as_deref(), Some("a"));
        assert_eq!(p.query.before_id.as_deref(), Some("b"));
        assert_eq!(p.query.ids, vec!["x".to_owned(), "y".to_owned()]);
        assert_eq!(p.query.fulltext.as_deref(), Some("where art thou"));
        assert_eq!(p.query.max, 50);
        assert_eq!(p.query.position, PagePosition::First);
        assert!(!p.flip);
    }

    #[test]
    fn paging() {
        // XEP-0059 §2; XEP-0313 §4.3.
        let p = |set| parse(&query(vec![], Some(set)), LIMITS).unwrap().query;
        assert_eq!(p(rsm(&[("max", "10")])).max, 10);
        assert_eq!(p(rsm(&[("max", "100000")])).max, 250);
        assert_eq!(
            p(rsm(&[("after", "09af3")])).position,
            PagePosition::After("09af3".to_owned())
        );
        assert_eq!(p(rsm(&[("before", "")])).position, PagePosition::Last);
        assert_eq!(
            p(rsm(&[("before", "x")])).position,
            PagePosition::Before("x".to_owned())
        );
        assert_eq!(p(rsm(&[("index", "3")])).position, PagePosition::Index(3));
        let both = parse(
            &query(vec![], Some(rsm(&[("before", "a"), ("after", "b")]))),
            LIMITS,
        );
        assert_eq!(
            both.map_err(|e| e.condition),
            Err(StanzaErrorCondition::BadRequest)
        );
        let bad = parse(&query(vec![], Some(rsm(&[("max", "-1")]))), LIMITS);
        assert_eq!(
            bad.map_err(|e| e.condition),
            Err(StanzaErrorCondition::BadRequest)
        );
        let mut flipped = query(vec![], None);
        flipped.append_child(Element::new("flip-page", NS_MAM));
        assert!(parse(&flipped, LIMITS).unwrap().flip);
    }

    #[test]
    fn errors() {
        let err = |fields| parse(&query(fields, None), LIMITS).map_err(|e| e.condition);
        // §4.1.5: an unknown field.
        assert_eq!(
            err(vec![field("include-groupchat", &["true"])]),
            Err(StanzaErrorCondition::FeatureNotImplemented)
        );
        assert_eq!(
            err(vec![field("start", &["yesterday"])]),
            Err(StanzaErrorCondition::BadRequest)
        );
        assert_eq!(
            err(vec![field("with", &["@bad"])]),
            Err(StanzaErrorCondition::JidMalformed)
        );
        assert_eq!(
            err(vec![field("with", &["a@b", "c@d"])]),
            Err(StanzaErrorCondition::BadRequest)
        );
        let mut wrong_type = query(vec![], None);
        if let Some(f) = wrong_type
            .get_child_mut("x", ns::DATA_FORMS)
            .and_then(|x| x.get_child_mut("field", ns::DATA_FORMS))
        {
            *f = field("FORM_TYPE", &["urn:other"]);
        }
        assert_eq!(
            parse(&wrong_type, LIMITS).map_err(|e| e.condition),
            Err(StanzaErrorCondition::BadRequest)
        );
        // An empty full-text field searches nothing.
        let q = parse(&query(vec![field(FIELD_FULLTEXT, &["  "])], None), LIMITS).unwrap();
        assert_eq!(q.query.fulltext, None);
    }

    #[test]
    fn datetimes() {
        // XEP-0082 §3.2.
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_datetime("1970-01-01T01:00:00.000001+01:00"), Some(1));
        assert_eq!(parse_datetime("1970-01-01"), None);
        assert_eq!(format_datetime(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_datetime(1_500_000), "1970-01-01T00:00:01.5Z");
    }
}
