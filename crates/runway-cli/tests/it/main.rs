//! The runway-cli integration-test binary: one module per area.

mod at_rest;
mod cli_live;
mod cli_offline;
mod connections;
mod console;
mod crate_graph;
mod e2e_bad_input;
mod e2e_serve;
mod edge_input;
mod env_api;
mod farm;
mod farm_support;
mod identity;
mod infra;
mod isolation;
mod jobs;
mod log_limits;
mod plans;
mod proxy;
mod responses;
mod small_hardening;
mod standby;
mod support;
mod timers;
mod trust;
mod zones;
