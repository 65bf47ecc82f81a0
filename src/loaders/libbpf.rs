//! The libbpf loader, through libbpf-rs 0.27.2 (vendored libbpf 1.7).

use super::{AttachRequest, Attached, Drained, FailPhase, LibraryInfo, Loader, LoaderError, Via, ViaKind};
use crate::observe::abi::CONFIG_SECTION;
use crate::case::{LoaderId, ProbeKind};
use crate::judge::classify::{classify_libbpf, Classified, ErrorClass};
use crate::loaders::libbpf_compat::{self, libbpf_pid, KPROBE_SESSION_BRIDGE};
use crate::plan::{Pids, ProbePlan};
use libbpf_rs::{Link, MapCore, MapFlags, Object, ObjectBuilder, ProgramMut, RingBufferBuilder, UprobeMultiOpts, UprobeOpts};
use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

/// Maps shared by every instance of a case (names in bpf/recorders.bpf.c).
const SHARED_MAPS: [&str; 3] = ["events", "seq_by_cpu", "dropped"];

pub struct LibbpfLoader;

/// "1.7" from the linked libbpf.
pub fn libbpf_version() -> String {
    // SAFETY: plain getters without arguments.
    let (major, minor) = unsafe { (libbpf_rs::libbpf_sys::libbpf_major_version(), libbpf_rs::libbpf_sys::libbpf_minor_version()) };
    format!("{major}.{minor}")
}

impl Loader for LibbpfLoader {
    fn id(&self) -> LoaderId {
        LoaderId::Libbpf
    }

    fn library(&self) -> LibraryInfo {
        LibraryInfo { loader: LoaderId::Libbpf, library: "libbpf-rs 0.27.2".into(), version: format!("libbpf {}", libbpf_version()) }
    }

    fn respawn(&self) -> Option<crate::run::attempts::LoaderSpec> {
        Some(crate::run::attempts::LoaderSpec::Libbpf)
    }

    fn attach(&self, req: &AttachRequest<'_>) -> Result<Box<dyn Attached>, LoaderError> {
        // The exact files the plan names, which the harness loads too.
        let mut objects: std::collections::HashMap<&std::path::Path, Vec<u8>> = std::collections::HashMap::new();
        let mut run = LibbpfAttached { links: Vec::new(), objects: Vec::new(), vias: Vec::new() };
        let mut shared: Option<Vec<(String, OwnedFd)>> = None;
        for probe in &req.plan.probes {
            crate::loaders::libbpf_log::clear();
            let load_err = |c: Classified| LoaderError { phase: FailPhase::Load, probe: Some(probe.name.clone()), error: with_log(c) };
            if !objects.contains_key(probe.object.as_path()) {
                let bytes = std::fs::read(&probe.object).map_err(|e| {
                    load_err(Classified {
                        class: crate::judge::classify::classify_errno(e.raw_os_error().unwrap_or(0)),
                        errno: e.raw_os_error(),
                        detail: format!("reading {}: {e}", probe.object.display()),
                    })
                })?;
                objects.insert(probe.object.as_path(), bytes);
            }
            let obj = load_instance(&objects[probe.object.as_path()], probe, &req.pids, shared.as_deref()).map_err(load_err)?;
            if shared.is_none() {
                let mut fds = Vec::new();
                for m in obj.maps() {
                    let name = m.name().to_string_lossy().into_owned();
                    if SHARED_MAPS.contains(&name.as_str()) {
                        let fd = m.as_fd().try_clone_to_owned().map_err(|e| {
                            load_err(Classified { class: ErrorClass::Other, errno: e.raw_os_error(), detail: format!("dup {name}: {e}") })
                        })?;
                        fds.push((name, fd));
                    }
                }
                shared = Some(fds);
            }
            let prog = obj.progs_mut().find(|p| p.name() == probe.program).expect("kept program is loaded");
            let (links, via) = attach_probe(&prog, probe, &req.pids)
                .map_err(|c| LoaderError { phase: FailPhase::Attach, probe: Some(probe.name.clone()), error: with_log(c) })?;
            run.links.extend(links);
            run.vias.push(via);
            run.objects.push(obj);
        }
        Ok(Box::new(run))
    }
}

/// Appends libbpf's own log lines for the failed operation to the detail.
fn with_log(mut c: Classified) -> Classified {
    let log = crate::loaders::libbpf_log::take(6);
    if !log.is_empty() {
        c.detail = format!("{} [libbpf: {log}]", c.detail);
    }
    c
}

