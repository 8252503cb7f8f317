//! The runway-cli integration-test binary: one module per area.

mod cli_offline;
