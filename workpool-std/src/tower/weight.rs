//! How many units of its key a request holds.

/// How many units of its key a request of type `Req` holds while it is in
/// flight (see [`KeyedLimitLayer::with_weight`](super::KeyedLimitLayer::with_weight)).
/// Every `Fn(&Req) -> u64` is one; [`OneUnit`], the default, gives every
/// request one unit.
///
/// A request weighs what the function says when it arrives, and waits for
/// that many units in its key's queue: strictly in arrival order, so a
/// heavy request at the head holds back lighter ones behind it until its
/// units are free (it is never starved). A weight of 0 holds nothing and
/// never waits; one above the key's target waits until the target is
/// raised (a shedding layer turns it away with
/// [`Overloaded`](super::Overloaded)).
///
/// # Examples
///
/// ```
/// use workpool_std::tower::Weight;
///
/// struct Upload { bytes: u64 }
/// let in_kib = |upload: &Upload| upload.bytes.div_ceil(1024);
/// assert_eq!(in_kib.weight(&Upload { bytes: 3000 }), 3);
/// ```
pub trait Weight<Req> {
    /// The units of its key that `request` holds.
    fn weight(&self, request: &Req) -> u64;
}

/// The default [`Weight`]: every request holds one unit of its key.
///
/// # Examples
///
/// ```
/// use workpool_std::tower::{OneUnit, Weight};
/// assert_eq!(Weight::<String>::weight(&OneUnit, &"any".to_owned()), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OneUnit;

impl<Req> Weight<Req> for OneUnit {
    #[inline]
    fn weight(&self, _: &Req) -> u64 {
        1
    }
}

impl<Req, G: Fn(&Req) -> u64> Weight<Req> for G {
    #[inline]
    fn weight(&self, request: &Req) -> u64 {
        self(request)
    }
}