fn load_instance(bytes: &[u8], probe: &ProbePlan, pids: &Pids, shared: Option<&[(String, OwnedFd)]>) -> Result<Object, Classified> {
    let mut builder = ObjectBuilder::default();
    let mut open = builder.open_memory(bytes).map_err(|e| classify_libbpf(&e))?;
    let mut found = false;
    for mut p in open.progs_mut() {
        let keep = p.name() == probe.program;
        found |= keep;
        p.set_autoload(keep);
    }
    if !found {
        return Err(Classified {
            class: ErrorClass::Invalid,
            errno: None,
            detail: format!("object has no program `{}`", probe.program),
        });
    }
    let config = probe.config(pids).encode();
    for mut m in open.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        if name.ends_with(CONFIG_SECTION) {
            let v = m.initial_value_mut().expect(".rodata.pc_cfg has an initial value");
            v.copy_from_slice(&config);
        } else if let Some((_, fd)) = shared.and_then(|s| s.iter().find(|(n, _)| *n == name)) {
            m.reuse_fd(fd.as_fd()).map_err(|e| classify_libbpf(&e))?;
        }
    }
    open.load().map_err(|e| classify_libbpf(&e))
}

fn attach_probe(prog: &ProgramMut<'_>, p: &ProbePlan, pids: &Pids) -> Result<(Vec<Link>, Via), Classified> {
    let pid = libbpf_pid(p.pid_filter(pids));
    let prog_id = crate::probing::prog_stats::prog_id(std::os::fd::AsFd::as_fd(prog));
    let native = Via { probe: p.name.clone(), via: ViaKind::Native, bridge: None, prog_id };
    let libbpf = |e: libbpf_rs::Error| classify_libbpf(&e);
    let symbols = || p.targets.iter().map(|t| t.symbol.clone().unwrap_or_default()).collect::<Vec<_>>();
    let cookies = || p.targets.iter().map(|t| t.cookie).collect::<Vec<_>>();
    match p.kind {
        ProbeKind::Usdt => {
            let binary = p.binary.as_ref().expect("usdt probes have a binary");
            let links = p
                .targets
                .iter()
                .map(|t| {
                    let spec = t.symbol.as_deref().expect("validated: provider:name");
                    let (provider, name) = spec.split_once(':').expect("validated: provider:name");
                    let opts = libbpf_rs::UsdtOpts { cookie: t.cookie, ..Default::default() };
                    prog.attach_usdt_with_opts(pid, binary, provider, name, opts).map_err(libbpf)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((links, native))
        }
        ProbeKind::Uprobe | ProbeKind::Uretprobe => {
            let binary = p.binary.as_ref().expect("uprobes have a binary");
            let links = p
                .targets
                .iter()
                .map(|t| {
                    let opts = UprobeOpts { func_name: t.symbol.clone(), cookie: t.cookie, retprobe: p.retprobe, ..Default::default() };
                    prog.attach_uprobe_with_opts(pid, binary, t.offset as usize, opts).map_err(libbpf)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((links, native))
        }
        ProbeKind::UprobeMulti | ProbeKind::UretprobeMulti | ProbeKind::UprobeSession => {
            let binary = p.binary.as_ref().expect("uprobes have a binary");
            let all_symbols = p.targets.iter().all(|t| t.symbol.is_some() && t.offset == 0);
            let all_offsets = p.targets.iter().all(|t| t.symbol.is_none());
            let mut opts = UprobeMultiOpts { cookies: cookies(), retprobe: p.retprobe, session: p.session, ..Default::default() };
            if all_symbols {
                opts.syms = symbols();
            } else if all_offsets {
                opts.offsets = p.targets.iter().map(|t| t.offset as usize).collect();
            } else {
                return Err(Classified {
                    class: ErrorClass::Invalid,
                    errno: None,
                    detail: "a multi link takes either symbols (offset 0) or absolute offsets, not a mix".into(),
                });
            }
            let link = prog.attach_uprobe_multi_with_opts(pid, binary, "", opts).map_err(libbpf)?;
            Ok((vec![link], native))
        }
        ProbeKind::Kprobe | ProbeKind::Kretprobe => {
            let links = p
                .targets
                .iter()
                .map(|t| {
                    let opts = libbpf_rs::KprobeOpts { cookie: t.cookie, ..Default::default() };
                    let sym = t.symbol.as_deref().expect("validated: kernel targets have symbols");
                    if p.retprobe {
                        // libbpf-rs has no retprobe flag in KprobeOpts; the plain call
                        // has no cookie. Use libbpf directly for both.
                        attach_kprobe_raw(prog, sym, t.offset, t.cookie, true)
                    } else if t.offset != 0 {
                        attach_kprobe_raw(prog, sym, t.offset, t.cookie, false)
                    } else {
                        prog.attach_kprobe_with_opts(false, sym, opts).map_err(libbpf)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((links, native))
        }
        ProbeKind::KprobeMulti | ProbeKind::KretprobeMulti if !p.session => {
            let opts = libbpf_rs::KprobeMultiOpts { symbols: symbols(), cookies: cookies(), retprobe: p.retprobe, ..Default::default() };
            Ok((vec![prog.attach_kprobe_multi_with_opts(opts).map_err(libbpf)?], native))
        }
        ProbeKind::KprobeMulti | ProbeKind::KretprobeMulti | ProbeKind::KprobeSession => {
            // libbpf-rs 0.27.2 has no `session` in KprobeMultiOpts: bridge to libbpf.
            let link = libbpf_compat::attach_kprobe_multi(prog, &symbols(), &cookies(), p.retprobe, p.session)?;
            Ok((vec![link], Via { probe: p.name.clone(), via: ViaKind::Compat, bridge: Some(KPROBE_SESSION_BRIDGE.into()), prog_id }))
        }
    }
}

/// `bpf_program__attach_kprobe_opts` with retprobe, offset and cookie together.
fn attach_kprobe_raw(prog: &ProgramMut<'_>, sym: &str, offset: u64, cookie: u64, retprobe: bool) -> Result<Link, Classified> {
    let csym = std::ffi::CString::new(sym).map_err(|_| Classified {
        class: ErrorClass::Invalid,
        errno: None,
        detail: format!("symbol {sym:?} contains NUL"),
    })?;
    let opts = libbpf_rs::libbpf_sys::bpf_kprobe_opts {
        sz: size_of::<libbpf_rs::libbpf_sys::bpf_kprobe_opts>() as _,
        bpf_cookie: cookie,
        offset: offset as _,
        retprobe,
        ..Default::default()
    };
    // SAFETY: live program pointer; csym and opts outlive the call.
    let raw = unsafe {
        libbpf_rs::libbpf_sys::bpf_program__attach_kprobe_opts(
            libbpf_rs::AsRawLibbpf::as_libbpf_object(prog).as_ptr(),
            csym.as_ptr(),
            &opts,
        )
    };
    match std::ptr::NonNull::new(raw) {
        // SAFETY: non-NULL link from libbpf, owned only by the returned Link.
        Some(p) => Ok(unsafe { Link::from_ptr(p) }),
        None => {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
            Err(Classified {
                class: crate::judge::classify::classify_errno(errno),
                errno: Some(errno),
                detail: format!("attach kprobe {sym}: {}", std::io::Error::from_raw_os_error(errno)),
            })
        }
    }
}

/// Attached probes. Field order is drop order: links go before their objects.
struct LibbpfAttached {
    links: Vec<Link>,
    objects: Vec<Object>,
    vias: Vec<Via>,
}

impl Attached for LibbpfAttached {
    fn vias(&self) -> Vec<Via> {
        self.vias.clone()
    }

    fn drain(self: Box<Self>) -> Result<Drained, LoaderError> {
        let fail = |detail: String| LoaderError {
            phase: FailPhase::Drain,
            probe: None,
            error: Classified { class: ErrorClass::Other, errno: None, detail },
        };
        let this = *self;
        // Detach first: nothing more can arrive, and what is in the ring stays.
        drop(this.links);
        let Some(first) = this.objects.first() else { return Ok(Drained::default()) };
        let records = Rc::new(RefCell::new(Vec::new()));
        {
            let events = first.maps().find(|m| m.name() == "events").ok_or_else(|| fail("no events map".into()))?;
            let sink = records.clone();
            let mut builder = RingBufferBuilder::new();
            builder
                .add(&events, move |data: &[u8]| {
                    sink.borrow_mut().push(data.to_vec());
                    0
                })
                .map_err(|e| fail(format!("ring buffer: {e:#}")))?;
            let rb = builder.build().map_err(|e| fail(format!("ring buffer: {e:#}")))?;
            rb.consume().map_err(|e| fail(format!("consume: {e:#}")))?;
        }
        let dropped = first
            .maps()
            .find(|m| m.name() == "dropped")
            .and_then(|m| m.lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY).ok().flatten())
            .map(|per_cpu| per_cpu.iter().map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap())).sum())
            .unwrap_or(0);
        let records = records.take();
        Ok(Drained { records, dropped })
    }
}
