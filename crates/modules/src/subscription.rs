//! Presence subscription states and their transitions: RFC 6121 Appendix A as data.
//!
//! A contact's state, seen from one account, is the pair of subscriptions (`to`: the account sees
//! the contact's presence; `from`: the contact sees the account's) plus the two pending flags
//! ("Pending Out": the account asked and awaits an answer; "Pending In": the contact asked and the
//! account has not answered). The nine states of Appendix A.1 are the valid combinations
//! (Pending Out only without `to`, Pending In only without `from`).
//!
//! The functions here are pure: they take the current state and a subscription stanza type and say
//! what the server does (route or deliver, the new state, an automatic reply). The presence module
//! applies them to stored roster items; the table tests below cover every row of A.2 and A.3.

use starling_storage::{RosterItem, Subscription};

/// One of the four subscription-related presence types (RFC 6121 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubKind {
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
}

impl SubKind {
    pub fn from_type(ty: &str) -> Option<SubKind> {
        match ty {
            "subscribe" => Some(SubKind::Subscribe),
            "subscribed" => Some(SubKind::Subscribed),
            "unsubscribe" => Some(SubKind::Unsubscribe),
            "unsubscribed" => Some(SubKind::Unsubscribed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SubKind::Subscribe => "subscribe",
            SubKind::Subscribed => "subscribed",
            SubKind::Unsubscribe => "unsubscribe",
            SubKind::Unsubscribed => "unsubscribed",
        }
    }
}

/// A subscription state (RFC 6121 Appendix A.1) plus the pre-approval flag (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct State {
    pub to: bool,
    pub from: bool,
    pub pending_out: bool,
    pub pending_in: bool,
    pub preapproved: bool,
}

impl State {
    /// The state of a stored item; "None" when there is no item.
    pub fn of(item: Option<&RosterItem>) -> State {
        let Some(item) = item else {
            return State::default();
        };
        let (to, from) = match item.subscription {
            Subscription::None => (false, false),
            Subscription::To => (true, false),
            Subscription::From => (false, true),
            Subscription::Both => (true, true),
        };
        State {
            to,
            from,
            pending_out: item.ask_out,
            pending_in: item.pending_in,
            preapproved: item.preapproved,
        }
    }

    pub fn subscription(self) -> Subscription {
        match (self.to, self.from) {
            (false, false) => Subscription::None,
            (true, false) => Subscription::To,
            (false, true) => Subscription::From,
            (true, true) => Subscription::Both,
        }
    }

    /// Writes the state into `item` (subscription, ask, pending-in, approved).
    pub fn apply_to(self, item: &mut RosterItem) {
        item.subscription = self.subscription();
        item.ask_out = self.pending_out;
        item.pending_in = self.pending_in;
        item.preapproved = self.preapproved;
        if !self.pending_in {
            item.pending_in_stanza = None;
        }
    }
}

/// What the user's server does with a subscription stanza the user sent (RFC 6121 A.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// Route the stanza to the contact.
    pub route: bool,
    /// The new state (equal to the old one when nothing changes).
    pub state: State,
}

/// What the contact's server does with an inbound subscription stanza (RFC 6121 A.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// Deliver the stanza to the account's available resources.
    pub deliver: bool,
    pub state: State,
    /// Answer on the account's behalf with `subscribed` (already subscribed, or pre-approved).
    pub auto_subscribed: bool,
}

/// RFC 6121 A.2: the user sent `kind` to the contact whose state is `s`.
pub fn outbound(kind: SubKind, s: State) -> Outbound {
    let mut n = s;
    let route = match kind {
        // A.2.1: always routed; "None", "None + Pending In" and "From" gain Pending Out.
        SubKind::Subscribe => {
            if !s.to {
                n.pending_out = true;
            }
            true
        }
        // A.2.2: an approval is routed only when there is a request to approve.
        SubKind::Subscribed => {
            if s.pending_in && !s.from {
                n.from = true;
                n.pending_in = false;
                n.preapproved = false;
                true
            } else {
                if !s.from {
                    // §3.4: no request pending: this is a pre-approval, noted and not routed.
                    n.preapproved = true;
                }
                false
            }
        }
        // A.2.3: always routed; the user's subscription and any pending request of theirs end.
        SubKind::Unsubscribe => {
            n.to = false;
            n.pending_out = false;
            true
        }
        // A.2.4: routed when the contact has, or asked for, a subscription: both end.
        SubKind::Unsubscribed => {
            // §3.4: it also cancels a pre-approval.
            n.preapproved = false;
            if s.from || s.pending_in {
                n.from = false;
                n.pending_in = false;
                true
            } else {
                false
            }
        }
    };
    Outbound { route, state: n }
}

