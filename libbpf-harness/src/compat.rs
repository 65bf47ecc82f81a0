//! The libbpf side of the compatibility layer as probeconf reports it: the
//! registry ([`registry`]) of every gap between what libbpf-rs (or libbpf)
//! exposes and what the suite needs, with the versions each entry applies to,
//! and the ids a probe that went through a bridge is reported with (`via:
//! compat`). The bridges themselves, what a tool would import, are in
//! [`crate::bridge`]; the loader calls them and names the entry here.

use crate::classify::{Classified, ErrorClass};
use crate::protocol::invalid;
use serde::{Deserialize, Serialize};

/// kprobe.session (and `session: true` on kprobe.multi kinds): every libbpf-rs.
pub const KPROBE_SESSION_BRIDGE: &str = "libbpf-rs-kprobe-session";
/// kretprobe with a cookie: every libbpf-rs.
pub const KRETPROBE_COOKIE_BRIDGE: &str = "libbpf-rs-kretprobe-cookie";
/// uprobe_multi links under libbpf-rs 0.25 (no UprobeMultiOpts).
pub const UPROBE_MULTI_SYS_BRIDGE: &str = "libbpf-rs-uprobe-multi-sys";
/// uprobe session links under libbpf < 1.6 (no bpf_uprobe_multi_opts.session).
pub const UPROBE_SESSION_RAW_BRIDGE: &str = "libbpf-uprobe-session-raw";
/// fentry/fexit/fsession with a cookie: libbpf-rs has attach_trace only.
pub const TRACING_COOKIE_BRIDGE: &str = "libbpf-rs-tracing-cookie";
/// SEC("fsession") under libbpf < 1.7, which does not know the section.
pub const FSESSION_SECTION_BRIDGE: &str = "libbpf-fsession-section";
/// The tracing multi link: no released libbpf has it.
pub const TRACING_MULTI_RAW_BRIDGE: &str = "libbpf-tracing-multi-raw";
/// The build picked from `objects` by kernel BTF.
pub const SESSION_KFUNC_VARIANT: &str = "libbpf-session-kfunc-variant";

/// The registry id of the bridge a uprobe_multi link goes through in this
/// build, `None` when it is libbpf-rs's own API (0.26 on).
pub const UPROBE_MULTI_BRIDGE: Option<&str> = if crate::bridge::NATIVE_UPROBE_MULTI { None } else { Some(UPROBE_MULTI_SYS_BRIDGE) };

/// A link this harness holds: libbpf's, or a raw link fd a bridge created
/// ([`crate::bridge::BridgeLink`]). Dropping it detaches.
pub type LinkHandle = crate::bridge::BridgeLink;

/// `sizeof(struct usdt_spec)` that the linked libbpf's usdt.c writes into
/// `__bpf_usdt_specs`: 12 argument specs and the cookie and count. libbpf 1.7
/// added the SIB argument kind with bitfields that make an argument spec 24
/// bytes instead of 16 (`reg_off` moves from offset 12 to 14, whatever
/// usdt.bpf.h's comment says), so the struct is 304 bytes from 1.7 on and 208
/// before (measured with gcc and clang, x86_64).
pub fn usdt_spec_size() -> u32 {
    if crate::version::linked() >= (1, 7) {
        304
    } else {
        208
    }
}

/// A USDT object must have been built with a usdt.bpf.h whose spec layout the
/// linked libbpf writes: else libbpf's map update copies a struct of another
/// size and the program reads garbage arguments and cookies without any error.
/// Refused instead (attach/invalid); registry `libbpf-usdt-spec-layout`.
pub fn check_usdt_spec_layout(obj: &libbpf_rs::Object) -> Result<(), Classified> {
    use libbpf_rs::MapCore;
    let Some(m) = obj.maps().find(|m| m.name() == "__bpf_usdt_specs") else { return Ok(()) };
    let (have, want) = (m.value_size(), usdt_spec_size());
    if have == want {
        return Ok(());
    }
    let (ma, mi) = crate::version::linked();
    Err(invalid(format!(
        "usdt: the object's struct __bpf_usdt_spec is {have} bytes ({} usdt.bpf.h) but libbpf {ma}.{mi}'s usdt.c writes {want}-byte specs: \
         arguments and cookies would be garbage; build the object with this libbpf's usdt.bpf.h [libbpf-usdt-spec-layout]",
        if have == 304 { "libbpf 1.7's" } else if have == 208 { "libbpf <= 1.6's" } else { "an unknown" }
    )))
}

