//! Errors seen in `Drop`, kept until the user asks for them.
//!
//! `Drop` cannot return an error, and swallowing one would hide a broken device
//! (invariant 5). Each device keeps the errors its handles met while being released;
//! `Stream::synchronize` and `Device::take_deferred_errors` hand them out.

use parking_lot::Mutex;

use crate::Error;

/// How many errors are kept; later ones are counted, not stored.
const CAPACITY: usize = 64;

/// A bounded list of errors recorded in `Drop`.
#[derive(Debug, Default)]
pub(crate) struct DeferredErrors {
    inner: Mutex<DeferredState>,
}

#[derive(Debug, Default)]
struct DeferredState {
    errors: Vec<Error>,
    dropped: usize,
}

impl DeferredErrors {
    /// Records an error from a destructor.
    pub(crate) fn record(&self, error: Error) {
        let mut state = self.inner.lock();
        if state.errors.len() < CAPACITY {
            state.errors.push(error);
        } else {
            state.dropped += 1;
        }
    }

    /// Records the error of `result`, if any.
    pub(crate) fn record_result(&self, result: crate::Result<()>) {
        if let Err(e) = result {
            self.record(e);
        }
    }

    /// Takes every recorded error, oldest first (at most the first 64 since the last take).
    pub(crate) fn take(&self) -> Vec<Error> {
        let mut state = self.inner.lock();
        state.dropped = 0;
        std::mem::take(&mut state.errors)
    }

    /// `Err(Deferred)` if anything was recorded.
    pub(crate) fn check(&self) -> crate::Result<()> {
        let errors = self.take();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Deferred { errors })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_takes_in_order() {
        let d = DeferredErrors::default();
        assert!(d.check().is_ok());
        d.record(Error::InteriorNul { what: "first" });
        d.record_result(Err(Error::InteriorNul { what: "second" }));
        d.record_result(Ok(()));
        let errors = d.take();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].to_string().contains("first"));
        assert!(d.take().is_empty());
    }

    #[test]
    fn is_bounded() {
        let d = DeferredErrors::default();
        for _ in 0..CAPACITY * 3 {
            d.record(Error::InteriorNul { what: "x" });
        }
        assert_eq!(d.take().len(), CAPACITY);
    }

    #[test]
    fn check_surfaces_as_deferred() {
        let d = DeferredErrors::default();
        d.record(Error::InteriorNul { what: "x" });
        assert!(matches!(d.check(), Err(Error::Deferred { errors }) if errors.len() == 1));
    }
}
