//! [`HipMatrix`]: a weight matrix on the device.

use super::*;

/// A weight matrix on the device, in its ggml type.
#[derive(Debug)]
pub struct HipMatrix {
    pub(super) data: DeviceBuffer<u8>,
    pub(super) ty: GgmlType,
    pub(super) rows: usize,
    pub(super) cols: usize,
}

impl HipMatrix {
    /// The matrix as the kernels take it.
    pub fn weights(&self) -> Result<GpuWeights<'_>> {
        Ok(GpuWeights::new(
            self.ty,
            self.data.as_slice(),
            self.rows,
            self.cols,
        )?)
    }

    /// Its ggml type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }
}
