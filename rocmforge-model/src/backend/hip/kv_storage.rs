//! [`HipKvStorage`]: one sequence's KV cache on the device.

use super::*;

/// K and V of every layer, one buffer each.
#[derive(Debug)]
pub struct HipKvLayers<T: bytemuck::Pod> {
    pub(super) k: Vec<DeviceBuffer<T>>,
    pub(super) v: Vec<DeviceBuffer<T>>,
}

#[derive(Debug)]
pub(super) enum HipKvLayersOf {
    F32(HipKvLayers<f32>),
    F16(HipKvLayers<f16>),
}

/// One sequence's KV cache on the device.
#[derive(Debug)]
pub struct HipKvStorage {
    pub(super) shape: KvCacheShape,
    pub(super) layers: HipKvLayersOf,
    /// Scratch of the decode attention's splits, sized for the whole capacity (the split
    /// plan of [`AttentionOps::decode_attention_at`]). Behind a mutex because attention
    /// takes the storage shared; one lock per call.
    pub(super) scratch: Mutex<DeviceBuffer<f32>>,
}

impl HipKvStorage {
    /// Shape of each layer's K (and V) tensor.
    pub fn shape(&self) -> KvCacheShape {
        self.shape
    }

    /// Element type.
    pub fn dtype(&self) -> KvDtype {
        match self.layers {
            HipKvLayersOf::F32(_) => KvDtype::F32,
            HipKvLayersOf::F16(_) => KvDtype::F16,
        }
    }
}

pub(super) fn layer_of<T: bytemuck::Pod>(
    layers: &HipKvLayers<T>,
    index: usize,
) -> Result<(&DeviceBuffer<T>, &DeviceBuffer<T>)> {
    match (layers.k.get(index), layers.v.get(index)) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(ModelError::CacheMismatch(format!(
            "layer {index} of a cache of {} layers",
            layers.k.len()
        ))),
    }
}
