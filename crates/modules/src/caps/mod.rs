//! XEP-0115 entity capabilities, the part a server needs to trust what a contact advertises:
//! the verification string of a disco#info result (§5.1) and the checks that make a result
//! trustworthy before it is cached for a `ver` (§5.4). PEP (XEP-0163 §4) learns which nodes a
//! contact wants notifications for (`+notify` features) from the disco#info result its caps
//! hash names; one result serves everyone who advertises that hash, so it must be the one the
//! hash was computed from.
//!
//! Only `hash='sha-1'` is defined for caps in practice (§5.1 and every client): other hash names
//! are not verified and so never trusted.

pub mod cache;

pub use cache::{Caps, CapsCache, CapsWatcher};

use base64::Engine as _;
use sha1::Digest as _;
use starling_proto::Element;

const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DATA_FORMS: &str = "jabber:x:data";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// A form field's var and values.
type Field = (String, Vec<String>);

/// Why a disco#info result cannot be trusted for a caps hash (XEP-0115 §5.4, step 3).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    #[error("not a disco#info <query/>")]
    NotDiscoInfo,
    #[error("two identities with the same category, type, xml:lang and name")]
    DuplicateIdentity,
    #[error("the feature {0:?} is listed twice")]
    DuplicateFeature(String),
    #[error("two extended-information forms with the FORM_TYPE {0:?}")]
    DuplicateFormType(String),
    #[error("an extended-information form's FORM_TYPE field is not of type hidden")]
    FormTypeNotHidden,
    #[error("the hash function {0:?} is not supported (only sha-1)")]
    UnsupportedHash(String),
    #[error("the verification string does not match the advertised 'ver'")]
    Mismatch,
}

/// The verification string S of XEP-0115 §5.1 for a disco#info `<query/>`, before hashing.
///
/// Identities sorted by category, type, xml:lang and name, each `category/type/lang/name<`;
/// features sorted, each `var<`; then the extended-information forms (XEP-0128) sorted by
/// their FORM_TYPE, each as `FORM_TYPE<` followed by its other fields sorted by var, each
/// `var<` and its values sorted, each `value<`. Forms without a FORM_TYPE are left out (§5.4
/// step 3.6). Fails on what §5.4 step 3 calls an ill-formed result.
pub fn verification_string(query: &Element) -> Result<String, CapsError> {
    if !query.is("query", DISCO_INFO) {
        return Err(CapsError::NotDiscoInfo);
    }
    let mut identities: Vec<[String; 4]> = Vec::new();
    let mut features: Vec<String> = Vec::new();
    let mut forms: Vec<(String, Vec<Field>)> = Vec::new();
    for child in query.children() {
        if child.is("identity", DISCO_INFO) {
            let attr = |n: &str| child.attr(n).unwrap_or_default().to_owned();
            let lang = child.attr_ns(XML_NS, "lang").unwrap_or_default().to_owned();
            let id = [attr("category"), attr("type"), lang, attr("name")];
            if identities.contains(&id) {
                return Err(CapsError::DuplicateIdentity);
            }
            identities.push(id);
        } else if child.is("feature", DISCO_INFO) {
            let var = child.attr("var").unwrap_or_default().to_owned();
            if features.contains(&var) {
                return Err(CapsError::DuplicateFeature(var));
            }
            features.push(var);
        } else if child.is("x", DATA_FORMS) {
            let mut form_type = None;
            let mut fields = Vec::new();
            for field in child.children().filter(|f| f.is("field", DATA_FORMS)) {
                let var = field.attr("var").unwrap_or_default().to_owned();
                let mut values: Vec<String> = field
                    .children()
                    .filter(|v| v.is("value", DATA_FORMS))
                    .map(|v| v.text())
                    .collect();
                if var == "FORM_TYPE" {
                    if field.attr("type") != Some("hidden") {
                        return Err(CapsError::FormTypeNotHidden);
                    }
                    form_type = values.pop();
                } else {
                    values.sort();
                    fields.push((var, values));
                }
            }
            let Some(form_type) = form_type else {
                continue;
            };
            if forms.iter().any(|(t, _)| *t == form_type) {
                return Err(CapsError::DuplicateFormType(form_type));
            }
            fields.sort();
            forms.push((form_type, fields));
        }
    }
    identities.sort();
    features.sort();
    forms.sort();
    let mut s = String::new();
    for [category, kind, lang, name] in &identities {
        s.push_str(&format!("{category}/{kind}/{lang}/{name}<"));
    }
    for f in &features {
        s.push_str(f);
        s.push('<');
    }
    for (form_type, fields) in &forms {
        s.push_str(form_type);
        s.push('<');
        for (var, values) in fields {
            s.push_str(var);
            s.push('<');
            for v in values {
                s.push_str(v);
                s.push('<');
            }
        }
    }
    Ok(s)
}

