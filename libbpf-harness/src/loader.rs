//! The libbpf loader itself, usable in-process: [`attach`] takes the
//! protocol's request and returns the attached probes; [`Attached::drain`]
//! returns the raw records. The `run` session (src/session.rs) is a thin
//! JSON-lines shell around these two calls, so the harness and an in-process
//! caller run the same code.
//!
//! Per request: the object (or the build picked from `objects` by kernel BTF)
//! gives the record size (`struct pc_event` in its BTF); every probe loads its
//! own instance of its object with only its program kept, its data sections
//! set from `rodata` (and read back after load), and the maps `events`,
//! `seq_by_cpu` and `dropped` taken from the first instance; then every probe
//! is attached. On any error everything made so far is released (Drop).

use crate::bridge::{self, KprobeFullOpts, KprobeMultiSessionOpts, OpenProgramBridgeExt, ProgramBridgeExt, UprobeMultiBridgeOpts};
use crate::classify::{classify_libbpf, Classified, ErrorClass};
use crate::compat::{self, LinkHandle};
use crate::log::with_log;
use crate::protocol::{invalid, AttachedProbe, Failure, Kind, ObjectChoice, Phase, Probe, Request, Variant, VIA_COMPAT, VIA_NATIVE};
use libbpf_rs::libbpf_sys;
use libbpf_rs::{AsRawLibbpf, MapCore, MapFlags, Object, ObjectBuilder, OpenObject, ProgramMut, RingBufferBuilder, UprobeOpts};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

/// Maps shared by every instance of a request (names in bpf/recorders.bpf.c).
pub const SHARED_MAPS: [&str; 3] = ["events", "seq_by_cpu", "dropped"];
/// The BTF struct whose size every ring buffer record has.
pub const EVENT_TYPE: &str = "pc_event";

/// What [`attach`] may be told instead of asking the kernel.
#[derive(Default)]
pub struct Options<'a> {
    /// The running kernel's session-kfunc prototype; `None`: kernel BTF
    /// ([`crate::bridge::session_kfunc_prototype`]). Tests pretend other kernels.
    pub session_kfuncs: Option<&'a dyn Fn() -> (Option<Variant>, String)>,
    /// Asked after every load and attach: `Some(why)` stops with a protocol
    /// error (the harness's SIGINT/SIGTERM).
    pub interrupted: Option<&'a dyn Fn() -> Option<String>>,
}

/// Attached probes. Field order is drop order: links go before their objects.
pub struct Attached {
    links: Vec<LinkHandle>,
    objects: Vec<Object>,
    /// One entry per probe, in request order, as the `attached` line says.
    pub probes: Vec<AttachedProbe>,
    /// Which build was picked from `objects` (empty with `object`).
    pub choice: ObjectChoice,
    /// sizeof(struct pc_event) of the request's object.
    pub event_size: usize,
}

/// The raw records of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub records: Vec<Vec<u8>>,
    /// Events the BPF side could not reserve (ring buffer full).
    pub dropped: u64,
}

fn load_err(p: Option<&Probe>, c: Classified) -> Failure {
    Failure::new(Phase::Load, p, with_log(c))
}

fn not_found(detail: String) -> Classified {
    Classified { class: ErrorClass::NotFound, errno: None, detail }
}

/// An object file, read once, and its record size.
struct ObjectFile {
    bytes: Vec<u8>,
    event_size: usize,
}

fn read_object(path: &str, p: Option<&Probe>) -> Result<ObjectFile, Failure> {
    crate::log::clear();
    let bytes = std::fs::read(path).map_err(|e| {
        let errno = e.raw_os_error();
        load_err(
            p,
            Classified {
                class: errno.map(crate::classify::classify_errno).unwrap_or(ErrorClass::Other),
                errno,
                detail: format!("reading {path}: {e}"),
            },
        )
    })?;
    let mut builder = ObjectBuilder::default();
    let open = builder.open_memory(&bytes).map_err(|e| {
        let mut c = classify_libbpf(&e);
        c.detail = format!("open {path}: {}", c.detail);
        load_err(p, c)
    })?;
    let event_size = event_size(&open).map_err(|d| load_err(p, invalid(format!("{path}: {d}"))))?;
    Ok(ObjectFile { bytes, event_size })
}

