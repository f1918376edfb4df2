//! XEP-0115 entity capabilities as the server uses them (for PEP's `+notify`, XEP-0163 §4):
//! the first resource advertising a `ver` is asked for `node#ver`'s disco#info once, and the
//! answer is shared by every resource advertising that `ver` (§6.3); an answer that does not
//! hash to the `ver` is not trusted and the next advertiser is asked (§5.4). The test adds a
//! caps module of its own (to read its cache) in place of the one PEP brings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use starling_modules::caps::{Caps, CapsCache};
use starling_testkit::client::Client;
use starling_testkit::matcher::assert_matches;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const NODE: &str = "https://example.org/client";
/// XEP-0115 §5.2's example, whose `ver` is QgayPKawpkPSDYmwT/WM94uAlu0=.
const VER: &str = "QgayPKawpkPSDYmwT/WM94uAlu0=";
const INFO: &str = "<identity category='client' name='Exodus 0.9.1' type='pc'/>\
    <feature var='http://jabber.org/protocol/caps'/>\
    <feature var='http://jabber.org/protocol/disco#info'/>\
    <feature var='http://jabber.org/protocol/disco#items'/>\
    <feature var='http://jabber.org/protocol/muc'/>";

fn presence(ver: &str) -> String {
    format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{NODE}' ver='{ver}'/></presence>"
    )
}

/// Expects the server's disco#info query for `node#ver` (presence of the account's resources,
/// which arrives in any order beside it, skipped); returns its id.
async fn expect_query(c: &mut Client, ver: &str) -> String {
    let me = c.jid().unwrap().to_string();
    loop {
        let e = c.recv_element().await.unwrap();
        if e.name() == "presence" {
            continue;
        }
        assert_matches(
            &format!(
                "<iq type='get' id='{{*}}' from='localhost' to='{me}'>\
                 <query xmlns='http://jabber.org/protocol/disco#info' node='{NODE}#{ver}'/></iq>"
            ),
            &e,
        );
        return e.attr("id").unwrap().to_owned();
    }
}

async fn answer(c: &mut Client, id: &str, ver: &str, info: &str) {
    c.send_xml(&format!(
        "<iq type='result' id='{id}' to='localhost'>\
         <query xmlns='http://jabber.org/protocol/disco#info' node='{NODE}#{ver}'>{info}</query></iq>"
    ))
    .await
    .unwrap();
}

async fn session(server: &TestServer, resource: &str) -> Client {
    let mut c = server.login("alice", PW, resource).await;
    c.drain(Duration::from_millis(100)).await;
    c
}

#[tokio::test]
async fn one_query_per_hash_verified_before_it_is_trusted() {
    let cache = CapsCache::new();
    let server = TestServer::start_with_modules(
        |c| c.pep.enabled = false,
        vec![Arc::new(Caps::new(cache.clone()))],
    )
    .await;
    server.add_user("alice", PW).await;

    // §6.3: the first advertiser of a ver is asked.
    let mut phone = session(&server, "phone").await;
    phone.send_xml(&presence(VER)).await.unwrap();
    let id = expect_query(&mut phone, VER).await;
    answer(&mut phone, &id, VER, INFO).await;
    let phone_jid = phone.jid().unwrap().clone();
    for _ in 0..50 {
        if cache.features(&phone_jid).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        cache.features(&phone_jid).unwrap().to_vec(),
        [
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items",
            "http://jabber.org/protocol/muc",
        ]
    );

    // Another resource with the same ver is not asked: the answer is shared.
    let mut laptop = session(&server, "laptop").await;
    laptop.send_xml(&presence(VER)).await.unwrap();
    let mut seen = Vec::new();
    while let Ok(e) = tokio::time::timeout(Duration::from_millis(300), laptop.recv_element()).await
    {
        seen.push(e.unwrap());
    }
    assert!(
        seen.iter().all(|e| e
            .get_child("query", "http://jabber.org/protocol/disco#info")
            .is_none()),
        "a second query for the same ver: {seen:?}"
    );
    assert_eq!(
        cache.features(laptop.jid().unwrap()).map(|f| f.len()),
        Some(4)
    );
    assert_eq!(cache.queries_sent(), 1);

    // §5.4: an answer that does not hash to its ver is not trusted; the next advertiser of
    // that ver is asked in turn.
    let bogus = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut liar = session(&server, "liar").await;
    let mut honest = session(&server, "honest").await;
    liar.send_xml(&presence(bogus)).await.unwrap();
    let id = expect_query(&mut liar, bogus).await;
    honest.send_xml(&presence(bogus)).await.unwrap();
    answer(&mut liar, &id, bogus, INFO).await;
    let id = expect_query(&mut honest, bogus).await;
    answer(&mut honest, &id, bogus, INFO).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(cache.features(liar.jid().unwrap()).is_none());
    assert!(cache.features(honest.jid().unwrap()).is_none());
    assert_eq!(cache.queries_sent(), 3);

    // Unavailable presence forgets the resource.
    phone
        .send_xml("<presence type='unavailable'/>")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(cache.features(&phone_jid).is_none());
}
