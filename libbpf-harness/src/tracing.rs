//! The loader's side of the BTF-based tracing kinds: what a protocol probe
//! of kind fentry, fexit, fsession or a tracing multi kind needs before load
//! and at attach, through the bridges of [`crate::bridge`] (which say what is
//! libbpf's own and what is bridged), and which registry id each bridged
//! step reports.

use crate::bridge::{OpenProgramBridgeExt, ProgramBridgeExt, TracingKind};
use crate::classify::{classify_libbpf, Classified};
use crate::compat::{self, LinkHandle};
use crate::protocol::{Kind, Probe};
use libbpf_rs::{OpenProgramMut, ProgramMut};

/// The bridge's kind of a protocol kind, for the tracing family.
pub fn tracing_kind(kind: Kind) -> Option<TracingKind> {
    TracingKind::from_section(kind.as_str())
}

/// The registry id of the bridge that typed a program of this kind.
fn typing_bridge(kind: TracingKind) -> &'static str {
    if kind.is_multi() {
        compat::TRACING_MULTI_RAW_BRIDGE
    } else {
        compat::FSESSION_SECTION_BRIDGE
    }
}

/// Before load: types a program whose section the linked libbpf does not
/// know, and names a single-link program's target. Returns the bridge that
/// typed the section, if one did.
pub fn prepare(prog: &mut OpenProgramMut<'_>, p: &Probe) -> Result<Option<&'static str>, Classified> {
    let Some(kind) = tracing_kind(p.kind()) else { return Ok(None) };
    let typed = prog.type_tracing_section().map(typing_bridge);
    if let Some(b) = typed {
        let (ma, mi) = crate::version::linked();
        eprintln!(
            "program {}: libbpf {ma}.{mi} does not know section {}: typed tracing, expected attach type {} [{b}]",
            prog.name().to_string_lossy(),
            prog.section().to_string_lossy(),
            kind.attach_type()
        );
    }
    if !kind.is_multi() {
        prog.set_tracing_target(&p.targets[0].symbol)?;
    }
    Ok(typed)
}

/// Attaches a prepared tracing program; the bridge's registry id when harness
/// code made the link or typed the program.
pub fn attach(prog: &ProgramMut<'_>, p: &Probe, typed_by: Option<&'static str>) -> Result<(Vec<LinkHandle>, Option<&'static str>), Classified> {
    let kind = tracing_kind(p.kind()).expect("a tracing kind");
    if kind.is_multi() {
        let functions: Vec<&str> = p.targets.iter().map(|t| t.symbol.as_str()).collect();
        let cookies: Vec<u64> = p.targets.iter().map(|t| t.cookie).collect();
        let link = prog.attach_tracing_multi(kind, &functions, &cookies)?;
        return Ok((vec![link], Some(compat::TRACING_MULTI_RAW_BRIDGE)));
    }
    match p.targets[0].cookie {
        0 => Ok((vec![LinkHandle::Libbpf(prog.attach_trace().map_err(|e| classify_libbpf(&e))?)], typed_by)),
        cookie => {
            let link = prog.attach_trace_with_cookie(cookie)?;
            Ok((vec![LinkHandle::Libbpf(link)], Some(typed_by.unwrap_or(compat::TRACING_COOKIE_BRIDGE))))
        }
    }
}

/// A failed load of a tracing program, classified `unsupported` when the
/// running kernel's BTF does not know its attach type (the kernel answers
/// EINVAL either way, which the errno table calls `invalid`): the class the
/// Go harness gives the same failure.
pub fn refine_load_error(kind: Kind, mut c: Classified) -> Classified {
    let Some(k) = tracing_kind(kind) else { return c };
    if c.class != crate::classify::ErrorClass::Unsupported && crate::bridge::kernel_knows(k) == Some(false) {
        c.class = crate::classify::ErrorClass::Unsupported;
        c.detail = format!("{}; the kernel's BTF has no {} in enum bpf_attach_type: it lacks {}", c.detail, k.enumerator(), kind.as_str());
    }
    c
}