/// libbpf's pid convention for the protocol's scope: -1 means all processes
/// (0 would mean the calling process, i.e. the harness itself).
pub fn libbpf_pid(filter: Option<u32>) -> i32 {
    match filter {
        Some(pid) => pid as i32,
        None => -1,
    }
}

// ---- the registry ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapStatus {
    /// The library does it; the entry documents a difference a comparison must normalise.
    Native,
    /// Bridged by the compatibility layer.
    Compat,
    /// Not available; reported rather than bridged.
    Missing,
}

/// One registry entry: the JSON shape of `probeconf-harness gaps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub id: String,
    pub library: String,
    pub versions: String,
    pub feature: String,
    pub status: GapStatus,
    pub workaround: String,
}

/// Which builds an entry applies to.
#[derive(Clone, Copy)]
enum Applies {
    Always,
    /// libbpf-rs 0.25.x (api-0-25).
    Api025,
    /// A linked libbpf older than this (major, minor).
    LibbpfBelow(u32, u32),
    /// A linked libbpf of at least this version.
    LibbpfFrom(u32, u32),
}

impl Applies {
    fn here(self) -> bool {
        let linked = crate::version::linked();
        match self {
            Applies::Always => true,
            Applies::Api025 => cfg!(feature = "api-0-25"),
            Applies::LibbpfBelow(ma, mi) => linked < (ma, mi),
            Applies::LibbpfFrom(ma, mi) => linked >= (ma, mi),
        }
    }
}

