//! Fuzzes the GGUF reader: any input must parse or give an error (never a
//! panic, a hang or an out-of-proportion allocation), and whatever parses
//! must survive a write → read roundtrip unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rocmforge_model::gguf::{GgufArray, GgufFile, GgufHeader, GgufValue, GgufWriter};

fuzz_target!(|data: &[u8]| {
    let header = match GgufHeader::parse(data) {
        Ok(h) => h,
        Err(e) => {
            // Rendering the message must not panic either.
            let _ = e.to_string();
            return;
        }
    };

    // Every getter on every key: mismatches are errors, never panics.
    let md = header.metadata();
    for (key, value) in md.iter() {
        let _ = (
            md.get_u32(key),
            md.get_i32(key),
            md.get_u64(key),
            md.get_i64(key),
        );
        let _ = (
            md.get_f32(key),
            md.get_f64(key),
            md.get_bool(key),
            md.get_str(key),
        );
        let _ = (md.get_str_array(key), md.get_f32_array(key));
        let _ = (md.get_i32_array(key), md.get_u32_array(key));
        let _ = value.type_description();
        if let GgufValue::Array(a) = value {
            let _ = (a.depth(), a.get(0), a.get(a.len()));
            if let GgufArray::String(v) = a {
                let _ = v.iter().map(|s| s.to_string_lossy().len()).sum::<usize>();
            }
        }
    }
    let _ = header.architecture();

    // Every tensor's data is in bounds.
    for info in header.tensors() {
        let t = header
            .tensor_in(data, info.name())
            .expect("validated tensor is in bounds");
        assert_eq!(t.data().len(), info.n_bytes());
        assert_eq!(t.info().offset() % header.alignment() as u64, 0);
    }

    // What parsed can be written again, and reads back the same.
    let mut w = GgufWriter::new();
    w.set_version(header.version()).expect("version 2 or 3");
    w.add_all(md).expect("parsed metadata is writable");
    for info in header.tensors() {
        let t = header.tensor_in(data, info.name()).unwrap();
        w.add_tensor(t.name(), t.ty(), t.dims(), t.data())
            .expect("parsed tensor is writable");
    }
    let bytes = w.to_vec().expect("writing to a Vec");
    let again = GgufFile::from_vec(bytes).expect("a written file parses");
    assert_eq!(again.metadata(), md);
    assert_eq!(again.version(), header.version());
    assert_eq!(again.tensor_infos().len(), header.tensors().len());
    for (t, info) in again.tensors().zip(header.tensors()) {
        assert_eq!(
            (t.name(), t.ty(), t.dims()),
            (info.name(), info.ty(), info.dims())
        );
        assert_eq!(t.data(), &data[info.data_range()]);
    }
});
