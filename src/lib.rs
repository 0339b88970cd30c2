//! authwatch: detects attacks on identity systems from authentication events.
pub mod event;
pub mod normalize;
pub mod rule;
