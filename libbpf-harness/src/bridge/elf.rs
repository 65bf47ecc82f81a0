//! Function symbols → file offsets, as libbpf's `elf_resolve_syms_offsets`
//! (libbpf 1.5–1.7 `elf.c`) does for `bpf_program__attach_uprobe_multi`: the
//! `.dynsym` and then the `.symtab` STT_FUNC symbols, offset = `st_value -
//! sh_addr + sh_offset` of the symbol's section; a second non-weak definition
//! at another offset is ambiguous (-ESRCH), a weak one never replaces a
//! non-weak one, and a name never found is -ENOENT. Used by the raw uprobe
//! session bridge (libbpf 1.5 has no session flag, so the bridge creates the
//! link itself and must resolve exactly where libbpf would have).

use super::BridgeError;
use object::elf::{FileHeader64, SHN_UNDEF, SHT_DYNSYM, SHT_SYMTAB, STB_WEAK, STT_FUNC};
use object::read::elf::{FileHeader, Sym};
use object::{Endianness, SectionIndex};

/// libbpf's LIBBPF_ERRNO__FORMAT: what libbpf answers for a file libelf cannot read.
pub const LIBBPF_ERRNO_FORMAT: i32 = 4001;

/// The file offsets of `symbols` in the ELF file at `path`, in order.
pub fn resolve_syms_offsets(path: &str, symbols: &[&str]) -> Result<Vec<u64>, BridgeError> {
    let data = std::fs::read(path).map_err(|e| {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        BridgeError::from_errno(errno, format!("elf: failed to open {path}: {e}"))
    })?;
    let format = |what: String| BridgeError::from_errno(LIBBPF_ERRNO_FORMAT, format!("elf: could not read elf from {path}: {what}"));
    let header = FileHeader64::<Endianness>::parse(&*data).map_err(|e| format(e.to_string()))?;
    let endian = header.endian().map_err(|e| format(e.to_string()))?;
    let sections = header.sections(endian, &*data).map_err(|e| format(e.to_string()))?;
    // (offset, weak) per requested symbol; offset 0 = not found yet.
    let mut found: Vec<(u64, bool)> = vec![(0, false); symbols.len()];
    for sh_type in [SHT_DYNSYM, SHT_SYMTAB] {
        let table = sections.symbols(endian, &*data, sh_type).map_err(|e| format(e.to_string()))?;
        for sym in table.iter() {
            if sym.st_type() != STT_FUNC {
                continue;
            }
            let Ok(name) = table.symbol_name(endian, sym) else { continue };
            let Ok(name) = std::str::from_utf8(name) else { continue };
            let Some(idx) = symbols.iter().position(|s| *s == name) else { continue };
            let shndx = sym.st_shndx(endian);
            let offset = if shndx == SHN_UNDEF {
                0
            } else {
                match sections.section(SectionIndex(shndx as usize)) {
                    Ok(sh) => {
                        use object::read::elf::SectionHeader;
                        sym.st_value(endian).wrapping_sub(sh.sh_addr(endian)).wrapping_add(sh.sh_offset(endian))
                    }
                    Err(_) => continue,
                }
            };
            let weak = sym.st_bind() == STB_WEAK;
            let slot = &mut found[idx];
            if slot.0 > 0 {
                if slot.0 == offset {
                    continue;
                }
                if !slot.1 && !weak {
                    return Err(BridgeError::from_errno(
                        libc::ESRCH,
                        format!("elf: ambiguous match found '{name}@{offset}' in '{path}' previous offset {}", slot.0),
                    ));
                } else if weak {
                    continue;
                }
            }
            *slot = (offset, weak);
        }
    }
    symbols
        .iter()
        .zip(&found)
        .map(|(name, (offset, _))| {
            if *offset == 0 {
                Err(BridgeError::from_errno(libc::ENOENT, format!("elf: can't find symbol '{name}' in '{path}'")))
            } else {
                Ok(*offset)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This very test binary has `main` and libc's imports: a defined
    /// function resolves to a non-zero offset, an import and a made-up name
    /// are ENOENT, a non-ELF file is libbpf's format error.
    #[test]
    fn resolves_like_libbpf() {
        let me = std::env::current_exe().unwrap();
        let me = me.to_str().unwrap();
        let off = resolve_syms_offsets(me, &["main"]).unwrap();
        assert!(off[0] > 0);
        let e = resolve_syms_offsets(me, &["main", "no_such_function_xyz"]).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
        let tmp = std::env::temp_dir().join(format!("pch-elf-test-{}", std::process::id()));
        std::fs::write(&tmp, b"not an ELF file at all, just text").unwrap();
        let e = resolve_syms_offsets(tmp.to_str().unwrap(), &["main"]).unwrap_err();
        let _ = std::fs::remove_file(&tmp);
        assert_eq!(e.errno(), Some(LIBBPF_ERRNO_FORMAT));
        let e = resolve_syms_offsets("/no/such/file", &["main"]).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }
}
