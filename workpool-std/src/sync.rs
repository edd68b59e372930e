//! The synchronisation types the crate uses, in one place, so that a model
//! checker can swap them.

pub(crate) use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
