//! What client connections count for `/metrics` (the metrics themselves, their names and
//! handles, are in `starling-metrics`): the helpers that keep each count in the connection code
//! a one-line call.

use starling_sasl::Mechanism;
use starling_sasl::ht::HtMechanism;

/// The `mechanism` label of an authentication attempt: the server's spelling of a mechanism it
/// implements (SASL, or a XEP-0484 FAST one), `unsupported` for any other name, `none` when the
/// request named none.
pub(crate) fn mechanism(requested: Option<&str>) -> &'static str {
    let Some(name) = requested else {
        return starling_metrics::NO_MECHANISM;
    };
    Mechanism::from_name(name)
        .map(|m| m.name())
        .or_else(|| HtMechanism::from_name(name).map(|m| m.name()))
        .unwrap_or(starling_metrics::UNSUPPORTED_MECHANISM)
}

#[cfg(test)]
mod tests {
    use super::mechanism;

    #[test]
    fn labels_are_the_servers_spelling_or_a_fixed_word() {
        assert_eq!(mechanism(Some("SCRAM-SHA-256")), "SCRAM-SHA-256");
        assert_eq!(mechanism(Some("PLAIN")), "PLAIN");
        assert_eq!(mechanism(Some("HT-SHA-256-NONE")), "HT-SHA-256-NONE");
        // A client's invention never becomes a label value.
        assert_eq!(mechanism(Some("X-MADE-UP-1234")), "unsupported");
        assert_eq!(mechanism(None), "none");
    }
}
