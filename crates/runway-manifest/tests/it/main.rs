//! Integration tests of `runway-manifest`: golden manifest errors and the
//! package format.

mod golden;
mod package;
