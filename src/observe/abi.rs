//! The event ABI (bpf/probeconf_abi.h) on the Rust side: the one decoder of
//! `struct pc_event` and the one encoder of `struct pc_config` and of the
//! per-target table `struct pc_targets`. Both loaders hand
//! raw ring-buffer records to [`RawEvent::decode`]; the Go harness forwards bytes.
//!
//! Offsets are written out by hand and checked against the BTF of the compiled
//! object in tests (`layout_matches_object_btf`), so the C header stays the ABI.

use thiserror::Error;

/// Constants generated from the `#define PC_*` lines of the C header.
pub mod consts {
    include!(concat!(env!("OUT_DIR"), "/abi_consts.rs"));
}

/// `sizeof(struct pc_event)`.
pub const EVENT_SIZE: usize = 144;
/// `sizeof(struct pc_config)`.
pub const CONFIG_SIZE: usize = 32;
/// The data section that holds `struct pc_config` at offset 0.
pub const CONFIG_SECTION: &str = ".rodata.pc_cfg";

/// Field name → (offset, size) of `struct pc_event`, in declaration order.
pub const EVENT_FIELDS: &[(&str, usize, usize)] = &[
    ("seq", 0, 8),
    ("ktime_ns", 8, 8),
    ("abi_version", 16, 4),
    ("probe_index", 20, 4),
    ("tgid", 24, 4),
    ("tid", 28, 4),
    ("cpu", 32, 4),
    ("kind", 36, 2),
    ("phase", 38, 1),
    ("is_return", 39, 1),
    ("flags", 40, 4),
    ("_pad0", 44, 4),
    ("attach_cookie", 48, 8),
    ("func_ip", 56, 8),
    ("arg0", 64, 8),
    ("arg1", 72, 8),
    ("ret", 80, 8),
    ("cookie_in", 88, 8),
    ("cookie_out", 96, 8),
    ("arg2", 104, 8),
    ("arg3", 112, 8),
    ("arg4", 120, 8),
    ("arg5", 128, 8),
    ("arg_cnt", 136, 4),
    ("_pad1", 140, 4),
];

/// `sizeof(struct pc_targets)`: the per-target behaviour table.
pub const TARGETS_SIZE: usize = 8 + TARGETS_MAX * TARGET_ENTRY_SIZE;
/// Entries of the table (`PC_TARGETS_MAX`).
pub const TARGETS_MAX: usize = consts::TARGETS_MAX as usize;
/// `sizeof(struct pc_target_cfg)`.
pub const TARGET_ENTRY_SIZE: usize = 40;
/// The data section that holds `struct pc_targets` at offset 0. Sent to a
/// loader only for probes with per-target behaviour; left zero (mode off)
/// otherwise.
pub const TARGETS_SECTION: &str = ".rodata.pc_targets";

/// Field name → (offset, size) of `struct pc_targets`.
pub const TARGETS_FIELDS: &[(&str, usize, usize)] = &[("mode", 0, 4), ("n_entries", 4, 4), ("entry", 8, TARGETS_MAX * TARGET_ENTRY_SIZE)];

/// Field name → (offset, size) of `struct pc_target_cfg`, one table entry.
pub const TARGET_ENTRY_FIELDS: &[(&str, usize, usize)] = &[
    ("return_filter", 0, 4),
    ("cookie_mode", 4, 4),
    ("filter_arg", 8, 8),
    ("cookie_value", 16, 8),
    ("tag", 24, 8),
    ("flags", 32, 4),
    ("_pad", 36, 4),
];

