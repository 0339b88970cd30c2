//! An event held in engine state. It persists with its fingerprint, which the canonical JSON
//! leaves out but alert ids and the processing order depend on.

use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::Event;

#[derive(Clone, Debug)]
pub struct Held(pub Arc<Event>);

impl Deref for Held {
    type Target = Arc<Event>;
    fn deref(&self) -> &Arc<Event> {
        &self.0
    }
}

impl Serialize for Held {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.0.fingerprint, &*self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Held {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (fingerprint, mut event) = <(u64, Event)>::deserialize(d)?;
        event.fingerprint = fingerprint;
        Ok(Held(Arc::new(event)))
    }
}

/// True when the event concerns the subject: its `user` or its `username`.
pub fn concerns(e: &Event, subject: &str) -> bool {
    e.user.as_deref() == Some(subject)
        || e.username.as_deref() == Some(subject.to_lowercase().as_str())
}