/// The `ver` of a disco#info `<query/>` with SHA-1 (XEP-0115 §5.1 steps 9–10): base64 of the
/// SHA-1 of the verification string's UTF-8 bytes.
pub fn sha1_ver(query: &Element) -> Result<String, CapsError> {
    let s = verification_string(query)?;
    let digest = sha1::Sha1::digest(s.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// XEP-0115 §5.4 step 3: whether `query` is the disco#info result that `hash` and `ver` name,
/// so that it may be cached for that `ver` and shared by everyone who advertises it.
pub fn verify(hash: &str, ver: &str, query: &Element) -> Result<(), CapsError> {
    if !hash.eq_ignore_ascii_case("sha-1") {
        return Err(CapsError::UnsupportedHash(hash.to_owned()));
    }
    if sha1_ver(query)? == ver {
        Ok(())
    } else {
        Err(CapsError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_module_api::parse_stored;

    fn query(xml: &str) -> Element {
        match parse_stored(xml) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    /// XEP-0115 §5.2, the simple example.
    const SIMPLE: &str = "<query xmlns='http://jabber.org/protocol/disco#info'>\
        <identity category='client' name='Exodus 0.9.1' type='pc'/>\
        <feature var='http://jabber.org/protocol/caps'/>\
        <feature var='http://jabber.org/protocol/disco#info'/>\
        <feature var='http://jabber.org/protocol/disco#items'/>\
        <feature var='http://jabber.org/protocol/muc'/></query>";

    /// XEP-0115 §5.3, the complex example (two identities with xml:lang, an extended form).
    const COMPLEX: &str = "<query xmlns='http://jabber.org/protocol/disco#info'>\
        <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
        <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
        <feature var='http://jabber.org/protocol/caps'/>\
        <feature var='http://jabber.org/protocol/disco#info'/>\
        <feature var='http://jabber.org/protocol/disco#items'/>\
        <feature var='http://jabber.org/protocol/muc'/>\
        <x xmlns='jabber:x:data' type='result'>\
          <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
          <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>\
          <field var='os'><value>Mac</value></field>\
          <field var='os_version'><value>10.5.1</value></field>\
          <field var='software'><value>Psi</value></field>\
          <field var='software_version'><value>0.11</value></field>\
        </x></query>";

    #[test]
    fn xep_0115_5_2_simple_example() {
        let q = query(SIMPLE);
        assert_eq!(
            verification_string(&q).unwrap(),
            "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<\
             http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<\
             http://jabber.org/protocol/muc<"
        );
        assert_eq!(sha1_ver(&q).unwrap(), "QgayPKawpkPSDYmwT/WM94uAlu0=");
        assert_eq!(verify("sha-1", "QgayPKawpkPSDYmwT/WM94uAlu0=", &q), Ok(()));
    }

    #[test]
    fn xep_0115_5_3_complex_example() {
        let q = query(COMPLEX);
        assert_eq!(
            verification_string(&q).unwrap(),
            "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<\
             http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<\
             http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<\
             ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"
        );
        assert_eq!(sha1_ver(&q).unwrap(), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    }

    /// §5.4 step 3: a result that does not hash to the advertised `ver` is not trusted, nor
    /// one with another hash function.
    #[test]
    fn mismatches_and_other_hashes_are_not_trusted() {
        let q = query(SIMPLE);
        assert_eq!(
            verify("sha-1", "q07IKJEyjvHSyhy//CH0CxmKi8w=", &q),
            Err(CapsError::Mismatch)
        );
        assert_eq!(
            verify("md5", "QgayPKawpkPSDYmwT/WM94uAlu0=", &q),
            Err(CapsError::UnsupportedHash("md5".to_owned()))
        );
    }

    /// §5.4 step 3.3–3.5: ill-formed results (duplicate identities, features or FORM_TYPEs, a
    /// FORM_TYPE that is not hidden) are refused whatever they hash to.
    #[test]
    fn ill_formed_results_are_refused() {
        let dup_feature = query(
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <feature var='a'/><feature var='a'/></query>",
        );
        assert_eq!(
            verification_string(&dup_feature),
            Err(CapsError::DuplicateFeature("a".to_owned()))
        );
        let dup_identity = query(
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='client' type='pc' name='x'/>\
             <identity category='client' type='pc' name='x'/></query>",
        );
        assert_eq!(
            verification_string(&dup_identity),
            Err(CapsError::DuplicateIdentity)
        );
        let form = "<x xmlns='jabber:x:data' type='result'>\
            <field var='FORM_TYPE' type='hidden'><value>urn:example</value></field></x>";
        let dup_form = query(&format!(
            "<query xmlns='http://jabber.org/protocol/disco#info'>{form}{form}</query>"
        ));
        assert_eq!(
            verification_string(&dup_form),
            Err(CapsError::DuplicateFormType("urn:example".to_owned()))
        );
        let not_hidden = query(
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <x xmlns='jabber:x:data' type='result'>\
             <field var='FORM_TYPE'><value>urn:example</value></field></x></query>",
        );
        assert_eq!(
            verification_string(&not_hidden),
            Err(CapsError::FormTypeNotHidden)
        );
        // §5.4 step 3.6: a form without FORM_TYPE is ignored, not an error.
        let untyped = query(
            "<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/>\
             <x xmlns='jabber:x:data' type='result'><field var='x'><value>1</value></field></x>\
             </query>",
        );
        assert_eq!(verification_string(&untyped).unwrap(), "a<");
        assert_eq!(
            verification_string(&Element::new("query", "jabber:iq:roster")),
            Err(CapsError::NotDiscoInfo)
        );
    }
}
