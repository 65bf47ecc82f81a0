//! Where the libbpf-rs versions differ for this harness. The crate is written
//! against what 0.25.x, 0.26.x and 0.27.2 have in common; a version build
//! picks the API with a Cargo feature (`api-0-25`, `api-0-26`, `api-0-27`,
//! checked against the linked libbpf-rs by build.rs). The one piece of code
//! that differs is the uprobe_multi attach, in the bridge
//! (`src/bridge/uprobe.rs`, `#[cfg(feature = "api-0-25")]`:
//! [`crate::bridge::NATIVE_UPROBE_MULTI`]); this module documents the
//! differences.
//!
//! What differs, from the crates' sources (only what this harness touches):
//!
//! | API | 0.25.0 | 0.26.0–0.26.2 | 0.27.2 |
//! |---|---|---|---|
//! | `UprobeMultiOpts`, `ProgramMut::attach_uprobe_multi[_with_opts]` | **absent** (bridge: `libbpf-rs-uprobe-multi-sys`) | present, with `session` | same |
//! | `KprobeMultiOpts.session` | absent | absent | absent (all: `libbpf-rs-kprobe-session`) |
//! | `KprobeOpts.retprobe` | absent | absent | absent (all: `libbpf-rs-kretprobe-cookie`) |
//! | `ProgramAttachType::TraceUprobeSession` | absent | absent | absent |
//! | `Program::name()` / `section()` | `&OsStr` tied to `&self` | `&'obj OsStr` | same |
//! | `ErrorKind` | no `TooBig` | no `TooBig` | `TooBig` (matched with `_` here) |
//! | `Program::get_id_by_fd` | present | removed (`ProgramHandle` in 0.27) | — (ids come from `bpf_prog_get_info_by_fd` here) |
//!
//! Everything else this crate calls (`ObjectBuilder::open_memory`,
//! `OpenProgramMut::set_autoload`, `OpenMapMut::initial_value_mut`/`reuse_fd`,
//! `attach_uprobe_with_opts`, `attach_usdt_with_opts`, `attach_kprobe_with_opts`,
//! `attach_kprobe_multi_with_opts`, `Link::from_ptr`, `AsRawLibbpf`,
//! `RingBufferBuilder`, `MapCore::lookup[_percpu]`, `btf::Btf::from_vmlinux`,
//! `set_print`) has the same signature in all three. libbpf-rs 0.26.2 differs
//! from 0.26.1 only in its iterator link options and its libbpf-sys (1.7).
