//! Integration tests of the balancer: real front-ends, a real controller and
//! a real client, all on 127.0.0.1, so every behaviour is seen on the wire.

mod config;
mod discovery;
mod ejection;
mod health;
mod logging;
mod policy;
mod pooling;
mod proxying;
mod retry;
mod shutdown;
mod support;
