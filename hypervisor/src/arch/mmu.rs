//! EL2 stage-1 MMU and stage-2 installation (filled in with the page-table builder).
