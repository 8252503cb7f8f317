//! The runway-cli integration-test binary: one module per area.

mod at_rest;
mod cli_live;
mod cli_offline;
mod e2e_bad_input;
mod e2e_serve;
mod farm;
mod farm_support;
mod support;
