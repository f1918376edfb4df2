//! Affiliations and roles (XEP-0045 §5) and what each may do.

/// A long-lived association of a bare JID with a room (XEP-0045 §5.2), ranked: an outcast below
/// nobody, an owner above all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "admin" => Affiliation::Admin,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }

    /// The role an occupant with this affiliation gets on entering (XEP-0045 §5.1.2): owners and
    /// admins moderate; in a moderated room (§8.3) those without affiliation are visitors.
    pub fn default_role(self, moderated: bool) -> Role {
        match self {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            Affiliation::Member => Role::Participant,
            Affiliation::None if moderated => Role::Visitor,
            Affiliation::None => Role::Participant,
            Affiliation::Outcast => Role::None,
        }
    }
}

/// A temporary position of an occupant in a room (XEP-0045 §5.1), ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }
}

/// Whether an actor with `actor` affiliation may give `target`'s JID (affiliated `from`) the
/// affiliation `to` (XEP-0045 §9, §10: admins manage members and outcasts below them; owners
/// manage everyone, admins and owners included).
pub fn may_set_affiliation(actor: Affiliation, from: Affiliation, to: Affiliation) -> bool {
    match actor {
        Affiliation::Owner => true,
        Affiliation::Admin => from < Affiliation::Admin && to < Affiliation::Admin,
        _ => false,
    }
}

/// Whether a moderator affiliated `actor` may change the role of an occupant affiliated
/// `target` (XEP-0045 §8.2, §8.4, §8.5: never one of higher affiliation; an admin's or owner's
/// role is theirs: no moderator takes voice or moderation from them, §8.4 and §9.7).
pub fn may_set_role(actor: Affiliation, target: Affiliation, to: Role) -> bool {
    if target > actor {
        return false;
    }
    if target >= Affiliation::Admin && to < Role::Moderator {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_names_round_trip() {
        for a in [
            Affiliation::Outcast,
            Affiliation::None,
            Affiliation::Member,
            Affiliation::Admin,
            Affiliation::Owner,
        ] {
            assert_eq!(Affiliation::parse(a.as_str()), Some(a));
        }
        for r in [
            Role::None,
            Role::Visitor,
            Role::Participant,
            Role::Moderator,
        ] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(
            Affiliation::Owner > Affiliation::Admin && Affiliation::None > Affiliation::Outcast
        );
        assert_eq!(Affiliation::parse("god"), None);
    }

    /// XEP-0045 §5.1.2: default roles by affiliation, and in moderated rooms.
    #[test]
    fn default_roles() {
        assert_eq!(Affiliation::Owner.default_role(false), Role::Moderator);
        assert_eq!(Affiliation::Admin.default_role(true), Role::Moderator);
        assert_eq!(Affiliation::Member.default_role(true), Role::Participant);
        assert_eq!(Affiliation::None.default_role(true), Role::Visitor);
        assert_eq!(Affiliation::None.default_role(false), Role::Participant);
    }

    /// XEP-0045 §8.2 (a member moderator cannot kick an admin), §8.4 (no one revokes an
    /// admin's voice), §9.1/§10.6 (admins ban members, not admins; owners anyone).
    #[test]
    fn permissions() {
        use Affiliation::*;
        assert!(!may_set_role(Member, Admin, Role::None));
        assert!(!may_set_role(Owner, Admin, Role::Visitor));
        assert!(may_set_role(Admin, Member, Role::None));
        assert!(may_set_role(Admin, None, Role::Participant));
        assert!(may_set_affiliation(Admin, Member, Outcast));
        assert!(!may_set_affiliation(Admin, Admin, Outcast));
        assert!(!may_set_affiliation(Admin, None, Owner));
        assert!(may_set_affiliation(Owner, Owner, None));
        assert!(!may_set_affiliation(Member, None, Member));
    }
}
