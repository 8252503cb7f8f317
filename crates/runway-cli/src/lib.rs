//! runway-cli