/// sizeof(struct pc_event) from an opened object's BTF. An object without it
/// cannot be drained safely: an error, not a built-in size.
fn event_size(open: &OpenObject) -> Result<usize, String> {
    let name = std::ffi::CString::new(EVENT_TYPE).unwrap();
    // SAFETY: the object pointer is live while `open` is; bpf_object__btf
    // returns a pointer the object owns (or NULL), which is only read here.
    unsafe {
        let btf = libbpf_sys::bpf_object__btf(open.as_libbpf_object().as_ptr());
        if btf.is_null() {
            return Err(format!("object has no BTF, so no struct {EVENT_TYPE} to size ring buffer records by (built without -g?)"));
        }
        let id = libbpf_sys::btf__find_by_name_kind(btf, name.as_ptr(), libbpf_sys::BTF_KIND_STRUCT);
        if id < 0 {
            return Err(format!("object's BTF has no struct {EVENT_TYPE}, the ring buffer record type (not a probeconf recorder object?)"));
        }
        match libbpf_sys::btf__resolve_size(btf, id as u32) {
            n if n > 0 => Ok(n as usize),
            n => Err(format!("object's BTF: struct {EVENT_TYPE} has size {n}")),
        }
    }
}

/// Loads and attaches every probe of `req`. On error nothing stays attached
/// or loaded, and the failure carries the object choice once it is made.
pub fn attach(req: &Request, opts: &Options<'_>) -> Result<Attached, Failure> {
    crate::log::install(false);
    req.validate()?;
    req.check_objects()?;
    let mut choice = ObjectChoice::default();
    let object = match &req.objects {
        None => req.object.clone(),
        Some(os) => {
            let kernel = match opts.session_kfuncs {
                Some(f) => f(),
                None => bridge::session_kfunc_prototype(),
            };
            let (variant, reason) = bridge::object_variant(kernel);
            choice = ObjectChoice { object_variant: variant.as_str().into(), object_reason: reason };
            os.path(variant).to_string()
        }
    };
    attach_object(req, &object, opts).map_err(|mut f| {
        f.choice = choice.clone();
        f
    }).map(|mut a| {
        a.choice = choice;
        a
    })
}

fn interrupted(opts: &Options<'_>) -> Result<(), Failure> {
    match opts.interrupted.and_then(|f| f()) {
        Some(why) => Err(Failure::new(Phase::Protocol, None, Classified { class: ErrorClass::Other, errno: None, detail: why })),
        None => Ok(()),
    }
}

fn attach_object(req: &Request, object: &str, opts: &Options<'_>) -> Result<Attached, Failure> {
    let mut files: HashMap<String, ObjectFile> = HashMap::new();
    let first = read_object(object, None)?;
    let event_size = first.event_size;
    files.insert(object.to_string(), first);
    let mut run = Attached { links: Vec::new(), objects: Vec::new(), probes: Vec::new(), choice: ObjectChoice::default(), event_size };

    // Load every instance first, then attach them all.
    let mut typed: Vec<Option<&'static str>> = Vec::new();
    let mut shared: Option<Vec<(String, OwnedFd)>> = None;
    for p in &req.probes {
        let path = if p.object.is_empty() { object } else { p.object.as_str() };
        if !files.contains_key(path) {
            files.insert(path.to_string(), read_object(path, Some(p))?);
        }
        let file = &files[path];
        if file.event_size != event_size {
            return Err(load_err(
                Some(p),
                invalid(format!(
                    "{path}: struct {EVENT_TYPE} is {} bytes, but {event_size} in {object}: the probes of one request share one ring buffer",
                    file.event_size
                )),
            ));
        }
        let (obj, typed_by) = load_instance(&file.bytes, path, p, shared.as_deref())?;
        typed.push(typed_by);
        if shared.is_none() {
            let mut fds = Vec::new();
            for m in obj.maps() {
                let name = m.name().to_string_lossy().into_owned();
                if SHARED_MAPS.contains(&name.as_str()) {
                    let fd = m.as_fd().try_clone_to_owned().map_err(|e| {
                        load_err(Some(p), Classified { class: ErrorClass::Other, errno: e.raw_os_error(), detail: format!("dup {name}: {e}") })
                    })?;
                    fds.push((name, fd));
                }
            }
            shared = Some(fds);
        }
        run.objects.push(obj);
        interrupted(opts)?;
    }
    for ((p, obj), typed_by) in req.probes.iter().zip(&run.objects).zip(typed) {
        crate::log::clear();
        let prog = obj.progs_mut().find(|q| q.name() == p.program.as_str()).expect("kept program is loaded");
        if p.kind() == Kind::Usdt {
            compat::check_usdt_spec_layout(obj).map_err(|c| Failure::new(Phase::Attach, Some(p), c))?;
        }
        let attached = if p.kind().is_tracing() { crate::tracing::attach(&prog, p, typed_by) } else { attach_probe(&prog, p) };
        let (links, bridge) = attached.map_err(|c| Failure::new(Phase::Attach, Some(p), with_log(c)))?;
        run.links.extend(links);
        run.probes.push(AttachedProbe {
            name: p.name.clone(),
            via: if bridge.is_some() { VIA_COMPAT } else { VIA_NATIVE }.into(),
            bridge: bridge.unwrap_or_default().into(),
            prog_id: prog_id(prog.as_fd()).unwrap_or(0),
        });
        interrupted(opts)?;
    }
    Ok(run)
}