/// Field name → (offset, size) of `struct pc_config`.
pub const CONFIG_FIELDS: &[(&str, usize, usize)] = &[
    ("probe_index", 0, 4),
    ("filter_tgid", 4, 4),
    ("return_filter", 8, 4),
    ("cookie_mode", 12, 4),
    ("filter_arg", 16, 8),
    ("cookie_value", 24, 8),
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event record is {0} bytes, the ABI says {EVENT_SIZE}: loader and object disagree on struct pc_event")]
    Size(usize),
    #[error("event has ABI version {0}, this build understands {1}: rebuild the BPF object")]
    Version(u32, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Entry,
    Return,
}

/// One decoded `struct pc_event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub seq: u64,
    pub ktime_ns: u64,
    pub probe_index: u32,
    pub tgid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub kind: u16,
    pub phase: Phase,
    /// `bpf_session_is_return()`, or `None` for non-session recorders.
    pub is_return: Option<bool>,
    pub flags: u32,
    pub attach_cookie: u64,
    pub func_ip: u64,
    pub arg0: u64,
    pub arg1: u64,
    pub ret: u64,
    pub cookie_in: u64,
    pub cookie_out: u64,
    /// USDT arguments 2..5 (v2).
    pub args_hi: [u64; 4],
    /// USDT argument count, `None` for other kinds (v2).
    pub arg_cnt: Option<u32>,
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

impl RawEvent {
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != EVENT_SIZE {
            return Err(DecodeError::Size(b.len()));
        }
        let version = u32_at(b, 16);
        if u64::from(version) != consts::ABI_VERSION {
            return Err(DecodeError::Version(version, consts::ABI_VERSION as u32));
        }
        let is_return = b[39] as i8;
        Ok(RawEvent {
            seq: u64_at(b, 0),
            ktime_ns: u64_at(b, 8),
            probe_index: u32_at(b, 20),
            tgid: u32_at(b, 24),
            tid: u32_at(b, 28),
            cpu: u32_at(b, 32),
            kind: u16::from_le_bytes([b[36], b[37]]),
            phase: if u64::from(b[38]) == consts::PHASE_RETURN { Phase::Return } else { Phase::Entry },
            is_return: if is_return < 0 { None } else { Some(is_return != 0) },
            flags: u32_at(b, 40),
            attach_cookie: u64_at(b, 48),
            func_ip: u64_at(b, 56),
            arg0: u64_at(b, 64),
            arg1: u64_at(b, 72),
            ret: u64_at(b, 80),
            cookie_in: u64_at(b, 88),
            cookie_out: u64_at(b, 96),
            args_hi: [u64_at(b, 104), u64_at(b, 112), u64_at(b, 120), u64_at(b, 128)],
            arg_cnt: u32::try_from(u32_at(b, 136) as i32).ok(),
        })
    }

    /// Encodes back to the wire layout. Used by tests and fake event streams.
    pub fn encode(&self) -> [u8; EVENT_SIZE] {
        let mut b = [0u8; EVENT_SIZE];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.ktime_ns.to_le_bytes());
        b[16..20].copy_from_slice(&(consts::ABI_VERSION as u32).to_le_bytes());
        b[20..24].copy_from_slice(&self.probe_index.to_le_bytes());
        b[24..28].copy_from_slice(&self.tgid.to_le_bytes());
        b[28..32].copy_from_slice(&self.tid.to_le_bytes());
        b[32..36].copy_from_slice(&self.cpu.to_le_bytes());
        b[36..38].copy_from_slice(&self.kind.to_le_bytes());
        b[38] = match self.phase {
            Phase::Entry => consts::PHASE_ENTRY as u8,
            Phase::Return => consts::PHASE_RETURN as u8,
        };
        b[39] = match self.is_return {
            None => -1i8 as u8,
            Some(r) => r as u8,
        };
        b[40..44].copy_from_slice(&self.flags.to_le_bytes());
        b[48..56].copy_from_slice(&self.attach_cookie.to_le_bytes());
        b[56..64].copy_from_slice(&self.func_ip.to_le_bytes());
        b[64..72].copy_from_slice(&self.arg0.to_le_bytes());
        b[72..80].copy_from_slice(&self.arg1.to_le_bytes());
        b[80..88].copy_from_slice(&self.ret.to_le_bytes());
        b[88..96].copy_from_slice(&self.cookie_in.to_le_bytes());
        b[96..104].copy_from_slice(&self.cookie_out.to_le_bytes());
        for (i, a) in self.args_hi.iter().enumerate() {
            b[104 + 8 * i..112 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        b[136..140].copy_from_slice(&self.arg_cnt.map(|n| n as i32).unwrap_or(-1).to_le_bytes());
        b
    }

    pub fn has(&self, flag: u64) -> bool {
        u64::from(self.flags) & flag != 0
    }
}

/// `struct pc_config`: the behaviour of one recorder instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecorderConfig {
    pub probe_index: u32,
    pub filter_tgid: u32,
    pub return_filter: u32,
    pub cookie_mode: u32,
    pub filter_arg: u64,
    pub cookie_value: u64,
}

impl RecorderConfig {
    pub fn encode(&self) -> [u8; CONFIG_SIZE] {
        let mut b = [0u8; CONFIG_SIZE];
        b[0..4].copy_from_slice(&self.probe_index.to_le_bytes());
        b[4..8].copy_from_slice(&self.filter_tgid.to_le_bytes());
        b[8..12].copy_from_slice(&self.return_filter.to_le_bytes());
        b[12..16].copy_from_slice(&self.cookie_mode.to_le_bytes());
        b[16..24].copy_from_slice(&self.filter_arg.to_le_bytes());
        b[24..32].copy_from_slice(&self.cookie_value.to_le_bytes());
        b
    }
}