/// RFC 6121 A.3: the contact sent `kind` to the user whose state for the contact is `s`.
pub fn inbound(kind: SubKind, s: State) -> Inbound {
    let mut n = s;
    let mut auto_subscribed = false;
    let deliver = match kind {
        // A.3.1
        SubKind::Subscribe => {
            if s.from {
                // "From", "From + Pending Out", "Both": already subscribed; the server answers
                // `subscribed` itself (§3.1.3).
                auto_subscribed = true;
                false
            } else if s.preapproved {
                // §3.4: pre-approved: the subscription is granted without asking the user.
                n.from = true;
                n.pending_in = false;
                n.preapproved = false;
                auto_subscribed = true;
                false
            } else if s.pending_in {
                // Already pending: not delivered again now (it is redelivered at each login).
                false
            } else {
                n.pending_in = true;
                true
            }
        }
        // A.3.2: only an approval the user asked for counts.
        SubKind::Subscribed => {
            if s.pending_out && !s.to {
                n.to = true;
                n.pending_out = false;
                true
            } else {
                false
            }
        }
        // A.3.3: the contact no longer wants the user's presence, or withdraws its request.
        SubKind::Unsubscribe => {
            if s.from || s.pending_in {
                n.from = false;
                n.pending_in = false;
                true
            } else {
                false
            }
        }
        // A.3.4: the contact revoked (or refused) the user's subscription.
        SubKind::Unsubscribed => {
            if s.to || s.pending_out {
                n.to = false;
                n.pending_out = false;
                true
            } else {
                false
            }
        }
    };
    Inbound {
        deliver,
        state: n,
        auto_subscribed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nine states of RFC 6121 Appendix A.1, by their names in the tables.
    fn st(name: &str) -> State {
        let (to, from, pending_out, pending_in) = match name {
            "None" => (false, false, false, false),
            "None + Pending Out" => (false, false, true, false),
            "None + Pending In" => (false, false, false, true),
            "None + Pending Out+In" => (false, false, true, true),
            "To" => (true, false, false, false),
            "To + Pending In" => (true, false, false, true),
            "From" => (false, true, false, false),
            "From + Pending Out" => (false, true, true, false),
            "Both" => (true, true, false, false),
            other => panic!("unknown state {other}"),
        };
        State {
            to,
            from,
            pending_out,
            pending_in,
            preapproved: false,
        }
    }

    const STATES: [&str; 9] = [
        "None",
        "None + Pending Out",
        "None + Pending In",
        "None + Pending Out+In",
        "To",
        "To + Pending In",
        "From",
        "From + Pending Out",
        "Both",
    ];

    /// Checks one table: rows of (existing state, route/deliver, new state or "no state change").
    fn check_table(table: &str, rows: &[(&str, bool, &str)], f: impl Fn(State) -> (bool, State)) {
        assert_eq!(rows.len(), 9, "{table}: every state has a row");
        for (i, (from, yes, to)) in rows.iter().enumerate() {
            assert_eq!(*from, STATES[i], "{table}: rows in the RFC's order");
            let before = st(from);
            let want = if *to == "no state change" {
                before
            } else {
                st(to)
            };
            let (got_yes, got) = f(before);
            assert_eq!(got_yes, *yes, "{table}: {from}: route/deliver");
            assert_eq!(got, want, "{table}: {from}: new state");
        }
    }

    #[test]
    fn a_2_1_outbound_subscribe() {
        check_table(
            "A.2.1",
            &[
                ("None", true, "None + Pending Out"),
                ("None + Pending Out", true, "no state change"),
                ("None + Pending In", true, "None + Pending Out+In"),
                ("None + Pending Out+In", true, "no state change"),
                ("To", true, "no state change"),
                ("To + Pending In", true, "no state change"),
                ("From", true, "From + Pending Out"),
                ("From + Pending Out", true, "no state change"),
                ("Both", true, "no state change"),
            ],
            |s| {
                let o = outbound(SubKind::Subscribe, s);
                (o.route, o.state)
            },
        );
    }

    #[test]
    fn a_2_2_outbound_subscribed() {
        // Rows where nothing is pending note a pre-approval (§3.4); the table's state columns
        // are checked without that flag and the flag separately.
        check_table(
            "A.2.2",
            &[
                ("None", false, "no state change"),
                ("None + Pending Out", false, "no state change"),
                ("None + Pending In", true, "From"),
                ("None + Pending Out+In", true, "From + Pending Out"),
                ("To", false, "no state change"),
                ("To + Pending In", true, "Both"),
                ("From", false, "no state change"),
                ("From + Pending Out", false, "no state change"),
                ("Both", false, "no state change"),
            ],
            |s| {
                let o = outbound(SubKind::Subscribed, s);
                let mut state = o.state;
                state.preapproved = false;
                (o.route, state)
            },
        );
        for name in ["None", "None + Pending Out", "To"] {
            assert!(
                outbound(SubKind::Subscribed, st(name)).state.preapproved,
                "{name}: pre-approved"
            );
        }
        for name in ["From", "From + Pending Out", "Both", "None + Pending In"] {
            assert!(
                !outbound(SubKind::Subscribed, st(name)).state.preapproved,
                "{name}: not pre-approved"
            );
        }
    }

    #[test]
    fn a_2_3_outbound_unsubscribe() {
        check_table(
            "A.2.3",
            &[
                ("None", true, "no state change"),
                ("None + Pending Out", true, "None"),
                ("None + Pending In", true, "no state change"),
                ("None + Pending Out+In", true, "None + Pending In"),
                ("To", true, "None"),
                ("To + Pending In", true, "None + Pending In"),
                ("From", true, "no state change"),
                ("From + Pending Out", true, "From"),
                ("Both", true, "From"),
            ],
            |s| {
                let o = outbound(SubKind::Unsubscribe, s);
                (o.route, o.state)
            },
        );
    }

    #[test]
    fn a_2_4_outbound_unsubscribed() {
        check_table(
            "A.2.4",
            &[
                ("None", false, "no state change"),
                ("None + Pending Out", false, "no state change"),
                ("None + Pending In", true, "None"),
                ("None + Pending Out+In", true, "None + Pending Out"),
                ("To", false, "no state change"),
                ("To + Pending In", true, "To"),
                ("From", true, "None"),
                ("From + Pending Out", true, "None + Pending Out"),
                ("Both", true, "To"),
            ],
            |s| {
                let o = outbound(SubKind::Unsubscribed, s);
                (o.route, o.state)
            },
        );
        // §3.4: unsubscribed cancels a pre-approval without routing anything.
        let mut s = st("None");
        s.preapproved = true;
        assert_eq!(
            outbound(SubKind::Unsubscribed, s),
            Outbound {
                route: false,
                state: st("None")
            }
        );
    }

    #[test]
    fn a_3_1_inbound_subscribe() {
        check_table(
            "A.3.1",
            &[
                ("None", true, "None + Pending In"),
                ("None + Pending Out", true, "None + Pending Out+In"),
                ("None + Pending In", false, "no state change"),
                ("None + Pending Out+In", false, "no state change"),
                ("To", true, "To + Pending In"),
                ("To + Pending In", false, "no state change"),
                ("From", false, "no state change"),
                ("From + Pending Out", false, "no state change"),
                ("Both", false, "no state change"),
            ],
            |s| {
                let i = inbound(SubKind::Subscribe, s);
                (i.deliver, i.state)
            },
        );
        // The starred rows: the server answers `subscribed` itself.
        for name in STATES {
            let auto = inbound(SubKind::Subscribe, st(name)).auto_subscribed;
            assert_eq!(auto, name.starts_with("From") || name == "Both", "{name}");
        }
    }

    #[test]
    fn a_3_1_inbound_subscribe_preapproved() {
        // §3.4: a pre-approved request is granted at once and not delivered.
        for (name, after) in [
            ("None", "From"),
            ("None + Pending Out", "From + Pending Out"),
            ("To", "Both"),
        ] {
            let mut s = st(name);
            s.preapproved = true;
            assert_eq!(
                inbound(SubKind::Subscribe, s),
                Inbound {
                    deliver: false,
                    state: st(after),
                    auto_subscribed: true
                },
                "{name}"
            );
        }
    }

    #[test]
    fn a_3_2_inbound_subscribed() {
        check_table(
            "A.3.2",
            &[
                ("None", false, "no state change"),
                ("None + Pending Out", true, "To"),
                ("None + Pending In", false, "no state change"),
                ("None + Pending Out+In", true, "To + Pending In"),
                ("To", false, "no state change"),
                ("To + Pending In", false, "no state change"),
                ("From", false, "no state change"),
                ("From + Pending Out", true, "Both"),
                ("Both", false, "no state change"),
            ],
            |s| {
                let i = inbound(SubKind::Subscribed, s);
                (i.deliver, i.state)
            },
        );
    }

    #[test]
    fn a_3_3_inbound_unsubscribe() {
        check_table(
            "A.3.3",
            &[
                ("None", false, "no state change"),
                ("None + Pending Out", false, "no state change"),
                ("None + Pending In", true, "None"),
                ("None + Pending Out+In", true, "None + Pending Out"),
                ("To", false, "no state change"),
                ("To + Pending In", true, "To"),
                ("From", true, "None"),
                ("From + Pending Out", true, "None + Pending Out"),
                ("Both", true, "To"),
            ],
            |s| {
                let i = inbound(SubKind::Unsubscribe, s);
                (i.deliver, i.state)
            },
        );
    }

    #[test]
    fn a_3_4_inbound_unsubscribed() {
        check_table(
            "A.3.4",
            &[
                ("None", false, "no state change"),
                ("None + Pending Out", true, "None"),
                ("None + Pending In", false, "no state change"),
                ("None + Pending Out+In", true, "None + Pending In"),
                ("To", true, "None"),
                ("To + Pending In", true, "None + Pending In"),
                ("From", false, "no state change"),
                ("From + Pending Out", true, "From"),
                ("Both", true, "From"),
            ],
            |s| {
                let i = inbound(SubKind::Unsubscribed, s);
                (i.deliver, i.state)
            },
        );
    }

    #[test]
    fn no_auto_reply_except_subscribe() {
        for kind in [
            SubKind::Subscribed,
            SubKind::Unsubscribe,
            SubKind::Unsubscribed,
        ] {
            for name in STATES {
                assert!(!inbound(kind, st(name)).auto_subscribed, "{kind:?} {name}");
            }
        }
    }
}
