//! [`HipTokens`]: the ids and positions of a forward call on the device.

use super::*;

/// The ids and positions of one forward call, on the device.
#[derive(Debug)]
pub struct HipTokens {
    pub(super) ids: DeviceBuffer<u32>,
    pub(super) positions: DeviceBuffer<i32>,
}
