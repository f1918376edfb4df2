//! XEP-0004 data forms: building the forms the server shows, reading the ones clients submit.
//!
//! A form the server sends is built with [`DataForm::form`] (or [`DataForm::result`]) and
//! [`Field`]'s constructors, and written with [`DataForm::to_element`]; a form a client sent is
//! read with [`DataForm::parse`], then its values with [`DataForm::value`],
//! [`DataForm::values`], or the checking readers ([`DataForm::required`], [`DataForm::jids`]) whose
//! errors are the stanza errors to answer with.
//!
//! ```
//! use starling_module_api::forms::{DataForm, Field};
//!
//! let form = DataForm::form(Some("http://jabber.org/protocol/admin"))
//!     .title("Disabling a User")
//!     .field(Field::jid_multi("accountjids").label("The Jabber ID(s) to disable").required());
//! assert_eq!(form.to_element().to_xml(),
//!     "<x xmlns='jabber:x:data' type='form'><title>Disabling a User</title>\
//!      <field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field>\
//!      <field type='jid-multi' var='accountjids' label='The Jabber ID(s) to disable'><required/></field></x>");
//! ```

use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition, ns};

/// A form's `type` (XEP-0004 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormKind {
    /// Asks for input.
    Form,
    /// The input.
    Submit,
    /// The submitter cancels.
    Cancel,
    /// Data returned.
    Result,
}

impl FormKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FormKind::Form => "form",
            FormKind::Submit => "submit",
            FormKind::Cancel => "cancel",
            FormKind::Result => "result",
        }
    }

    pub fn from_name(s: &str) -> Option<FormKind> {
        match s {
            "form" => Some(FormKind::Form),
            "submit" => Some(FormKind::Submit),
            "cancel" => Some(FormKind::Cancel),
            "result" => Some(FormKind::Result),
            _ => None,
        }
    }
}

/// A field's `type` (XEP-0004 §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Boolean,
    Fixed,
    Hidden,
    JidMulti,
    JidSingle,
    ListMulti,
    ListSingle,
    TextMulti,
    TextPrivate,
    TextSingle,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Boolean => "boolean",
            FieldType::Fixed => "fixed",
            FieldType::Hidden => "hidden",
            FieldType::JidMulti => "jid-multi",
            FieldType::JidSingle => "jid-single",
            FieldType::ListMulti => "list-multi",
            FieldType::ListSingle => "list-single",
            FieldType::TextMulti => "text-multi",
            FieldType::TextPrivate => "text-private",
            FieldType::TextSingle => "text-single",
        }
    }

    pub fn from_name(s: &str) -> Option<FieldType> {
        Some(match s {
            "boolean" => FieldType::Boolean,
            "fixed" => FieldType::Fixed,
            "hidden" => FieldType::Hidden,
            "jid-multi" => FieldType::JidMulti,
            "jid-single" => FieldType::JidSingle,
            "list-multi" => FieldType::ListMulti,
            "list-single" => FieldType::ListSingle,
            "text-multi" => FieldType::TextMulti,
            "text-private" => FieldType::TextPrivate,
            "text-single" => FieldType::TextSingle,
            _ => return None,
        })
    }
}

/// One `<field/>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub var: Option<String>,
    /// `None`: no `type` attribute (text-single is then assumed, XEP-0004 §3.2).
    pub kind: Option<FieldType>,
    pub label: Option<String>,
    pub desc: Option<String>,
    pub required: bool,
    pub values: Vec<String>,
    /// `<option label='…'><value>…</value></option>`: (label, value).
    pub options: Vec<(Option<String>, String)>,
}

impl Field {
    /// A field of `kind` named `var`.
    pub fn new(kind: FieldType, var: &str) -> Field {
        Field {
            var: Some(var.to_owned()),
            kind: Some(kind),
            label: None,
            desc: None,
            required: false,
            values: Vec::new(),
            options: Vec::new(),
        }
    }

    /// A field with neither `type` nor label, for results (`<field var='x'><value/>…`).
    pub fn plain(var: &str) -> Field {
        Field {
            kind: None,
            ..Field::new(FieldType::TextSingle, var)
        }
    }

    pub fn hidden(var: &str, value: &str) -> Field {
        Field::new(FieldType::Hidden, var).value(value)
    }
    pub fn fixed(text: &str) -> Field {
        Field {
            var: None,
            ..Field::new(FieldType::Fixed, "").value(text)
        }
    }
    pub fn boolean(var: &str) -> Field {
        Field::new(FieldType::Boolean, var)
    }
    pub fn jid_single(var: &str) -> Field {
        Field::new(FieldType::JidSingle, var)
    }
    pub fn jid_multi(var: &str) -> Field {
        Field::new(FieldType::JidMulti, var)
    }
    pub fn list_single(var: &str) -> Field {
        Field::new(FieldType::ListSingle, var)
    }
    pub fn list_multi(var: &str) -> Field {
        Field::new(FieldType::ListMulti, var)
    }
    pub fn text_single(var: &str) -> Field {
        Field::new(FieldType::TextSingle, var)
    }
    pub fn text_multi(var: &str) -> Field {
        Field::new(FieldType::TextMulti, var)
    }
    pub fn text_private(var: &str) -> Field {
        Field::new(FieldType::TextPrivate, var)
    }