fn program_list(open: &OpenObject) -> String {
    let mut names: Vec<String> = open
        .progs()
        .map(|p| format!("{} ({})", p.name().to_string_lossy(), p.section().to_string_lossy()))
        .collect();
    names.sort();
    names.join(", ")
}

/// One probe's loaded object, and the bridge that typed its program's section
/// for the linked libbpf (if one did).
fn load_instance(bytes: &[u8], path: &str, p: &Probe, shared: Option<&[(String, OwnedFd)]>) -> Result<(Object, Option<&'static str>), Failure> {
    crate::log::clear();
    let err = |c: Classified| load_err(Some(p), c);
    let mut builder = ObjectBuilder::default();
    let mut open = builder.open_memory(bytes).map_err(|e| err(classify_libbpf(&e)))?;
    if !open.progs().any(|q| q.name() == p.program.as_str()) {
        return Err(err(not_found(format!("program {:?} not in {path} (programs: {})", p.program, program_list(&open)))));
    }
    let mut typed_by = None;
    for mut q in open.progs_mut() {
        let keep = q.name() == p.program.as_str();
        q.set_autoload(keep);
        if keep && q.type_uprobe_session_section() {
            let (ma, mi) = crate::version::linked();
            eprintln!(
                "program {}: libbpf {ma}.{mi} does not know section {}: typed kprobe, expected attach type {} [{}]",
                q.name().to_string_lossy(),
                q.section().to_string_lossy(),
                bridge::BPF_TRACE_UPROBE_SESSION,
                compat::UPROBE_SESSION_RAW_BRIDGE
            );
        }
        if keep {
            typed_by = crate::tracing::prepare(&mut q, p).map_err(err)?;
        }
    }
    let mut sections_seen = Vec::new();
    for mut m in open.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        if let Some((section, data)) = p.rodata.iter().find(|(s, _)| name == **s || name.ends_with(s.as_str())) {
            let v = m.initial_value_mut().ok_or_else(|| err(invalid(format!("rodata: section {section} has no initial value"))))?;
            if v.len() != data.0.len() {
                return Err(err(invalid(format!(
                    "rodata: section {section} is {} bytes, the request has {}",
                    v.len(),
                    data.0.len()
                ))));
            }
            v.copy_from_slice(&data.0);
            sections_seen.push(section.clone());
        } else if let Some((_, fd)) = shared.and_then(|s| s.iter().find(|(n, _)| *n == name)) {
            m.reuse_fd(fd.as_fd()).map_err(|e| err(classify_libbpf(&e)))?;
        }
    }
    if let Some(missing) = p.rodata.keys().find(|s| !sections_seen.contains(s)) {
        let maps: Vec<String> = open.maps().map(|m| m.name().to_string_lossy().into_owned()).collect();
        return Err(err(not_found(format!("rodata: {path} has no data section {missing} (maps: {})", maps.join(", ")))));
    }
    let obj = open.load().map_err(|e| {
        let mut c = classify_libbpf(&e);
        c.detail = format!("load {}: {}", p.program, c.detail);
        err(crate::tracing::refine_load_error(p.kind(), c))
    })?;
    // The kernel must hold exactly the bytes asked for.
    for (section, data) in &p.rodata {
        let m = obj.maps().find(|m| {
            let n = m.name().to_string_lossy();
            n == section.as_str() || n.ends_with(section.as_str())
        });
        let held = m.and_then(|m| m.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).ok().flatten());
        if held.as_deref() != Some(&data.0[..]) {
            return Err(err(invalid(format!("rodata: section {section} does not hold the requested bytes after load"))));
        }
    }
    Ok((obj, typed_by))
}

