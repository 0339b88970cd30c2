//! Event sources. For now: newline-delimited input from files and standard input.

pub mod lines;
