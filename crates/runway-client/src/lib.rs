//! runway-client
