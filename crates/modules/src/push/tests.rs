#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn parse(xml: &str) -> Element {
    parse_stored(xml).unwrap()
}

#[test]
fn which_messages_warrant_a_push() {
    let yes = [
        "<message xmlns='jabber:client' type='chat'><body>hi</body></message>",
        "<message xmlns='jabber:client'><body>no type</body></message>",
        "<message xmlns='jabber:client' type='normal'><body>n</body></message>",
        // OMEMO without a body (both namespaces).
        "<message xmlns='jabber:client' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
        "<message xmlns='jabber:client' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>",
    ];
    for m in yes {
        assert!(warrants_push(&parse(m)), "{m}");
    }
    let no = [
        "<message xmlns='jabber:client' type='chat'/>",
        "<message xmlns='jabber:client' type='chat'><body>  </body></message>",
        "<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<message xmlns='jabber:client' type='headline'><body>news</body></message>",
        "<message xmlns='jabber:client' type='groupchat'><body>room</body></message>",
        "<message xmlns='jabber:client' type='error'><body>e</body></message>",
        "<message xmlns='jabber:client'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client'><body>copy</body></message></forwarded></received></message>",
        "<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' id='1'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client'><body>old</body></message></forwarded></result></message>",
    ];
    for m in no {
        assert!(!warrants_push(&parse(m)), "{m}");
    }
}

#[test]
fn the_notification_is_the_xeps_shape() {
    let r = PushRegistration {
        jid: "push.example".into(),
        node: "n1".into(),
        options: None,
    };
    let summary = Summary {
        count: 2,
        sender: Some("juliet@example.com/balcony".into()),
        body: None,
    };
    assert_eq!(
        notification("example.com", &r, None, &summary).to_xml(),
        "<iq xmlns='jabber:client' type='set' from='example.com' to='push.example'>\
         <pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n1'><item>\
         <notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>\
         <field var='message-count'><value>2</value></field>\
         <field var='last-message-sender'><value>juliet@example.com/balcony</value></field>\
         </x></notification></item></publish></pubsub></iq>"
    );
    let form = parse(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>\
         <value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
         <field var='secret'><value>s</value></field></x>",
    );
    let summary = Summary {
        count: 1,
        sender: None,
        body: Some("a < b".into()),
    };
    assert_eq!(
        notification("example.com", &r, Some(form), &summary).to_xml(),
        "<iq xmlns='jabber:client' type='set' from='example.com' to='push.example'>\
         <pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n1'><item>\
         <notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>\
         <field var='message-count'><value>1</value></field>\
         <field var='last-message-body'><value>a &lt; b</value></field>\
         </x></notification></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
         <field var='secret'><value>s</value></field></x></publish-options></pubsub></iq>"
    );
}

#[test]
fn options_forms_must_say_publish_options() {
    let enable = |form: &str| {
        parse(&format!(
            "<enable xmlns='urn:xmpp:push:0' jid='p' node='n'>{form}</enable>"
        ))
    };
    assert_eq!(options_form(&enable("")).ok(), Some(None));
    let good = "<x xmlns='jabber:x:data'><field var='FORM_TYPE'>\
        <value>http://jabber.org/protocol/pubsub#publish-options</value></field></x>";
    assert!(matches!(options_form(&enable(good)), Ok(Some(_))));
    let other =
        "<x xmlns='jabber:x:data'><field var='FORM_TYPE'><value>urn:other</value></field></x>";
    assert!(options_form(&enable(other)).is_err());
    assert!(options_form(&enable("<x xmlns='jabber:x:data'/>")).is_err());
    let big = format!(
        "<x xmlns='jabber:x:data'><field var='FORM_TYPE'>\
         <value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
         <field var='secret'><value>{}</value></field></x>",
        "s".repeat(MAX_OPTIONS)
    );
    assert!(options_form(&enable(&big)).is_err());
}
