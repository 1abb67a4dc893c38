//! The seam for recording a balancer's decisions (a trace for `switchyard plugin replay`):
//! what each pick saw and chose, and how each attempt ended. Like [`LbMethod`], the balancer
//! only calls it; whoever implements it (the `trace` module) does the I/O.
//!
//! [`LbMethod`]: super::LbMethod

use super::lbmethod::Completion;
use crate::config::StatusFlags;

/// A pick as it happened: the request's key (and sticky route), the member chosen, and every
/// member's state as the method saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickRecord {
    /// The request key handed to the method.
    pub key: u64,
    /// The request's sticky route, when it had one (whether or not the session placed it).
    pub route: Option<String>,
    /// The chosen member's position (config order).
    pub chosen: usize,
    /// Members the request had tried already (a retry).
    pub tried: Vec<usize>,
    /// Every member, in config order.
    pub members: Vec<MemberRecord>,
}

/// One member's state at a pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRecord {
    /// Its flags.
    pub status: StatusFlags,
    /// Requests in flight.
    pub busy: u64,
    /// Bytes sent to it so far.
    pub transferred: u64,
    /// Bytes read from it so far.
    pub read: u64,
}

/// Whatever records a balancer's decisions. Called on the request's thread: implementations
/// hand the record on and return at once.
pub trait PickObserver: Send + Sync + 'static {
    /// A request was placed.
    fn picked(&self, pick: PickRecord);

    /// An attempt ended.
    fn completed(&self, completion: &Completion);
}