/// The kernel's id of a loaded program.
pub fn prog_id(fd: BorrowedFd<'_>) -> Option<u32> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` is a zeroed bpf_prog_info of `len` bytes that the kernel
    // fills; no pointer fields are set, so it writes nothing else.
    let r = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    (r == 0).then_some(info.id)
}

/// Creates the links of one probe; the bridge's registry id when harness code
/// made them, `None` when libbpf-rs did.
fn attach_probe(prog: &ProgramMut<'_>, p: &Probe) -> Result<(Vec<LinkHandle>, Option<&'static str>), Classified> {
    let pid = compat::libbpf_pid(p.pid_filter());
    let libbpf = |e: libbpf_rs::Error| classify_libbpf(&e);
    let (retprobe, session) = (p.want_retprobe(), p.want_session());
    let symbols = || p.targets.iter().map(|t| t.symbol.clone()).collect::<Vec<_>>();
    let cookies = || p.targets.iter().map(|t| t.cookie).collect::<Vec<_>>();
    let wrap = |links: Vec<libbpf_rs::Link>| links.into_iter().map(LinkHandle::Libbpf).collect::<Vec<_>>();
    match p.kind() {
        Kind::Usdt => {
            let links = p
                .targets
                .iter()
                .map(|t| {
                    let (provider, name) = t.symbol.split_once(':').expect("validated: provider:name");
                    let opts = libbpf_rs::UsdtOpts { cookie: t.cookie, ..Default::default() };
                    prog.attach_usdt_with_opts(pid, &p.binary, provider, name, opts).map_err(libbpf)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((wrap(links), None))
        }
        Kind::Uprobe | Kind::Uretprobe => {
            let links = p
                .targets
                .iter()
                .map(|t| {
                    let func_name = (!t.symbol.is_empty()).then(|| t.symbol.clone());
                    let opts = UprobeOpts { func_name, cookie: t.cookie, retprobe, ..Default::default() };
                    prog.attach_uprobe_with_opts(pid, &p.binary, t.offset as usize, opts).map_err(libbpf)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((wrap(links), None))
        }
        Kind::UprobeMulti | Kind::UretprobeMulti | Kind::UprobeSession => {
            let all_symbols = p.targets.iter().all(|t| !t.symbol.is_empty() && t.offset == 0);
            let all_offsets = p.targets.iter().all(|t| t.symbol.is_empty());
            let syms = if all_symbols { symbols() } else { Vec::new() };
            let offsets: Vec<u64> = if all_offsets { p.targets.iter().map(|t| t.offset).collect() } else { Vec::new() };
            if !all_symbols && !all_offsets {
                return Err(invalid("a multi link takes either symbols (offset 0) or absolute offsets, not a mix"));
            }
            let opts = UprobeMultiBridgeOpts { syms, offsets, cookies: cookies(), retprobe, session };
            // libbpf-rs's own call on 0.26+, libbpf's on 0.25; a session on
            // libbpf 1.5 is a raw link fd.
            let link = prog.attach_uprobe_multi_bridged(pid, &p.binary, &opts)?;
            let bridge = if link.is_raw() { Some(compat::UPROBE_SESSION_RAW_BRIDGE) } else { compat::UPROBE_MULTI_BRIDGE };
            Ok((vec![link], bridge))
        }
        Kind::Kprobe | Kind::Kretprobe => {
            let mut bridged = false;
            let links = p
                .targets
                .iter()
                .map(|t| {
                    if retprobe && t.cookie == 0 && t.offset == 0 {
                        // What libbpf-rs can say itself: a kretprobe without cookie or offset.
                        prog.attach_kprobe(true, &t.symbol).map_err(libbpf)
                    } else if retprobe || t.offset != 0 {
                        // KprobeOpts has no retprobe flag; attach_kprobe no cookie.
                        bridged = true;
                        let opts = KprobeFullOpts { offset: t.offset, cookie: t.cookie, retprobe };
                        prog.attach_kprobe_full_opts(&t.symbol, &opts).map_err(Classified::from)
                    } else {
                        let opts = libbpf_rs::KprobeOpts { cookie: t.cookie, ..Default::default() };
                        prog.attach_kprobe_with_opts(false, &t.symbol, opts).map_err(libbpf)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((wrap(links), bridged.then_some(compat::KRETPROBE_COOKIE_BRIDGE)))
        }
        Kind::KprobeMulti | Kind::KretprobeMulti if !session => {
            let opts = libbpf_rs::KprobeMultiOpts { symbols: symbols(), cookies: cookies(), retprobe, ..Default::default() };
            Ok((wrap(vec![prog.attach_kprobe_multi_with_opts(opts).map_err(libbpf)?]), None))
        }
        Kind::Fentry | Kind::Fexit | Kind::Fsession | Kind::FentryMulti | Kind::FexitMulti | Kind::FsessionMulti => {
            unreachable!("tracing kinds attach through crate::tracing")
        }
        Kind::KprobeMulti | Kind::KretprobeMulti | Kind::KprobeSession => {
            // No libbpf-rs has `session` in KprobeMultiOpts: bridge to libbpf.
            let opts = KprobeMultiSessionOpts { symbols: symbols(), cookies: cookies(), retprobe, session };
            let link = prog.attach_kprobe_multi_with_session_opts(&opts)?;
            Ok((wrap(vec![link]), Some(compat::KPROBE_SESSION_BRIDGE)))
        }
    }
}

impl Attached {
    /// Detaches every link, reads every pending record (each must be
    /// `event_size` bytes), then unloads.
    pub fn drain(self) -> Result<Drained, Failure> {
        let fail = |class: ErrorClass, detail: String| Failure::new(Phase::Drain, None, Classified { class, errno: None, detail });
        let Attached { links, objects, event_size, .. } = self;
        // Detach first: nothing more can arrive, and what is in the ring stays.
        drop(links);
        let Some(first) = objects.first() else { return Ok(Drained::default()) };
        let records = Rc::new(RefCell::new(Vec::new()));
        {
            let events = first.maps().find(|m| m.name() == "events").ok_or_else(|| fail(ErrorClass::NotFound, "object has no map \"events\"".into()))?;
            let sink = records.clone();
            let mut builder = RingBufferBuilder::new();
            builder
                .add(&events, move |data: &[u8]| {
                    sink.borrow_mut().push(data.to_vec());
                    0
                })
                .map_err(|e| fail(ErrorClass::Other, format!("ring buffer: {e:#}")))?;
            let rb = builder.build().map_err(|e| fail(ErrorClass::Other, format!("ring buffer: {e:#}")))?;
            rb.consume().map_err(|e| fail(ErrorClass::Other, format!("consume: {e:#}")))?;
        }
        let records = records.take();
        if let Some((i, r)) = records.iter().enumerate().find(|(_, r)| r.len() != event_size) {
            return Err(fail(
                ErrorClass::Invalid,
                format!(
                    "ring buffer record {i} is {} bytes, but the object's struct {EVENT_TYPE} is {event_size} (a program that does not emit struct {EVENT_TYPE}?)",
                    r.len()
                ),
            ));
        }
        let dropped_map = first.maps().find(|m| m.name() == "dropped").ok_or_else(|| fail(ErrorClass::NotFound, "object has no map \"dropped\"".into()))?;
        let per_cpu = dropped_map
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| fail(ErrorClass::Other, format!("read dropped counter: {e:#}")))?
            .unwrap_or_default();
        let dropped = per_cpu.iter().map(|v| v.get(..8).map(|b| u64::from_ne_bytes(b.try_into().unwrap())).unwrap_or(0)).sum();
        Ok(Drained { records, dropped })
    }
}
