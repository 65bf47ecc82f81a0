//! Addresses to `symbol+offset`, so traces hold no addresses. A target's
//! /proc/PID/maps (read while it waited) maps a virtual address to a file and a
//! file offset; the file's ELF symbol table maps that offset to a function.

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
struct Mapping {
    start: u64,
    end: u64,
    file_offset: u64,
    path: PathBuf,
}

/// Function symbols and USDT sites of one file, by file offset.
#[derive(Clone, Debug, Default)]
struct FileSymbols {
    /// (file offset, size, name), sorted by offset.
    funcs: Vec<(u64, u64, String)>,
    /// (file offset of the probe instruction, "provider:name"), sorted.
    usdt: Vec<(u64, String)>,
}

/// The virtual address → file offset of an ELF address, through its section.
fn file_offset_of(file: &object::File<'_>, addr: u64) -> Option<u64> {
    file.sections().find_map(|s| {
        let (off, size) = s.file_range()?;
        (s.address() <= addr && addr < s.address() + size).then(|| addr - s.address() + off)
    })
}

/// USDT sites from `.note.stapsdt`: each note's pc, corrected by the
/// difference between the actual `.stapsdt.base` address and the one recorded
/// in the note (prelink and similar tools move sections).
fn usdt_sites(file: &object::File<'_>) -> Vec<(u64, String)> {
    let Some(notes) = file.section_by_name(".note.stapsdt") else { return Vec::new() };
    let Ok(data) = notes.data() else { return Vec::new() };
    let base_actual = file.section_by_name(".stapsdt.base").map(|s| s.address());
    let mut out = Vec::new();
    let mut at = 0usize;
    let rd32 = |b: &[u8], o: usize| b.get(o..o + 4).map(|x| u32::from_le_bytes(x.try_into().unwrap()) as usize);
    let align4 = |n: usize| (n + 3) & !3;
    while let (Some(namesz), Some(descsz), Some(ntype)) = (rd32(data, at), rd32(data, at + 4), rd32(data, at + 8)) {
        let name_at = at + 12;
        let desc_at = name_at + align4(namesz);
        let next = desc_at + align4(descsz);
        if next > data.len() {
            break;
        }
        if ntype == 3 && &data[name_at..name_at + namesz.min(8)] == b"stapsdt\0" && descsz >= 24 {
            let desc = &data[desc_at..desc_at + descsz];
            let u64_at = |o: usize| u64::from_le_bytes(desc[o..o + 8].try_into().unwrap());
            let (mut pc, base) = (u64_at(0), u64_at(8));
            if let (Some(actual), true) = (base_actual, base != 0) {
                pc = pc.wrapping_add(actual).wrapping_sub(base);
            }
            let mut strings = desc[24..].split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
            let provider = strings.next().unwrap_or_default();
            let name = strings.next().unwrap_or_default();
            if let Some(off) = file_offset_of(file, pc) {
                out.push((off, format!("{provider}:{name}")));
            }
        }
        at = next;
    }
    out.sort();
    out
}

impl FileSymbols {
    fn load(path: &Path) -> FileSymbols {
        let Ok(data) = std::fs::read(path) else { return FileSymbols::default() };
        let Ok(file) = object::File::parse(&*data) else { return FileSymbols::default() };
        let mut funcs = Vec::new();
        for sym in file.symbols().chain(file.dynamic_symbols()) {
            if sym.kind() != SymbolKind::Text || sym.address() == 0 {
                continue;
            }
            let Some(idx) = sym.section_index() else { continue };
            let Ok(section) = file.section_by_index(idx) else { continue };
            let Some((sec_off, _)) = section.file_range() else { continue };
            let off = sym.address() - section.address() + sec_off;
            if let Ok(name) = sym.name() {
                funcs.push((off, sym.size(), name.to_string()));
            }
        }
        funcs.sort();
        funcs.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
        let usdt = usdt_sites(&file);
        FileSymbols { funcs, usdt }
    }

    /// The USDT site at or just before `off` (within 16 bytes: a loader may
    /// move the probe past a leading nop), as `provider:name[+0xN]`.
    fn lookup_usdt(&self, off: u64) -> Option<String> {
        let i = self.usdt.partition_point(|(o, _)| *o <= off);
        let (site, name) = self.usdt.get(i.checked_sub(1)?)?;
        let delta = off - site;
        (delta < 16).then(|| if delta == 0 { name.clone() } else { format!("{name}+{delta:#x}") })
    }

    fn lookup(&self, off: u64) -> Option<(&str, u64)> {
        let i = self.funcs.partition_point(|(o, _, _)| *o <= off);
        let (start, size, name) = self.funcs.get(i.checked_sub(1)?)?;
        let delta = off - start;
        (delta < (*size).max(1)).then_some((name.as_str(), delta))
    }
}

/// Resolves addresses of the processes of one run.
#[derive(Default)]
pub struct Symbolizer {
    /// Per process (tgid) its mappings; forked children share their parent's.
    maps: Vec<(u32, Vec<Mapping>)>,
    files: HashMap<PathBuf, FileSymbols>,
}

fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let range = f.next()?;
            let _perms = f.next()?;
            let off = u64::from_str_radix(f.next()?, 16).ok()?;
            let _dev = f.next()?;
            let _inode = f.next()?;
            let path = f.next()?;
            if !path.starts_with('/') {
                return None;
            }
            let (s, e) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                file_offset: off,
                path: PathBuf::from(path),
            })
        })
        .collect()
}

impl Symbolizer {
    /// Adds a process's maps. Only files under `only_under` are symbolised
    /// (the run directory), so libc addresses never leak into traces.
    pub fn add_process(&mut self, tgid: u32, maps: &str, only_under: &Path) {
        let mappings: Vec<Mapping> = parse_maps(maps).into_iter().filter(|m| m.path.starts_with(only_under)).collect();
        for m in &mappings {
            self.files.entry(m.path.clone()).or_insert_with(|| FileSymbols::load(&m.path));
        }
        self.maps.push((tgid, mappings));
    }

    /// A USDT probe address as `provider:name[+0xN]`, else as [`Self::describe`].
    pub fn describe_usdt(&self, tgid: u32, addr: u64) -> String {
        let own = self.maps.iter().filter(|(t, _)| *t == tgid);
        let others = self.maps.iter().filter(|(t, _)| *t != tgid);
        for (_, maps) in own.chain(others) {
            if let Some(m) = maps.iter().find(|m| m.start <= addr && addr < m.end) {
                let off = addr - m.start + m.file_offset;
                if let Some(site) = self.files.get(&m.path).and_then(|f| f.lookup_usdt(off)) {
                    return site;
                }
            }
        }
        self.describe(tgid, addr)
    }

    /// `pc_leaf`, `pc_leaf+0x1`, `libprobetarget.so+0x1234`, or `0xADDR`.
    pub fn describe(&self, tgid: u32, addr: u64) -> String {
        let own = self.maps.iter().filter(|(t, _)| *t == tgid);
        let others = self.maps.iter().filter(|(t, _)| *t != tgid);
        for (_, maps) in own.chain(others) {
            if let Some(m) = maps.iter().find(|m| m.start <= addr && addr < m.end) {
                let off = addr - m.start + m.file_offset;
                if let Some((name, delta)) = self.files.get(&m.path).and_then(|f| f.lookup(off)) {
                    return if delta == 0 { name.to_string() } else { format!("{name}+{delta:#x}") };
                }
                let file = m.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                return format!("{file}+{off:#x}");
            }
        }
        if addr == 0 {
            "0".into()
        } else {
            "?".into()
        }
    }
}

/// Kernel addresses via /proc/kallsyms (root sees real addresses).
#[derive(Default)]
pub struct KernelSymbols {
    syms: Vec<(u64, String)>,
}

impl KernelSymbols {
    /// Loaded once per process: /proc/kallsyms has ~200k lines, which costs
    /// seconds per read under QEMU TCG; kernel text does not move in a run.
    pub fn shared() -> &'static KernelSymbols {
        static CELL: std::sync::OnceLock<KernelSymbols> = std::sync::OnceLock::new();
        CELL.get_or_init(KernelSymbols::load)
    }

    pub fn load() -> KernelSymbols {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let a = u64::from_str_radix(f.next()?, 16).ok()?;
                let t = f.next()?;
                let n = f.next()?;
                (a != 0 && matches!(t, "t" | "T")).then(|| (a, n.to_string()))
            })
            .collect();
        syms.sort();
        KernelSymbols { syms }
    }

    pub fn describe(&self, addr: u64) -> String {
        let i = self.syms.partition_point(|(a, _)| *a <= addr);
        match i.checked_sub(1).and_then(|i| self.syms.get(i)) {
            Some((a, n)) if addr - a < 0x10000 => {
                if addr == *a {
                    n.clone()
                } else {
                    format!("{n}+{:#x}", addr - a)
                }
            }
            _ if addr == 0 => "0".into(),
            _ => "?".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let m = parse_maps(
            "55d0c0000000-55d0c0001000 r--p 00000000 fd:01 123 /tmp/x/probe-target\n\
             55d0c0001000-55d0c0002000 r-xp 00001000 fd:01 123 /tmp/x/probe-target\n\
             7ffd0000-7ffd1000 rw-p 00000000 00:00 0 [stack]\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].file_offset, 0x1000);
    }

    #[test]
    fn resolves_this_test_binary() {
        // A function of this process, through its own maps, must come back by name.
        let exe = std::env::current_exe().unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut s = Symbolizer::default();
        s.add_process(std::process::id(), &maps, exe.parent().unwrap());
        let addr = crate::probing::probeconf_probe_fn as *const () as usize as u64;
        assert_eq!(s.describe(std::process::id(), addr), "probeconf_probe_fn");
        assert_eq!(s.describe(std::process::id(), addr + 1), "probeconf_probe_fn+0x1");
    }
}
