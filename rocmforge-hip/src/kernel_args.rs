//! Typed kernel parameters: how Rust values become a launch's `kernelParams`.

use std::ffi::c_void;
use std::marker::PhantomData;

use bytemuck::Pod;

use crate::{DeviceMemory, DeviceSlice, DeviceSliceMut, Error, Result, Stream};

/// One launch's parameter values, each in its own 8-byte slot, and the array of
/// pointers to them that `hipModuleLaunchKernel` takes.
#[derive(Debug, Default)]
pub struct ArgSlots {
    values: Vec<u64>,
}

impl ArgSlots {
    /// Room for `n` parameters.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            values: Vec::with_capacity(n),
        }
    }

    /// Appends a scalar or pointer of at most 8 bytes (little-endian in its slot, as a
    /// kernel reading the parameter's own size at the slot's address expects).
    pub fn push<V: Pod>(&mut self, value: V) {
        const {
            assert!(
                std::mem::size_of::<V>() <= 8,
                "kernel parameters are at most 8 bytes"
            )
        };
        let mut slot = 0u64;
        bytemuck::bytes_of_mut(&mut slot)[..std::mem::size_of::<V>()]
            .copy_from_slice(bytemuck::bytes_of(&value));
        self.values.push(slot);
    }

    /// Appends a device address.
    pub fn push_ptr(&mut self, ptr: *const c_void) {
        self.push(ptr as usize as u64);
    }

    /// Pointers to each slot, valid while `self` is neither moved nor changed.
    pub fn pointers(&mut self) -> Vec<*mut c_void> {
        self.values
            .iter_mut()
            .map(|slot| (slot as *mut u64).cast::<c_void>())
            .collect()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A parameter type of a kernel signature, and the Rust value passed for it.
pub trait KernelParam {
    /// What the caller passes.
    type Arg<'a>;
    /// Writes the argument into `slots`, checking that device memory belongs to `stream`.
    fn encode(arg: &Self::Arg<'_>, stream: &Stream, slots: &mut ArgSlots) -> Result<()>;
}

/// A `const T*` parameter: the kernel only reads. Passed as a [`DeviceSlice`].
pub struct In<T>(PhantomData<T>);

/// A `T*` parameter the kernel writes. Passed as a [`DeviceSliceMut`], so no other view
/// of that memory can exist during the call.
pub struct Out<T>(PhantomData<T>);

fn check_stream(memory_stream: &Stream, stream: &Stream) -> Result<()> {
    if memory_stream != stream {
        return Err(Error::StreamMismatch {
            what: "kernel launch",
        });
    }
    Ok(())
}

impl<T: Pod> KernelParam for In<T> {
    type Arg<'a> = DeviceSlice<'a, T>;
    fn encode(arg: &Self::Arg<'_>, stream: &Stream, slots: &mut ArgSlots) -> Result<()> {
        check_stream(arg.stream(), stream)?;
        slots.push_ptr(arg.device_ptr());
        Ok(())
    }
}

impl<T: Pod> KernelParam for Out<T> {
    type Arg<'a> = DeviceSliceMut<'a, T>;
    fn encode(arg: &Self::Arg<'_>, stream: &Stream, slots: &mut ArgSlots) -> Result<()> {
        check_stream(arg.stream(), stream)?;
        slots.push_ptr(arg.device_ptr());
        Ok(())
    }
}

macro_rules! scalar_params {
    ($($t:ty),*) => {$(
        impl KernelParam for $t {
            type Arg<'a> = $t;
            fn encode(arg: &$t, _stream: &Stream, slots: &mut ArgSlots) -> Result<()> {
                slots.push(*arg);
                Ok(())
            }
        }
    )*};
}
scalar_params!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

/// A kernel's whole parameter list: a tuple of [`KernelParam`]s.
pub trait KernelSignature {
    /// The tuple of values passed at launch.
    type Args<'a>;
    /// Number of parameters.
    const ARITY: usize;
    /// Encodes all arguments.
    fn encode(args: &Self::Args<'_>, stream: &Stream, slots: &mut ArgSlots) -> Result<()>;
}

macro_rules! signature_tuples {
    ($(($($p:ident $i:tt),*)),* $(,)?) => {$(
        impl<$($p: KernelParam),*> KernelSignature for ($($p,)*) {
            type Args<'a> = ($($p::Arg<'a>,)*);
            const ARITY: usize = [$(stringify!($p)),*].len();
            #[allow(unused_variables)]
            fn encode(args: &Self::Args<'_>, stream: &Stream, slots: &mut ArgSlots) -> Result<()> {
                $($p::encode(&args.$i, stream, slots)?;)*
                Ok(())
            }
        }
    )*};
}

impl KernelSignature for () {
    type Args<'a> = ();
    const ARITY: usize = 0;
    fn encode(_: &(), _: &Stream, _: &mut ArgSlots) -> Result<()> {
        Ok(())
    }
}

signature_tuples!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15),
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slots_hold_values_little_endian() {
        let mut slots = ArgSlots::with_capacity(3);
        slots.push(0x1234u16);
        slots.push(-1i32);
        slots.push(1.5f32);
        let ptrs = slots.pointers();
        assert_eq!(ptrs.len(), 3);
        // SAFETY: each pointer points at a live u64 slot in `slots`.
        unsafe {
            assert_eq!(*(ptrs[0] as *const u16), 0x1234);
            assert_eq!(*(ptrs[1] as *const i32), -1);
            assert_eq!(*(ptrs[2] as *const f32), 1.5);
        }
    }

    #[test]
    fn arity_counts_parameters() {
        assert_eq!(<(u32, f32, In<f32>, Out<f32>) as KernelSignature>::ARITY, 4);
        assert_eq!(<() as KernelSignature>::ARITY, 0);
    }

    proptest! {
        #[test]
        fn u64_and_f64_roundtrip(a in any::<u64>(), b in any::<f64>()) {
            let mut slots = ArgSlots::default();
            slots.push(a);
            slots.push(b);
            let ptrs = slots.pointers();
            // SAFETY: live slots.
            unsafe {
                prop_assert_eq!(*(ptrs[0] as *const u64), a);
                prop_assert_eq!((*(ptrs[1] as *const f64)).to_bits(), b.to_bits());
            }
        }
    }
}
