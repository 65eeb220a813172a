//! Reads function symbols (name, size) out of an ELF code object: AMD HSA code objects
//! and NVIDIA cubins are both ELF64, and each kernel is a sized function symbol.
//! Used to report per-kernel code size; never trusted for anything else.

/// `(name, size in bytes)` of every function symbol, or `None` if `bytes` is not a
/// well-formed little-endian ELF64 file.
pub fn function_symbols(bytes: &[u8]) -> Option<Vec<(String, u64)>> {
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |off: usize| -> Option<u16> {
        Some(u16::from_le_bytes(
            bytes.get(off..off + 2)?.try_into().ok()?,
        ))
    };
    let u32_at = |off: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            bytes.get(off..off + 4)?.try_into().ok()?,
        ))
    };
    let u64_at = |off: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            bytes.get(off..off + 8)?.try_into().ok()?,
        ))
    };
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3A)?);
    let shnum = usize::from(u16_at(0x3C)?);
    if shentsize < 64 {
        return None;
    }
    let section = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let mut symbols = Vec::new();
    for i in 0..shnum {
        let sh = section(i)?;
        let sh_type = u32_at(sh + 4)?;
        if sh_type != 2 && sh_type != 11 {
            continue; // not SYMTAB / DYNSYM
        }
        let offset = usize::try_from(u64_at(sh + 0x18)?).ok()?;
        let size = usize::try_from(u64_at(sh + 0x20)?).ok()?;
        let link = usize::try_from(u32_at(sh + 0x28)?).ok()?;
        let entsize = usize::try_from(u64_at(sh + 0x38)?).ok()?;
        if entsize < 24 {
            continue;
        }
        let strtab = section(link)?;
        let str_off = usize::try_from(u64_at(strtab + 0x18)?).ok()?;
        let str_size = usize::try_from(u64_at(strtab + 0x20)?).ok()?;
        let strings = bytes.get(str_off..str_off.checked_add(str_size)?)?;
        for j in 0..size / entsize {
            let sym = offset.checked_add(j.checked_mul(entsize)?)?;
            let name_off = usize::try_from(u32_at(sym)?).ok()?;
            let info = *bytes.get(sym + 4)?;
            let sym_size = u64_at(sym + 16)?;
            if info & 0xf != 2 {
                continue; // not STT_FUNC
            }
            let name_bytes = strings.get(name_off..)?;
            let end = name_bytes.iter().position(|&b| b == 0)?;
            let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
            symbols.push((name, sym_size));
        }
    }
    Some(symbols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf_and_truncated_input() {
        assert!(function_symbols(b"").is_none());
        assert!(function_symbols(b"not an elf file at all").is_none());
        let mut header = vec![0u8; 64];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[0x3A] = 64;
        header[0x3C] = 5; // five sections, none present
        header[0x28] = 64;
        assert!(function_symbols(&header).is_none());
    }

    /// A minimal ELF64: header, a symbol table with one function, its string table.
    fn tiny_elf() -> Vec<u8> {
        let strtab = b"\0my_kernel\0";
        let mut sym = vec![0u8; 48]; // entry 0 is the null symbol
        sym[24..28].copy_from_slice(&1u32.to_le_bytes()); // name offset of "my_kernel"
        sym[24 + 4] = 0x12; // STB_GLOBAL, STT_FUNC
        sym[24 + 16..24 + 24].copy_from_slice(&1234u64.to_le_bytes());
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let sym_off = elf.len();
        elf.extend_from_slice(&sym);
        let str_off = elf.len();
        elf.extend_from_slice(strtab);
        let shoff = elf.len();
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
        let mut section = |kind: u32, off: usize, size: usize, link: u32, entsize: u64| {
            let mut sh = vec![0u8; 64];
            sh[4..8].copy_from_slice(&kind.to_le_bytes());
            sh[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            sh[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            sh[0x28..0x2C].copy_from_slice(&link.to_le_bytes());
            sh[0x38..0x40].copy_from_slice(&entsize.to_le_bytes());
            elf.extend_from_slice(&sh);
        };
        section(0, 0, 0, 0, 0);
        section(2, sym_off, sym.len(), 2, 24);
        section(3, str_off, strtab.len(), 0, 0);
        elf
    }

    #[test]
    fn reads_function_symbols_and_sizes() {
        assert_eq!(
            function_symbols(&tiny_elf()).unwrap(),
            vec![("my_kernel".to_string(), 1234)]
        );
    }

    #[test]
    fn truncations_of_a_valid_file_never_panic() {
        let elf = tiny_elf();
        for cut in 0..elf.len() {
            let _ = function_symbols(&elf[..cut]);
        }
    }
}