    pub fn label(mut self, label: &str) -> Field {
        self.label = Some(label.to_owned());
        self
    }
    pub fn desc(mut self, desc: &str) -> Field {
        self.desc = Some(desc.to_owned());
        self
    }
    /// `<required/>`: the form is not valid without a value.
    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }
    pub fn value(mut self, value: impl Into<String>) -> Field {
        self.values.push(value.into());
        self
    }
    pub fn values<I: IntoIterator<Item = S>, S: Into<String>>(mut self, values: I) -> Field {
        self.values.extend(values.into_iter().map(Into::into));
        self
    }
    pub fn option(mut self, label: Option<&str>, value: &str) -> Field {
        self.options
            .push((label.map(str::to_owned), value.to_owned()));
        self
    }

    pub fn to_element(&self) -> Element {
        let mut f = Element::new("field", ns::DATA_FORMS)
            .with_opt_attr("type", self.kind.map(FieldType::as_str))
            .with_opt_attr("var", self.var.as_deref())
            .with_opt_attr("label", self.label.as_deref());
        if let Some(d) = &self.desc {
            f.append_child(Element::new("desc", ns::DATA_FORMS).with_text(d.as_str()));
        }
        if self.required {
            f.append_child(Element::new("required", ns::DATA_FORMS));
        }
        for v in &self.values {
            f.append_child(Element::new("value", ns::DATA_FORMS).with_text(v.as_str()));
        }
        for (label, value) in &self.options {
            f.append_child(
                Element::new("option", ns::DATA_FORMS)
                    .with_opt_attr("label", label.as_deref())
                    .with_child(Element::new("value", ns::DATA_FORMS).with_text(value.as_str())),
            );
        }
        f
    }

    fn parse(e: &Element) -> Field {
        let child_texts = |name: &str| {
            e.children()
                .filter(|c| c.is(name, ns::DATA_FORMS))
                .map(Element::text)
                .collect::<Vec<_>>()
        };
        Field {
            var: e.attr("var").map(str::to_owned),
            kind: e.attr("type").and_then(FieldType::from_name),
            label: e.attr("label").map(str::to_owned),
            desc: child_texts("desc").into_iter().next(),
            required: e.has_child("required", ns::DATA_FORMS),
            values: child_texts("value"),
            options: e
                .children()
                .filter(|c| c.is("option", ns::DATA_FORMS))
                .map(|o| {
                    (
                        o.attr("label").map(str::to_owned),
                        o.get_child("value", ns::DATA_FORMS)
                            .map(Element::text)
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }
}

/// A data form (`<x xmlns='jabber:x:data'/>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataForm {
    pub kind: FormKind,
    pub title: Option<String>,
    pub instructions: Vec<String>,
    pub fields: Vec<Field>,
}

/// Why a `<x xmlns='jabber:x:data'/>` is not a form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("not a jabber:x:data <x/> element")]
    NotAForm,
    #[error("the form has no valid 'type'")]
    BadType,
}

impl DataForm {
    fn new(kind: FormKind, form_type: Option<&str>) -> DataForm {
        DataForm {
            kind,
            title: None,
            instructions: Vec::new(),
            // XEP-0068 §3: FORM_TYPE is the first field, hidden.
            fields: form_type
                .map(|t| Field::hidden("FORM_TYPE", t))
                .into_iter()
                .collect(),
        }
    }

    /// A form asking for input (`type='form'`), with a hidden FORM_TYPE field if given.
    pub fn form(form_type: Option<&str>) -> DataForm {
        DataForm::new(FormKind::Form, form_type)
    }

    /// A form carrying data back (`type='result'`), with a hidden FORM_TYPE field if given.
    pub fn result(form_type: Option<&str>) -> DataForm {
        DataForm::new(FormKind::Result, form_type)
    }

    /// A submitted form (`type='submit'`), as a client sends it (for tests and clients).
    pub fn submit(form_type: Option<&str>) -> DataForm {
        DataForm::new(FormKind::Submit, form_type)
    }

    pub fn title(mut self, title: &str) -> DataForm {
        self.title = Some(title.to_owned());
        self
    }

    /// One `<instructions/>` (a form may have several, one per paragraph).
    pub fn instructions(mut self, text: &str) -> DataForm {
        self.instructions.push(text.to_owned());
        self
    }

    pub fn field(mut self, field: Field) -> DataForm {
        self.fields.push(field);
        self
    }

    /// Reads a form; fields without `var` (fixed text) are kept too.
    pub fn parse(x: &Element) -> Result<DataForm, FormError> {
        if !x.is("x", ns::DATA_FORMS) {
            return Err(FormError::NotAForm);
        }
        let kind = x
            .attr("type")
            .and_then(FormKind::from_name)
            .ok_or(FormError::BadType)?;
        Ok(DataForm {
            kind,
            title: x.get_child("title", ns::DATA_FORMS).map(Element::text),
            instructions: x
                .children()
                .filter(|c| c.is("instructions", ns::DATA_FORMS))
                .map(Element::text)
                .collect(),
            fields: x
                .children()
                .filter(|c| c.is("field", ns::DATA_FORMS))
                .map(Field::parse)
                .collect(),
        })
    }

    pub fn to_element(&self) -> Element {
        let mut x = Element::new("x", ns::DATA_FORMS).with_attr("type", self.kind.as_str());
        if let Some(t) = &self.title {
            x.append_child(Element::new("title", ns::DATA_FORMS).with_text(t.as_str()));
        }
        for i in &self.instructions {
            x.append_child(Element::new("instructions", ns::DATA_FORMS).with_text(i.as_str()));
        }
        for f in &self.fields {
            x.append_child(f.to_element());
        }
        x
    }

    /// The field named `var`.
    pub fn get(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var.as_deref() == Some(var))
    }

    /// The FORM_TYPE's value (XEP-0068), if the form has one.
    pub fn form_type(&self) -> Option<&str> {
        self.value("FORM_TYPE")
    }

    /// The first value of field `var`, if it has one.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.get(var)
            .and_then(|f| f.values.first())
            .map(String::as_str)
    }

    /// Every value of field `var` (empty when the field is absent).
    pub fn values(&self, var: &str) -> &[String] {
        self.get(var).map_or(&[], |f| f.values.as_slice())
    }

    /// The value of a required field: absent or empty is `<bad-request/>` with XEP-0050's
    /// `<bad-payload/>` ("the data form did not provide one or more required fields").
    // The error is the answer to the request, made at most once per submission: not worth a box.
    #[allow(clippy::result_large_err)]
    pub fn required(&self, var: &str) -> Result<&str, StanzaError> {
        match self.value(var) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(crate::command_errors::bad_payload(format!(
                "the field '{var}' is required"
            ))),
        }
    }

    /// The JIDs of a jid-single or jid-multi field, duplicates dropped (XEP-0004 §3.3: "duplicate
    /// JIDs MUST be ignored"). A value that is no JID is `<not-acceptable/>` (XEP-0004 §4, data
    /// validation); none at all is `<bad-payload/>` when `required`.
    #[allow(clippy::result_large_err)]
    pub fn jids(&self, var: &str, required: bool) -> Result<Vec<Jid>, StanzaError> {
        let mut out: Vec<Jid> = Vec::new();
        for v in self.values(var) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let jid = Jid::new(v).map_err(|_| {
                StanzaError::new(StanzaErrorCondition::NotAcceptable)
                    .with_text(format!("'{v}' in the field '{var}' is not a JID"))
            })?;
            if !out.contains(&jid) {
                out.push(jid);
            }
        }
        if required && out.is_empty() {
            return Err(crate::command_errors::bad_payload(format!(
                "the field '{var}' is required"
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_read_a_submitted_form() {
        let x = DataForm::submit(Some("http://jabber.org/protocol/admin"))
            .field(Field::plain("accountjids").values(["a@example.org", " ", "A@example.org"]))
            .field(Field::plain("password").value("pw"))
            .to_element();
        let form = DataForm::parse(&x).unwrap();
        assert_eq!(form.kind, FormKind::Submit);
        assert_eq!(form.form_type(), Some("http://jabber.org/protocol/admin"));
        assert_eq!(form.required("password"), Ok("pw"));
        // Duplicates (after normalisation) are ignored, blank values skipped.
        assert_eq!(
            form.jids("accountjids", true).unwrap(),
            vec![Jid::new("a@example.org").unwrap()]
        );
        assert_eq!(
            form.required("email").unwrap_err().app.unwrap().name(),
            "bad-payload"
        );
        assert!(form.jids("email", true).is_err());
        assert_eq!(form.jids("email", false), Ok(vec![]));
    }

    #[test]
    fn a_bad_jid_is_not_acceptable() {
        let x = DataForm::submit(None)
            .field(Field::plain("accountjid").value("a@b@c"))
            .to_element();
        let err = DataForm::parse(&x)
            .unwrap()
            .jids("accountjid", true)
            .unwrap_err();
        assert_eq!(err.condition, StanzaErrorCondition::NotAcceptable);
    }

    #[test]
    fn not_a_form() {
        assert_eq!(
            DataForm::parse(&Element::new("x", "urn:other")),
            Err(FormError::NotAForm)
        );
        assert_eq!(
            DataForm::parse(&Element::new("x", ns::DATA_FORMS)),
            Err(FormError::BadType)
        );
    }
}
