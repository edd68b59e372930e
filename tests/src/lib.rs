//! Test support for the workpool workspace.
