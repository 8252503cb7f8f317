//! Test fixture: a command component (exports `wasi:cli/run`), not an HTTP handler.
//! Runway must refuse it at publish/validation time.

fn main() {
    println!("I am a command, not an HTTP handler");
}
