//! System scenarios of the virtual ITS (issue 5).

use crate::scenarios::Scenario;

/// The vITS scenarios (none yet).
pub(crate) fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
