//! What client connections count for `/metrics` (the metrics themselves, their names and
//! handles, are in `starling-metrics`): the helpers that keep each count in the connection code
//! a one-line call.

use starling_sasl::Mechanism;
use starling_sasl::ht::HtMechanism;

/// The `mechanism` label of an authentication attempt, in one byte (every connection keeps one):
/// the server's spelling of a mechanism it implements (SASL, or a XEP-0484 FAST one),
/// `unsupported` for any other name, `none` before a request named one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MechanismLabel(u8);

/// Indices after `none` and `unsupported`: [`Mechanism::ALL`], then [`HtMechanism::ALL`].
const FIRST_SASL: usize = 2;
const FIRST_HT: usize = FIRST_SASL + Mechanism::ALL.len();

impl MechanismLabel {
    pub(crate) const NONE: MechanismLabel = MechanismLabel(0);
    const UNSUPPORTED: MechanismLabel = MechanismLabel(1);

    /// The label of a request naming `requested`.
    pub(crate) fn of(requested: Option<&str>) -> Self {
        let Some(name) = requested else {
            return Self::NONE;
        };
        let index = Mechanism::from_name(name)
            .and_then(|m| Mechanism::ALL.iter().position(|&a| a == m))
            .map(|i| FIRST_SASL + i)
            .or_else(|| {
                HtMechanism::from_name(name)
                    .and_then(|m| HtMechanism::ALL.iter().position(|&a| a == m))
                    .map(|i| FIRST_HT + i)
            });
        index
            .and_then(|i| u8::try_from(i).ok())
            .map_or(Self::UNSUPPORTED, MechanismLabel)
    }

    /// The label's value.
    pub(crate) fn name(self) -> &'static str {
        let i = usize::from(self.0);
        match i {
            0 => starling_metrics::NO_MECHANISM,
            1 => starling_metrics::UNSUPPORTED_MECHANISM,
            _ if i < FIRST_HT => Mechanism::ALL
                .get(i - FIRST_SASL)
                .map_or(starling_metrics::UNSUPPORTED_MECHANISM, |m| m.name()),
            _ => HtMechanism::ALL
                .get(i - FIRST_HT)
                .map_or(starling_metrics::UNSUPPORTED_MECHANISM, |m| m.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_servers_spelling_or_a_fixed_word() {
        for m in Mechanism::ALL {
            assert_eq!(MechanismLabel::of(Some(m.name())).name(), m.name());
        }
        for m in HtMechanism::ALL {
            assert_eq!(MechanismLabel::of(Some(m.name())).name(), m.name());
        }
        assert_eq!(
            MechanismLabel::of(Some("SCRAM-SHA-256")).name(),
            "SCRAM-SHA-256"
        );
        // A client's invention never becomes a label value.
        assert_eq!(
            MechanismLabel::of(Some("X-MADE-UP-1234")).name(),
            "unsupported"
        );
        assert_eq!(MechanismLabel::of(None).name(), "none");
        assert_eq!(MechanismLabel::NONE.name(), "none");
    }
}