/// One entry of the per-target table (`struct pc_target_cfg`): what a hit
/// whose attach cookie is this entry's index does.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TargetBehaviour {
    pub return_filter: u32,
    pub cookie_mode: u32,
    pub filter_arg: u64,
    pub cookie_value: u64,
    /// Copied into a plain recorder's events (`tag=` in the trace).
    pub tag: Option<u64>,
}

/// `struct pc_targets`: per-target behaviour indexed by the attach cookie
/// (the tetragon pattern). `entries.len()` is `n_entries`, at most
/// [`TARGETS_MAX`] (the case validation refuses more).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TargetTable {
    pub entries: Vec<TargetBehaviour>,
}

impl TargetTable {
    pub fn encode(&self) -> [u8; TARGETS_SIZE] {
        assert!(self.entries.len() <= TARGETS_MAX, "{} per-target entries, the table has {TARGETS_MAX}", self.entries.len());
        let mut b = [0u8; TARGETS_SIZE];
        b[0..4].copy_from_slice(&(consts::TM_BY_COOKIE as u32).to_le_bytes());
        b[4..8].copy_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (i, t) in self.entries.iter().enumerate() {
            let e = &mut b[8 + i * TARGET_ENTRY_SIZE..8 + (i + 1) * TARGET_ENTRY_SIZE];
            e[0..4].copy_from_slice(&t.return_filter.to_le_bytes());
            e[4..8].copy_from_slice(&t.cookie_mode.to_le_bytes());
            e[8..16].copy_from_slice(&t.filter_arg.to_le_bytes());
            e[16..24].copy_from_slice(&t.cookie_value.to_le_bytes());
            e[24..32].copy_from_slice(&t.tag.unwrap_or(0).to_le_bytes());
            let flags = if t.tag.is_some() { consts::TB_TAG as u32 } else { 0 };
            e[32..36].copy_from_slice(&flags.to_le_bytes());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libbpf_rs::btf::types::Struct;
    use libbpf_rs::btf::{Btf, HasSize};

    fn struct_layout(object: &[u8], name: &str) -> (usize, Vec<(String, usize)>) {
        let btf = Btf::from_raw("recorders", object).expect("parse BTF").expect("object has BTF");
        let s: Struct = btf.type_by_name(name).unwrap_or_else(|| panic!("{name} not in object BTF"));
        let fields = s
            .iter()
            .map(|m| {
                let off = match m.attr {
                    libbpf_rs::btf::types::MemberAttr::Normal { offset } => offset,
                    libbpf_rs::btf::types::MemberAttr::BitField { offset, .. } => offset,
                };
                (m.name.unwrap().to_string_lossy().into_owned(), off as usize / 8)
            })
            .collect();
        (s.size(), fields)
    }

    #[test]
    fn layout_matches_object_btf() {
        for obj in [crate::run::artifacts::RECORDERS, crate::run::artifacts::SESSIONS, crate::run::artifacts::SESSIONS_CTX, crate::run::artifacts::USDT_RECORDER] {
            let (size, fields) = struct_layout(obj, "pc_event");
            assert_eq!(size, EVENT_SIZE, "sizeof(struct pc_event)");
            let ours: Vec<(String, usize)> = EVENT_FIELDS.iter().map(|(n, o, _)| (n.to_string(), *o)).collect();
            assert_eq!(fields, ours, "struct pc_event offsets: BTF of the object vs src/observe/abi.rs");
            let (size, fields) = struct_layout(obj, "pc_config");
            assert_eq!(size, CONFIG_SIZE, "sizeof(struct pc_config)");
            let ours: Vec<(String, usize)> = CONFIG_FIELDS.iter().map(|(n, o, _)| (n.to_string(), *o)).collect();
            assert_eq!(fields, ours, "struct pc_config offsets");
            let (size, fields) = struct_layout(obj, "pc_targets");
            assert_eq!(size, TARGETS_SIZE, "sizeof(struct pc_targets)");
            let ours: Vec<(String, usize)> = TARGETS_FIELDS.iter().map(|(n, o, _)| (n.to_string(), *o)).collect();
            assert_eq!(fields, ours, "struct pc_targets offsets");
            let (size, fields) = struct_layout(obj, "pc_target_cfg");
            assert_eq!(size, TARGET_ENTRY_SIZE, "sizeof(struct pc_target_cfg)");
            let ours: Vec<(String, usize)> = TARGET_ENTRY_FIELDS.iter().map(|(n, o, _)| (n.to_string(), *o)).collect();
            assert_eq!(fields, ours, "struct pc_target_cfg offsets");
        }
    }

    #[test]
    fn field_table_is_dense() {
        for (fields, size) in [(EVENT_FIELDS, EVENT_SIZE), (CONFIG_FIELDS, CONFIG_SIZE), (TARGETS_FIELDS, TARGETS_SIZE), (TARGET_ENTRY_FIELDS, TARGET_ENTRY_SIZE)] {
            let mut end = 0;
            for (name, off, size) in fields {
                assert_eq!(*off, end, "gap before {name}");
                end = off + size;
            }
            assert_eq!(end, size);
        }
    }

    #[test]
    fn target_table_encoding_follows_field_tables() {
        let t = TargetTable {
            entries: vec![
                TargetBehaviour { return_filter: 1, cookie_mode: 2, filter_arg: 3, cookie_value: 4, tag: None },
                TargetBehaviour { return_filter: 5, cookie_mode: 6, filter_arg: 7, cookie_value: 8, tag: Some(9) },
            ],
        };
        let b = t.encode();
        assert_eq!(b.len(), TARGETS_SIZE);
        let field = |bytes: &[u8], table: &[(&str, usize, usize)], name: &str| {
            let (_, off, size) = table.iter().find(|(n, _, _)| *n == name).unwrap();
            let mut v = [0u8; 8];
            v[..*size].copy_from_slice(&bytes[*off..off + size]);
            u64::from_le_bytes(v)
        };
        assert_eq!(field(&b, TARGETS_FIELDS, "mode"), consts::TM_BY_COOKIE);
        assert_eq!(field(&b, TARGETS_FIELDS, "n_entries"), 2);
        let entry = |i: usize| &b[8 + i * TARGET_ENTRY_SIZE..8 + (i + 1) * TARGET_ENTRY_SIZE];
        let names = ["return_filter", "cookie_mode", "filter_arg", "cookie_value"];
        for (i, n) in names.iter().enumerate() {
            assert_eq!(field(entry(0), TARGET_ENTRY_FIELDS, n), i as u64 + 1);
            assert_eq!(field(entry(1), TARGET_ENTRY_FIELDS, n), i as u64 + 5);
        }
        assert_eq!((field(entry(0), TARGET_ENTRY_FIELDS, "tag"), field(entry(0), TARGET_ENTRY_FIELDS, "flags")), (0, 0));
        assert_eq!((field(entry(1), TARGET_ENTRY_FIELDS, "tag"), field(entry(1), TARGET_ENTRY_FIELDS, "flags")), (9, consts::TB_TAG));
        // Unused entries stay zero; the empty table still says "by cookie".
        assert!(b[8 + 2 * TARGET_ENTRY_SIZE..].iter().all(|&x| x == 0));
        let empty = TargetTable::default().encode();
        assert_eq!((field(&empty, TARGETS_FIELDS, "mode"), field(&empty, TARGETS_FIELDS, "n_entries")), (consts::TM_BY_COOKIE, 0));
        // The pc_config knobs and an entry's first 24 bytes share their order.
        let probe: Vec<&str> = CONFIG_FIELDS[2..].iter().map(|f| f.0).collect();
        let entry_head: Vec<&str> = TARGET_ENTRY_FIELDS[..4].iter().map(|f| f.0).collect();
        assert_eq!(probe, entry_head);
    }

    #[test]
    fn decode_roundtrip_and_errors() {
        let e = RawEvent {
            seq: 7,
            ktime_ns: 9,
            probe_index: 2,
            tgid: 100,
            tid: 101,
            cpu: 1,
            kind: consts::KIND_UPROBE_SESSION as u16,
            phase: Phase::Return,
            is_return: Some(true),
            flags: (consts::F_SESSION | consts::F_HAS_RET) as u32,
            attach_cookie: 0x11,
            func_ip: 0x5555_0000_1000,
            arg0: 1,
            arg1: 2,
            ret: u64::MAX,
            cookie_in: 0x1001,
            cookie_out: 0,
            args_hi: [3, 4, 5, u64::MAX],
            arg_cnt: Some(6),
        };
        assert_eq!(RawEvent::decode(&e.encode()).unwrap(), e);
        assert_eq!(RawEvent::decode(&[0; 8]), Err(DecodeError::Size(8)));
        let mut b = e.encode();
        b[16] = 99;
        assert!(matches!(RawEvent::decode(&b), Err(DecodeError::Version(99, _))));
    }

    #[test]
    fn config_encoding_follows_field_table() {
        let c = RecorderConfig {
            probe_index: 1,
            filter_tgid: 2,
            return_filter: 3,
            cookie_mode: 4,
            filter_arg: 5,
            cookie_value: 6,
        };
        let b = c.encode();
        for (i, (_, off, size)) in CONFIG_FIELDS.iter().enumerate() {
            let mut v = [0u8; 8];
            v[..*size].copy_from_slice(&b[*off..off + size]);
            assert_eq!(u64::from_le_bytes(v), i as u64 + 1);
        }
    }
}
