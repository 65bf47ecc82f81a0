//! The uncompressed kernel inside a bzImage, for booting through PVH.
//!
//! Under TCG, a bzImage spends 2–3 s of a ~5 s boot in SeaBIOS and its own
//! decompressor (emulated). QEMU boots an ELF vmlinux that has a PVH entry
//! note (`XEN_ELFNOTE_PHYS32_ENTRY`, Debian sets CONFIG_PVH) directly, so the
//! same kernel reaches userspace in ~2 s. The vmlinux is extracted once per
//! vmlinuz (with the system's xz/zstd/gzip/… tools) and cached; when anything
//! is missing, the boot falls back to the bzImage.
//!
//! Layout (Documentation/arch/x86/boot.rst): the setup header is at 0x1f1;
//! `HdrS` at 0x202; the protected-mode code starts at (setup_sects + 1) * 512;
//! `payload_offset` (0x248) and `payload_length` (0x24c), protocol ≥ 2.08,
//! locate the compressed vmlinux within it. The payload's last 4 bytes are the
//! uncompressed size (appended by the kernel build, or gzip's own ISIZE).

use object::read::elf::{FileHeader, ProgramHeader};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit PVH entry point QEMU looks for.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    Lz4,
    Bzip2,
    Lzma,
    Lzo,
}