fn entries() -> Vec<(Applies, Gap)> {
    use GapStatus::*;
    let g = |id: &str, library: &str, versions: &str, feature: &str, status: GapStatus, workaround: &str| Gap {
        id: id.into(),
        library: library.into(),
        versions: versions.into(),
        feature: feature.into(),
        status,
        workaround: workaround.into(),
    };
    vec![
        (
            Applies::Always,
            g(
                KPROBE_SESSION_BRIDGE,
                "libbpf-rs",
                "0.25.x, 0.26.x, 0.27.2 (libbpf >= 1.5)",
                "kprobe.session attach (BPF_TRACE_KPROBE_SESSION = 56, kernel >= 6.10), and session: true on kprobe.multi kinds",
                Compat,
                "KprobeMultiOpts has no `session` flag in any of these versions. The harness calls libbpf's \
                 bpf_program__attach_kprobe_multi_opts through the re-exported libbpf_sys with .session, .retprobe, \
                 symbols and cookies (libbpf-harness/src/bridge/, ProgramBridgeExt::attach_kprobe_multi_with_session_opts).",
            ),
        ),
        (
            Applies::Always,
            g(
                KRETPROBE_COOKIE_BRIDGE,
                "libbpf-rs",
                "0.25.x, 0.26.x, 0.27.2",
                "kretprobe (kind kretprobe, or retprobe: true on kprobe) with a cookie, and a kprobe at an offset",
                Compat,
                "KprobeOpts carries a cookie but no retprobe flag, and attach_kprobe(retprobe) no cookie. The harness \
                 calls bpf_program__attach_kprobe_opts with retprobe, offset and bpf_cookie together (bridge \
                 ProgramBridgeExt::attach_kprobe_full_opts); such probes are reported via compat. A kretprobe without cookie or offset \
                 goes through attach_kprobe(true, …), natively.",
            ),
        ),
        (
            Applies::Api025,
            g(
                UPROBE_MULTI_SYS_BRIDGE,
                "libbpf-rs",
                "0.25.x (libbpf 1.5); 0.26.0 and later have UprobeMultiOpts",
                "uprobe.multi / uretprobe.multi links (BPF_TRACE_UPROBE_MULTI = 48)",
                Compat,
                "libbpf-rs 0.25 has no UprobeMultiOpts and no attach_uprobe_multi. The harness makes the call \
                 libbpf-rs 0.26's attach_uprobe_multi_with_opts makes: bpf_program__attach_uprobe_multi through \
                 libbpf_sys, with syms or offsets, cookies and retprobe (libbpf-harness/src/bridge/, \
                 ProgramBridgeExt::attach_uprobe_multi_bridged).",
            ),
        ),
        (
            Applies::LibbpfBelow(1, 6),
            g(
                UPROBE_SESSION_RAW_BRIDGE,
                "libbpf",
                "1.5 (libbpf-rs 0.25.x); libbpf 1.6 added bpf_uprobe_multi_opts.session",
                "uprobe session links (BPF_TRACE_UPROBE_SESSION = 57, kernel >= 6.13): kind uprobe.session, and \
                 session: true on uprobe.multi kinds",
                Compat,
                "libbpf 1.5 knows neither the section uprobe.session nor a `session` in bpf_uprobe_multi_opts. \
                 At load, a uprobe.session program libbpf left untyped gets program type KPROBE and expected attach \
                 type 57, as libbpf 1.6 types it (bridge OpenProgramBridgeExt::type_uprobe_session_section). At attach the harness does \
                 what libbpf 1.6's bpf_program__attach_uprobe_multi does with .session: refuses retprobe + session with EINVAL, \
                 resolves symbols to file offsets like libbpf's elf_resolve_syms_offsets (.dynsym then .symtab \
                 STT_FUNC, st_value - sh_addr + sh_offset; src/bridge/elf.rs), maps pid 0 to the caller and -1 to every \
                 process, and issues BPF_LINK_CREATE (cmd 28) itself with attach type 57 and the uprobe_multi part of \
                 bpf_attr (path, offsets, cookies, cnt, flags, pid). The link is a plain fd the harness closes.",
            ),
        ),
        (
            Applies::Always,
            g(
                TRACING_COOKIE_BRIDGE,
                "libbpf-rs",
                "0.25.x, 0.26.x, 0.27.2 (libbpf >= 1.0)",
                "fentry / fexit / fsession with a BPF cookie (link_create.tracing.cookie, kernel >= 6.0)",
                Compat,
                "ProgramMut::attach_trace takes no options. A tracing probe with a non-zero cookie goes through \
                 libbpf's bpf_program__attach_trace_opts with .cookie (libbpf-harness/src/bridge/tracing.rs \
                 attach_trace_cookie); without a cookie, attach_trace, natively. The target function is named before \
                 load with OpenProgramMut::set_attach_target (native).",
            ),
        ),
        (
            Applies::LibbpfBelow(1, 7),
            g(
                FSESSION_SECTION_BRIDGE,
                "libbpf",
                "1.5, 1.6 (libbpf 1.7 added SEC(\"fsession+\"))",
                "fsession programs (BPF_TRACE_FSESSION = 58, kernel >= 7.0)",
                Compat,
                "libbpf before 1.7 does not know the section fsession and leaves the program untyped (its load would \
                 fail: missing BPF prog type). The harness types it as 1.7 does, BPF_PROG_TYPE_TRACING with expected \
                 attach type 58, before load (bridge::OpenProgramBridgeExt::type_tracing_section); set_attach_target and attach_trace then work as for \
                 fentry.",
            ),
        ),
        (
            Applies::Always,
            g(
                TRACING_MULTI_RAW_BRIDGE,
                "libbpf",
                "all releases (<= 1.7); libbpf's development tree has bpf_program__attach_tracing_multi",
                "the tracing multi link: fentry.multi / fexit.multi / fsession.multi (attach types 59, 60, 61), one \
                 program on many kernel functions with a cookie per function",
                Compat,
                "No released libbpf knows the sections or the link. Before load the harness types the program \
                 BPF_PROG_TYPE_TRACING with the multi attach type; at attach it resolves every target to its BTF FUNC \
                 id in vmlinux BTF (libbpf-rs Btf::from_vmlinux; a missing function is ENOENT, not-found) and issues \
                 BPF_LINK_CREATE (cmd 28) itself with the tracing_multi part of bpf_attr: ids, cookies, cnt \
                 (bridge/tracing.rs attach_tracing_multi_raw). The link is a plain fd the harness closes.",
            ),
        ),
        (
            Applies::Always,
            g(
                "libbpf-pid-semantics",
                "libbpf",
                "all",
                "pid filter of uprobe / uprobe_multi attachments",
                Native,
                "libbpf: 0 = the calling process, -1 = all processes (cilium: 0 = all). The protocol says \
                 {\"scope\":\"all\"} or {\"scope\":\"pid\",\"pid\":N}; the harness maps all to -1 and never passes 0 \
                 (compat.rs libbpf_pid).",
            ),
        ),
        (
            Applies::Always,
            g(
                "libbpf-session-retprobe",
                "libbpf",
                ">= 1.5 (kprobe sessions), >= 1.6 (uprobe sessions; the 1.5 raw bridge refuses the pair the same way)",
                "session link together with the retprobe flag",
                Native,
                "libbpf refuses retprobe + session with EINVAL before the kernel sees it; the kernel has no such check. \
                 Reported as a documented library difference (case uprobe-session-retprobe-flag).",
            ),
        ),
        (
            Applies::Always,
            g(
                "libbpf-rs-uprobe-session-attach-type",
                "libbpf-rs",
                "0.25.x, 0.26.x, 0.27.2",
                "ProgramAttachType for uprobe.session programs",
                Missing,
                "There is no ProgramAttachType::TraceUprobeSession; attach_type() of such a program is Unknown. The \
                 harness does not need it (the link's attach type comes from libbpf or the raw bridge).",
            ),
        ),
        (
            Applies::Always,
            g(
                SESSION_KFUNC_VARIANT,
                "libbpf + libbpf-rs",
                "all (kernels 6.10-6.19 vs >= 7.0)",
                "a request's objects: {noarg, ctx}, the two builds of the session recorders",
                Compat,
                "The harness reads the running kernel's BTF (libbpf-rs Btf::from_vmlinux, FUNC bpf_session_cookie: \
                 0 parameters = noarg, 1 = ctx) and loads the matching build, the noarg one when the kernel has no \
                 session kfuncs; the attached and error lines say object_variant and object_reason. The same decision \
                 as probeconf's probing::session_kfunc_prototype (bridge::session_kfunc_prototype, src/bridge/kfunc.rs).",
            ),
        ),
        (
            Applies::Always,
            g(
                "libbpf-usdt-spec-layout",
                "libbpf",
                "1.5, 1.6 (208-byte specs) vs >= 1.7 (304-byte specs)",
                "USDT objects built on another libbpf's usdt.bpf.h",
                Missing,
                "libbpf 1.7's struct __bpf_usdt_arg_spec gained bitfields (SIB arguments) that make it 24 bytes instead \
                 of 16 (reg_off moves from offset 12 to 14; usdt.bpf.h's comment says the layout is stable, it is not \
                 on x86_64 with gcc or clang), so struct __bpf_usdt_spec is 304 bytes instead of 208. A libbpf <= 1.6 \
                 attaching an object built with 1.7's usdt.bpf.h (probeconf's usdt_recorder.bpf.o is) writes 208-byte \
                 specs into 304-byte map values: no error, and the program reads garbage arguments and cookies \
                 (measured: cookie 0 or a stack address, no arguments). The harness compares the object's \
                 __bpf_usdt_specs value size with the linked libbpf's and refuses a mismatch (attach/invalid) \
                 rather than report garbage. The fix is an object built per libbpf version.",
            ),
        ),
        (
            Applies::LibbpfBelow(1, 7),
            g(
                "libbpf-usdt-no-nop5-move",
                "libbpf",
                "1.5, 1.6 (libbpf 1.7 moves the probe)",
                "USDT probes on a `nop; nop5` site",
                Native,
                "libbpf 1.7 attaches a `nop; nop5` USDT site at the nop5 when the kernel has the uprobe syscall (so the \
                 kernel can optimise it); 1.5 and 1.6 attach at the nop. Traces name the site either way; func_ip and \
                 the cost differ.",
            ),
        ),
        (
            Applies::LibbpfFrom(1, 7),
            g(
                "libbpf-usdt-nop5-move",
                "libbpf",
                ">= 1.7",
                "USDT probes on a `nop; nop5` site",
                Native,
                "libbpf 1.7 probes the uprobe syscall (336, ENXIO outside the trampoline) and then attaches a `nop; nop5` \
                 site at the nop5, which 6.18+ kernels optimise; a `nop; nop10` site stays on the nop.",
            ),
        ),
    ]
}

/// The entries that apply to this build (`all`: every entry, whatever build).
pub fn registry(all: bool) -> Vec<Gap> {
    entries().into_iter().filter(|(a, _)| all || a.here()).map(|(_, g)| g).collect()
}

/// Class helper for bridges refusing a request.
pub fn unsupported(detail: String) -> Classified {
    Classified { class: ErrorClass::Unsupported, errno: None, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_ids_are_unique_and_this_build_has_its_bridges() {
        let all = registry(true);
        let mut ids: Vec<&str> = all.iter().map(|g| g.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        let here: Vec<String> = registry(false).into_iter().map(|g| g.id).collect();
        assert!(here.contains(&KPROBE_SESSION_BRIDGE.to_string()));
        assert_eq!(here.contains(&UPROBE_MULTI_SYS_BRIDGE.to_string()), !crate::bridge::NATIVE_UPROBE_MULTI);
        assert_eq!(here.contains(&UPROBE_SESSION_RAW_BRIDGE.to_string()), crate::version::linked() < (1, 6));
    }
}
