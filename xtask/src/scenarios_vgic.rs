//! System scenarios of the virtual GIC (issue 4).

use crate::scenarios::Scenario;

/// The vGIC scenarios (none yet).
pub(crate) fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