impl Compression {
    fn detect(b: &[u8]) -> Option<Compression> {
        let is = |m: &[u8]| b.starts_with(m);
        Some(if is(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if is(b"\xfd7zXZ\0") {
            Compression::Xz
        } else if is(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if is(&[0x02, 0x21, 0x4c, 0x18]) {
            Compression::Lz4
        } else if is(b"BZh") {
            Compression::Bzip2
        } else if is(&[0x5d, 0x00, 0x00]) {
            Compression::Lzma
        } else if is(&[0x89, b'L', b'Z', b'O']) {
            Compression::Lzo
        } else {
            return None;
        })
    }

    /// The command that decompresses stdin to stdout.
    fn tool(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Compression::Gzip => ("gzip", &["-dc"]),
            Compression::Xz => ("xz", &["-dc"]),
            Compression::Zstd => ("zstd", &["-dcq"]),
            Compression::Lz4 => ("lz4", &["-dc"]),
            Compression::Bzip2 => ("bzip2", &["-dc"]),
            Compression::Lzma => ("xz", &["--format=lzma", "-dc"]),
            Compression::Lzo => ("lzop", &["-dc"]),
        }
    }
}

/// The compressed payload of a bzImage (without the appended size, except for
/// gzip whose trailer it is), its format, and the uncompressed size.
pub fn payload(bz: &[u8]) -> Result<(&[u8], Compression, u32), String> {
    let u16_at = |o: usize| bz.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| bz.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        return Err("not a bzImage (no HdrS header)".into());
    }
    let version = u16_at(0x206).unwrap_or(0);
    if version < 0x208 {
        return Err(format!("boot protocol {version:#x} has no payload fields (< 2.08)"));
    }
    let setup_sects = match bz[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let pm_start = (setup_sects + 1) * 512;
    let (off, len) = (u32_at(0x248).unwrap_or(0) as usize, u32_at(0x24c).unwrap_or(0) as usize);
    let p = bz.get(pm_start + off..pm_start + off + len).ok_or("payload out of bounds")?;
    if p.len() < 8 {
        return Err("payload too short".into());
    }
    let comp = Compression::detect(p).ok_or_else(|| format!("unknown payload compression (magic {:02x?})", &p[..4]))?;
    let size = u32::from_le_bytes(p[p.len() - 4..].try_into().unwrap());
    let stream = if comp == Compression::Gzip { p } else { &p[..p.len() - 4] };
    Ok((stream, comp, size))
}

/// Whether an ELF kernel has the PVH entry note QEMU needs to boot it.
pub fn has_pvh_note(elf: &[u8]) -> bool {
    let Ok(header) = object::elf::FileHeader64::<object::Endianness>::parse(elf) else { return false };
    let Ok(endian) = header.endian() else { return false };
    let Ok(phdrs) = header.program_headers(endian, elf) else { return false };
    for ph in phdrs {
        let Ok(Some(mut notes)) = ph.notes(endian, elf) else { continue };
        while let Ok(Some(n)) = notes.next() {
            if n.name() == b"Xen" && n.n_type(endian) == XEN_ELFNOTE_PHYS32_ENTRY {
                return true;
            }
        }
    }
    false
}

/// Decompresses the vmlinux of a bzImage and checks it is bootable by PVH.
pub fn extract(bz: &[u8]) -> Result<Vec<u8>, String> {
    let (stream, comp, size) = payload(bz)?;
    let (tool, args) = comp.tool();
    let path = which::which(tool).map_err(|_| format!("{comp:?} payload, but `{tool}` is not installed"))?;
    // Exit status is not trusted either way (some tools warn about the
    // kernel's padding); the size and the ELF note decide.
    let out = duct::cmd(path, args)
        .stdin_bytes(stream)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.stdout.len() != size as usize {
        return Err(format!(
            "{tool} gave {} bytes, the header says {size}: {}",
            out.stdout.len(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !has_pvh_note(&out.stdout) {
        return Err("the vmlinux has no PVH entry note (kernel without CONFIG_PVH)".into());
    }
    Ok(out.stdout)
}

/// The PVH-bootable vmlinux of `vmlinuz`, extracted into the cache on first
/// use. The key is the vmlinuz's path, size and mtime (hashing 10 MB in a
/// debug build on every boot would cost more than it saves).
pub fn pvh_kernel(vmlinuz: &Path) -> Result<PathBuf, String> {
    let meta = std::fs::metadata(vmlinuz).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
    let abs = std::path::absolute(vmlinuz).unwrap_or_else(|_| vmlinuz.to_path_buf());
    let key = Sha256::digest(format!("{}\0{}\0{mtime}", abs.display(), meta.len()).as_bytes());
    let key: String = key.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let dir = crate::cache::dir().join("vmlinux");
    let out = dir.join(format!("{key}.vmlinux"));
    let failed = dir.join(format!("{key}.no-pvh"));
    if out.is_file() {
        return Ok(out);
    }
    if let Ok(why) = std::fs::read_to_string(&failed) {
        return Err(why);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let bz = std::fs::read(vmlinuz).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    // Concurrent boots of one kernel each extract, and the renames are atomic.
    let tmp = dir.join(format!("{key}.{}.{:?}.tmp", std::process::id(), std::thread::current().id()));
    match extract(&bz) {
        Ok(elf) => {
            std::fs::write(&tmp, elf).map_err(|e| format!("{}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &out).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(out)
        }
        Err(why) => {
            // Remembered only when finding out was costly (a decompression)
            // and the answer is about the kernel, not about this host.
            if why.contains("no PVH entry note") {
                let _ = std::fs::write(&tmp, &why).and_then(|_| std::fs::rename(&tmp, &failed));
            }
            Err(why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal bzImage: header fields and a payload, nothing bootable.
    fn fake_bzimage(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 5 * 512];
        b[0x1f1] = 4;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        b[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0u8; 16]);
        b.extend_from_slice(payload);
        b.extend_from_slice(&[0u8; 100]);
        b
    }

    #[test]
    fn finds_the_payload_and_its_size() {
        let mut p = b"\xfd7zXZ\0rest-of-stream".to_vec();
        p.extend_from_slice(&1234u32.to_le_bytes());
        let bz = fake_bzimage(&p);
        let (stream, comp, size) = payload(&bz).unwrap();
        assert_eq!((comp, size), (Compression::Xz, 1234));
        assert_eq!(stream, b"\xfd7zXZ\0rest-of-stream");
        assert!(payload(&[0u8; 4096]).unwrap_err().contains("HdrS"));
    }

    #[test]
    fn a_gzip_payload_round_trips_but_is_no_pvh_kernel() {
        let gzip = which::which("gzip").expect("gzip (Debian's base system has it)");
        let gz = duct::cmd(gzip, ["-c"]).stdin_bytes(&b"not an elf"[..]).stdout_capture().run().unwrap().stdout;
        let err = extract(&fake_bzimage(&gz)).unwrap_err();
        assert!(err.contains("PVH"), "{err}");
    }

}
